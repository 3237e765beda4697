package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

// StartCluster starts a new cluster of n members of kind on loopback, all
// at once (a member serves only once a quorum is up), and waits until each
// serves clients. Members are named "<kind>-c<i>"; opts apply to every one.
func StartCluster(t testing.TB, kind Kind, n int, opts ...Option) []*Server {
	t.Helper()
	members := make([]*Server, n)
	var initial []string
	for i := range members {
		name := fmt.Sprintf("%s-c%d", kind, i+1)
		s := newServer(t, kind, append([]Option{WithName(name)}, opts...))
		s.ClientPort, s.PeerPort = FreePort(t), FreePort(t)
		members[i] = s
		initial = append(initial, s.Name+"="+s.PeerURL())
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, s := range members {
		s.cfg.initialCluster = strings.Join(initial, ",")
		s.cfg.clientPort, s.cfg.peerPort = s.ClientPort, s.PeerPort
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.launch()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("e2e: start %s: %v", members[i].Name, err)
		}
	}
	return members
}

// Endpoints are the client addresses of servers.
func Endpoints(servers []*Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Endpoint()
	}
	return out
}
