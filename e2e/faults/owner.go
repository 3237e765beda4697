//go:build linux

package faults

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// connOwner returns which of pids (pid -> name) holds the other end of c,
// a connection accepted on loopback: the socket whose local address is
// c's remote address and whose remote address is c's local one, found in
// /proc/net/tcp, then among the processes' open files. "" when none of
// them does (a process that is no member, or one that already closed it).
//
// This is what lets one front per member tell its peers apart although
// all of them dial the same advertised URL from 127.0.0.1: the members
// send no reliable source on every peer request (lease forwarding and
// hash checks carry no X-Server-From), but the kernel knows.
func connOwner(c net.Conn, pids map[int]string) string {
	local, ok1 := c.RemoteAddr().(*net.TCPAddr)
	remote, ok2 := c.LocalAddr().(*net.TCPAddr)
	if !ok1 || !ok2 || local.IP.To4() == nil || remote.IP.To4() == nil {
		return ""
	}
	inode := socketInode("/proc/net/tcp", procAddr(local), procAddr(remote))
	if inode == "" {
		return ""
	}
	link := "socket:[" + inode + "]"
	for pid, name := range pids {
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			if l, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name())); err == nil && l == link {
				return name
			}
		}
	}
	return ""
}

// procAddr formats an IPv4 address as /proc/net/tcp does: the address's
// four bytes read as one native-endian word, then the port, in hex.
func procAddr(a *net.TCPAddr) string {
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(a.IP.To4()), a.Port)
}

// socketInode finds the inode of the socket from local to remote in a
// /proc/net/tcp table, "" if it is not there.
func socketInode(table, local, remote string) string {
	f, err := os.Open(table)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1] != local || fields[2] != remote {
			continue
		}
		if _, err := strconv.ParseUint(fields[9], 10, 64); err == nil && fields[9] != "0" {
			return fields[9]
		}
	}
	return ""
}
