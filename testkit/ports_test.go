package testkit

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
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

// A port another test process was handed is not handed out here, even
// while nothing listens on it (its server not bound yet, or its member
// down for a restart).
func TestFreePortSkipsPortsOfOtherProcesses(t *testing.T) {
	const holdEnv = "TESTKIT_HOLD_PORT" // set: this is the other process
	if os.Getenv(holdEnv) != "" {
		fmt.Printf("holding %d\n", FreePort(t))
		io.Copy(io.Discard, os.Stdin) // until the test that started it ends
		return
	}
	other := exec.Command(os.Args[0], "-test.run=^"+t.Name()+"$")
	other.Env = append(os.Environ(), holdEnv+"=1")
	stdin, err := other.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := other.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); other.Wait() })
	held := 0
	for sc := bufio.NewScanner(out); held == 0 && sc.Scan(); {
		fmt.Sscanf(sc.Text(), "holding %d", &held)
	}
	ports.Lock()
	if ports.used == nil {
		startPorts()
	}
	handedHere := ports.used[held]
	ports.next = held // the next candidate
	ports.Unlock()
	if held == 0 || handedHere {
		t.Fatalf("the other process holds port %d (handed out here too: %t)", held, handedHere)
	}
	if p := FreePort(t); p == held {
		t.Fatalf("port %d handed out here while another test process holds it", p)
	}
}
