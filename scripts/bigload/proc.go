package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// rss returns the process's resident set, its anonymous and file-backed
// parts and its peak, in MiB (/proc/<pid>/status). A memory-mapped store
// (etcd's bbolt) shows its resident pages of the file as RssFile; the peak
// catches what the load took between two measures.
func rss(pid int) (total, anon, file, peak float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), ":")
		var dst *float64
		switch name {
		case "VmRSS":
			dst = &total
		case "RssAnon":
			dst = &anon
		case "RssFile":
			dst = &file
		case "VmHWM":
			dst = &peak
		default:
			continue
		}
		kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
		if err != nil {
			return 0, 0, 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, name, err)
		}
		*dst = kb / 1024
	}
	return total, anon, file, peak, sc.Err()
}

// diskMiB is the bytes the files under dir take on disk (allocated blocks:
// a sparse or preallocated file counts what it holds).
func diskMiB(dir string) (float64, error) {
	var blocks int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) { // a file the server removed meanwhile
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				if st, ok := info.Sys().(*syscall.Stat_t); ok {
					blocks += st.Blocks
				}
			}
		}
		return nil
	})
	return float64(blocks*512) / (1 << 20), err
}
