package testkit

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"testing"
)

// Test ports come from below the kernel's ephemeral range (32768-60999 on
// Linux), never from it: a port found by binding port 0 is an ephemeral
// one, and between the moment it is closed and the moment the test's server
// binds it, any outgoing connection on the machine (another test package
// running in parallel dials hundreds) may be given it as its local port —
// "address already in use" in CI. Below the range only a listener can take
// a port, and listeners here come from this function: each process starts
// at a random place in the range and walks it, skipping what it handed out
// before and what does not bind now.
const (
	portLow  = 10000
	portHigh = 32000 // exclusive; below the ephemeral range
)

var ports struct {
	sync.Mutex
	next int
	used map[int]bool
}

// FreePort returns a loopback TCP port that was free a moment ago, is not
// in the ephemeral range, and that this process has not handed out before.
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
		ports.used = map[int]bool{}
		// Separate processes (go test runs packages in parallel) start far
		// apart; the pid keeps two started in one instant apart too.
		ports.next = portLow + (rand.IntN(portHigh-portLow)+os.Getpid()*97)%(portHigh-portLow)
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
		ports.used[p] = true
		return p, nil
	}
	return 0, fmt.Errorf("testkit: no free port in %d-%d", portLow, portHigh)
}
