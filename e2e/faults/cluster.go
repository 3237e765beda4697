//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/metastore/metastore/e2e"
)

// cluster is three real member processes whose peer traffic goes through
// one front each (see front), and the faults the suite makes: kill -9,
// SIGSTOP/SIGCONT, and cuts between members. Its methods are for the test
// goroutine.
type cluster struct {
	t       testing.TB
	members []*e2e.Server
	fronts  []*front           // fronts[i] is members[i]'s (StartCluster asks in order)
	status  []*clientv3.Client // one per member, that member only
	ids     map[uint64]int     // member id -> index
	paused  map[int]bool

	mu   sync.Mutex
	pids map[int]string // running members' process ids -> names, for the fronts
}

// startCluster starts the members, with flags, and waits until they serve.
func startCluster(t testing.TB, flags ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, ids: map[uint64]int{}, paused: map[int]bool{}, pids: map[int]string{}}
	front := func(name string, peerPort int) string {
		f, err := newFront("127.0.0.1:"+strconv.Itoa(peerPort), c.sourceOf)
		if err != nil {
			t.Fatalf("front for %s: %v", name, err)
		}
		t.Cleanup(f.Close)
		c.fronts = append(c.fronts, f)
		return f.URL()
	}
	c.members = e2e.StartCluster(t, e2e.KindMetaStore, 3, e2e.WithPeerFront(front), e2e.WithFlags(flags...))
	c.started()
	for i, m := range c.members {
		c.status = append(c.status, newClient(t, m.Endpoint()))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.status[i].Status(ctx, m.Endpoint())
		cancel()
		if err != nil {
			t.Fatalf("status of %s: %v", m.Name, err)
		}
		c.ids[st.Header.MemberId] = i
	}
	return c
}

// keepLogs copies the members' logs into dir when the test fails, or
// always when the artifacts are kept (outEnv).
func (c *cluster) keepLogs(dir string) {
	c.t.Cleanup(func() {
		if c.t.Failed() || os.Getenv(outEnv) != "" {
			for _, m := range c.members {
				copyFile(m.LogFile, filepath.Join(dir, filepath.Base(m.LogFile)))
			}
		}
	})
}

// newClient is a clientv3 client of endpoints, closed when the test ends.
func newClient(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("client of %v: %v", endpoints, err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}

func (c *cluster) sourceOf(conn net.Conn) string {
	c.mu.Lock()
	pids := make(map[int]string, len(c.pids))
	for p, n := range c.pids {
		pids[p] = n
	}
	c.mu.Unlock()
	return connOwner(conn, pids)
}

// started records the members' process ids after a (re)start, and has the
// fronts name the connections they could not name before.
func (c *cluster) started() {
	c.mu.Lock()
	clear(c.pids)
	for _, m := range c.members {
		if m.Running() {
			c.pids[m.Pid()] = m.Name
		}
	}
	c.mu.Unlock()
	for _, f := range c.fronts {
		f.Reidentify()
	}
}

func (c *cluster) name(i int) string { return c.members[i].Name }

// endpoints are the members' client addresses.
func (c *cluster) endpoints() []string { return e2e.Endpoints(c.members) }

// leader returns the index of the member every running, unpaused member
// names as leader, once they agree, within d.
func (c *cluster) leader(d time.Duration) (int, error) {
	deadline := time.Now().Add(d)
	for {
		i, err := c.agreedLeader()
		if err == nil {
			return i, nil
		}
		if time.Now().After(deadline) {
			return -1, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *cluster) agreedLeader() (int, error) {
	var lead uint64
	for i, m := range c.members {
		if !m.Running() || c.paused[i] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := c.status[i].Status(ctx, m.Endpoint())
		cancel()
		switch {
		case err != nil:
			return -1, fmt.Errorf("status of %s: %w", m.Name, err)
		case st.Leader == 0:
			return -1, fmt.Errorf("%s has no leader", m.Name)
		case lead != 0 && st.Leader != lead:
			return -1, fmt.Errorf("members disagree on the leader: %x and %x", lead, st.Leader)
		}
		lead = st.Leader
	}
	i, ok := c.ids[lead]
	if !ok {
		return -1, fmt.Errorf("leader %x is no member", lead)
	}
	return i, nil
}

// waitHealthy waits, within d, until every member runs, they agree on a
// leader, and a linearizable read through each one succeeds.
func (c *cluster) waitHealthy(d time.Duration) error {
	deadline := time.Now().Add(d)
	for i, m := range c.members {
		if !m.Running() || c.paused[i] {
			return fmt.Errorf("%s is not running", m.Name)
		}
	}
	if _, err := c.leader(d); err != nil {
		return err
	}
	for i, m := range c.members {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := c.status[i].Get(ctx, "health")
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("linearizable read through %s: %w", m.Name, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

// others are the members other than those in skip.
func (c *cluster) others(skip ...int) []int {
	var out []int
	for i := range c.members {
		in := false
		for _, s := range skip {
			in = in || s == i
		}
		if !in {
			out = append(out, i)
		}
	}
	return out
}

// kill sends SIGKILL to the members.
func (c *cluster) kill(is ...int) {
	for _, i := range is {
		c.members[i].Kill()
	}
}

// restart starts the killed members again, together.
func (c *cluster) restart(is ...int) {
	var ms []*e2e.Server
	for _, i := range is {
		ms = append(ms, c.members[i])
	}
	e2e.RestartMembers(c.t, ms...)
	c.started()
}

// pause stops member i with SIGSTOP; resume continues it with SIGCONT.
func (c *cluster) pause(i int) error {
	if err := syscall.Kill(c.members[i].Pid(), syscall.SIGSTOP); err != nil {
		return err
	}
	c.paused[i] = true
	return nil
}

func (c *cluster) resume(i int) error {
	delete(c.paused, i)
	return syscall.Kill(c.members[i].Pid(), syscall.SIGCONT)
}

// split cuts every link between a member of one side and a member of the
// other, both ways; members on neither side keep all their links.
func (c *cluster) split(a, b []int) {
	for _, i := range a {
		for _, j := range b {
			c.fronts[j].Cut(c.name(i))
			c.fronts[i].Cut(c.name(j))
		}
	}
}

// heal ends every cut.
func (c *cluster) heal() {
	for _, f := range c.fronts {
		f.Heal()
	}
}

// revision is the cluster's current revision, read through any member.
func (c *cluster) revision(cli *clientv3.Client) (int64, error) {
	var last error
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return r.Header.Revision, nil
		}
		last = err
	}
	return 0, errors.Join(errors.New("no revision after 10 tries"), last)
}

// metricLines reads the /metrics of the members at endpoints and returns
// the lines that start with one of prefixes, one member a line: what an
// operator would look at, for a violation's report.
func metricLines(endpoints []string, prefixes ...string) string {
	var b strings.Builder
	for _, ep := range endpoints {
		fmt.Fprintf(&b, "\n\t%s:", ep)
		resp, err := http.Get("http://" + ep + "/metrics")
		if err != nil {
			fmt.Fprintf(&b, " %v", err)
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			for _, p := range prefixes {
				if strings.HasPrefix(line, p) {
					b.WriteString(" " + line + ";")
					break
				}
			}
		}
	}
	return b.String()
}
