package testkit

import (
	"fmt"
	"net"
	"testing"
)

// Ports handed out are below the ephemeral range, distinct, and bindable.
func TestFreePortOutsideEphemeralRange(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		p := FreePort(t)
		if p < portLow || p >= portHigh {
			t.Fatalf("port %d outside %d-%d", p, portLow, portHigh)
		}
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			t.Fatalf("port %d does not bind: %v", p, err)
		}
		l.Close()
	}
}

// A port something listens on is skipped.
func TestFreePortSkipsBoundPorts(t *testing.T) {
	p := FreePort(t)
	ports.Lock()
	ports.next = p + 1 // the next candidate
	ports.Unlock()
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
	if err != nil {
		t.Skipf("port %d taken meanwhile: %v", p+1, err)
	}
	defer l.Close()
	if q := FreePort(t); q == p+1 {
		t.Fatalf("got port %d, which is bound", q)
	}
}
