package e2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
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
		if s.cfg.peerFront != nil {
			s.advertisedPeer = s.cfg.peerFront(s.Name, s.PeerPort)
		}
		members[i] = s
		initial = append(initial, s.Name+"="+s.PeerURL())
	}
	for _, s := range members {
		s.cfg.initialCluster = strings.Join(initial, ",")
		s.cfg.clientPort, s.cfg.peerPort = s.ClientPort, s.PeerPort
	}
	launchAll(t, "start", members)
	return members
}

// RestartMembers starts the given stopped (or killed) members again, all
// at once — a member serves only once a quorum is up, so members that
// make the quorum together cannot be restarted one by one — and waits
// until each serves clients. Members still running are left alone.
func RestartMembers(t testing.TB, members ...*Server) {
	t.Helper()
	var stopped []*Server
	for _, s := range members {
		if !s.Running() {
			stopped = append(stopped, s)
		}
	}
	launchAll(t, "restart", stopped)
}

func launchAll(t testing.TB, what string, members []*Server) {
	t.Helper()
	errs := make([]error, len(members))
	var wg sync.WaitGroup
	for i, s := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.launch()
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("e2e: %s %s: %v", what, members[i].Name, err)
		}
	}
}

// Endpoints are the client addresses of servers.
func Endpoints(servers []*Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Endpoint()
	}
	return out
}

// NewMember prepares (without starting) a server of kind with free ports
// and a fresh data dir, to be added to a running cluster: `member add
// <s.Name> --peer-urls=<s.PeerURL()>` first, then s.Join.
func NewMember(t testing.TB, kind Kind, name string, opts ...Option) *Server {
	t.Helper()
	s := newServer(t, kind, append([]Option{WithName(name)}, opts...))
	s.ClientPort, s.PeerPort = FreePort(t), FreePort(t)
	s.cfg.clientPort, s.cfg.peerPort = s.ClientPort, s.PeerPort
	return s
}

// Join starts s (from NewMember) as a new member of the cluster of members
// (those in the cluster's membership, running or not): --initial-cluster
// lists them and s, --initial-cluster-state is "existing". It waits until
// s serves clients (a learner too). Restarts keep these flags.
func (s *Server) Join(t testing.TB, members []*Server) {
	t.Helper()
	var initial []string
	for _, m := range members {
		initial = append(initial, m.Name+"="+m.PeerURL())
	}
	initial = append(initial, s.Name+"="+s.PeerURL())
	s.cfg.initialCluster = strings.Join(initial, ",")
	s.cfg.flags = append([]string{"--initial-cluster-state=existing"}, s.cfg.flags...)
	if err := s.launch(); err != nil {
		t.Fatalf("e2e: join %s: %v", s.Name, err)
	}
}

// WaitExit waits up to within for the process to end on its own and
// returns its exit state, or nil if it still runs.
func (s *Server) WaitExit(within time.Duration) *os.ProcessState {
	if s.done == nil {
		return nil
	}
	select {
	case <-s.done:
		return s.state
	case <-time.After(within):
		return nil
	}
}
