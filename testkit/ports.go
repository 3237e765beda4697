package testkit

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Test ports come from below the kernel's ephemeral range (32768-60999 on
// Linux), never from it: a port found by binding port 0 is an ephemeral
// one, and between the moment it is closed and the moment the test's server
// binds it, any outgoing connection on the machine (another test package
// running in parallel dials hundreds) may be given it as its local port —
// "address already in use" in CI. Below the range only a listener can take
// a port, and listeners here come from this function: each process starts
// at a random place in the range and walks it, skipping what it handed out
// before, what another test process holds (claim) and what does not bind
// now.
const (
	portLow  = 10000
	portHigh = 32000 // exclusive; below the ephemeral range
)

var ports struct {
	sync.Mutex
	next   int
	used   map[int]bool
	claims *os.File // the file claim locks, shared by every test process; nil if it cannot be opened
}

// FreePort returns a loopback TCP port that was free a moment ago, is not
// in the ephemeral range, and that no test process (this one included)
// has been handed before while it runs.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	ports.Lock()
	defer ports.Unlock()
	if ports.used == nil {
		startPorts()
	}
	for range portHigh - portLow {
		p := ports.next
		ports.next++
		if ports.next == portHigh {
			ports.next = portLow
		}
		if ports.used[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		if !claim(p) {
			continue
		}
		ports.used[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("testkit: no free port in %d-%d", portLow, portHigh)
}

// startPorts sets up the walk; ports is locked.
func startPorts() {
	ports.used = map[int]bool{}
	// Separate processes (go test runs packages in parallel) start far
	// apart; the pid keeps two started in one instant apart too.
	ports.next = portLow + (rand.IntN(portHigh-portLow)+os.Getpid()*97)%(portHigh-portLow)
	ports.claims, _ = os.OpenFile(filepath.Join(os.TempDir(), "metastore-testkit-ports"), os.O_RDWR|os.O_CREATE, 0o666)
}

// claim makes port p this process's among every test process: a write
// lock on byte p of the claims file, which the kernel drops when the process
// exits. A port is free, not held, between FreePort and the bind of the
// server it is for, and again while a member that restarts on it is down;
// another test process walking the range could be handed it then, and
// one of the two servers would not bind. It reports false if another
// process holds p; without the file, true.
func claim(p int) bool {
	if ports.claims == nil {
		return true
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: int64(p), Len: 1}
	return unix.FcntlFlock(ports.claims.Fd(), unix.F_SETLK, &lk) == nil
}
