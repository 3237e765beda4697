package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestWatchEtcdctl runs the reference `etcdctl watch` in the background
// against MetaStore and against etcd, makes the same writes on both, and
// requires the same output. Subtests share the servers (see diffWatch).
func TestWatchEtcdctl(t *testing.T) {
	p := startWatchPair(t)

	t.Run("SingleKey", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			setup: func(c *ctlSide) { c.put("w1/k", "0") },
			args:  func(*ctlSide) []string { return []string{"watch", "w1/k"} },
			writes: func(c *ctlSide) {
				c.put("w1/k", "1")
				c.put("w1/k2", "not watched")
				c.del("w1/k")
				c.put("w1/k", "END")
			},
			until: "END",
		})
	})

	t.Run("Prefix", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			args: func(*ctlSide) []string { return []string{"watch", "--prefix", "w2/"} },
			writes: func(c *ctlSide) {
				c.put("w2/a", "1")
				c.put("w2b", "not watched")
				c.txn(clientv3.OpPut("w2/x", "2"), clientv3.OpPut("w2/y", "3"), clientv3.OpPut("w3", "no"))
				c.del("w2/", clientv3.WithPrefix())
				c.put("w2/z", "END")
			},
			until: "END",
		})
	})

	t.Run("Range", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			args: func(*ctlSide) []string { return []string{"watch", "w3/a", "w3/c"} },
			writes: func(c *ctlSide) {
				for _, k := range []string{"w3/", "w3/a", "w3/b", "w3/c", "w3/bz", "w3/c0"} {
					c.put(k, "v-"+k)
				}
				c.put("w3/a", "END")
			},
			until: "END",
		})
	})

	t.Run("Rev", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			setup: func(c *ctlSide) {
				c.mark = c.put("w4/a", "1")
				c.put("w4/b", "1")
				c.put("w4/a", "2")
				c.del("w4/a")
				c.txn(clientv3.OpPut("w4/c", "1"), clientv3.OpDelete("w4/b"))
			},
			args: func(c *ctlSide) []string {
				return []string{"watch", "--prefix", "w4/", fmt.Sprintf("--rev=%d", c.mark+1)}
			},
			writes: func(c *ctlSide) { c.put("w4/z", "END") },
			until:  "END",
		})
	})

	t.Run("PrevKV", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			setup: func(c *ctlSide) { c.put("w5/k", "0") },
			args:  func(*ctlSide) []string { return []string{"watch", "--prev-kv", "--prefix", "w5/"} },
			writes: func(c *ctlSide) {
				c.put("w5/k", "1")
				c.del("w5/k")
				c.put("w5/k", "recreated")
				c.put("w5/z", "END")
			},
			until: "END",
		})
	})

	t.Run("JSON", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			setup: func(c *ctlSide) { c.put("w6/k", "0") },
			args:  func(*ctlSide) []string { return []string{"watch", "-w", "json", "--prev-kv", "--prefix", "w6/"} },
			writes: func(c *ctlSide) {
				c.put("w6/k", "1")
				c.txn(clientv3.OpPut("w6/a", "2"), clientv3.OpDelete("w6/k"))
				c.put("w6/z", "END")
			},
			until: `"value":"RU5E"`, // base64 of END
		})
	})

	t.Run("JSONRev", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			setup: func(c *ctlSide) {
				c.mark = c.put("w7/a", "1")
				c.put("w7/a", "2")
				c.del("w7/a")
			},
			args: func(c *ctlSide) []string {
				return []string{"watch", "-w", "json", "--prefix", "w7/", fmt.Sprintf("--rev=%d", c.mark)}
			},
			writes: func(c *ctlSide) { c.put("w7/z", "END") },
			until:  `"value":"RU5E"`,
		})
	})

	t.Run("Interactive", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			args:  func(*ctlSide) []string { return []string{"watch", "-i"} },
			stdin: "watch w8/a\nwatch --prefix w8/b\n",
			writes: func(c *ctlSide) {
				// One write at a time: the two watches print from two goroutines.
				c.put("w8/a", "1")
				c.await("1\n")
				c.put("w8/b1", "2")
				c.await("2\n")
				c.put("w8/c", "not watched")
				c.put("w8/b", "3")
				c.await("3\n")
				c.write("progress\n")
				c.await("progress notify: ")
				time.Sleep(200 * time.Millisecond) // the second watch's notification
				c.put("w8/a", "END")
			},
			until: "END",
		})
	})

	t.Run("EmptyRange", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			args: func(*ctlSide) []string { return []string{"watch", "w9/b", "w9/a"} },
		})
	})

	// Compaction limits what later subtests may replay: keep it last.
	t.Run("Compacted", func(t *testing.T) {
		diffCtlWatch(t, p, ctlCase{
			setup: func(c *ctlSide) {
				c.mark = c.put("wc/k", "1")
				c.put("wc/k", "2")
				at := c.put("wc/k", "3")
				c.compact(at)
			},
			args: func(c *ctlSide) []string {
				return []string{"watch", "wc/k", fmt.Sprintf("--rev=%d", c.mark)}
			},
		})
	})
}

// ---------------------------------------------------------------------------
// Helpers

// ctlCase is one `etcdctl watch` session: setup writes, the watch started
// with args (and stdin, kept open, for -i), then writes after it has had
// time to be created. The session ends when stdout holds until, or, with
// until empty, when etcdctl exits by itself.
type ctlCase struct {
	setup  func(c *ctlSide)
	args   func(c *ctlSide) []string
	stdin  string
	writes func(c *ctlSide)
	until  string
}

const (
	ctlWatchSettle  = 500 * time.Millisecond // for etcdctl to start and create its watches
	ctlWatchTimeout = 5 * time.Second
)

// diffCtlWatch runs cc on both servers concurrently and requires the same
// stdout (ids and term normalised), the same error lines on stderr, and
// the same ending.
func diffCtlWatch(t *testing.T, p watchPair, cc ctlCase) {
	t.Helper()
	sides := []*ctlSide{
		{s: p.ms, cli: p.ms.Client(t), bin: RefBin(t, "etcdctl")},
		{s: p.ref, cli: p.ref.Client(t), bin: RefBin(t, "etcdctl")},
	}
	var wg sync.WaitGroup
	for _, c := range sides {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(cc)
		}()
	}
	wg.Wait()
	ms, ref := sides[0], sides[1]
	if testing.Verbose() {
		t.Logf("etcd: stdout:\n%s\nstderr (error lines):\n%s\nend: %s", ref.stdout, ref.errLines(), ref.end)
	}
	for _, c := range sides {
		if len(c.notes) > 0 {
			t.Errorf("%s: %s", c.s.Kind, strings.Join(c.notes, "; "))
		}
	}
	if got, want := normIDs(ms.stdout), normIDs(ref.stdout); got != want {
		t.Errorf("stdout differs\nmetastore:\n%s\netcd:\n%s", got, want)
	}
	if got, want := ms.errLines(), ref.errLines(); got != want {
		t.Errorf("stderr differs\nmetastore:\n%s\netcd:\n%s", got, want)
	}
	if ms.end != ref.end {
		t.Errorf("etcdctl ended differently: metastore %s, etcd %s", ms.end, ref.end)
	}
}

// ctlSide is one server's side of a ctlCase.
type ctlSide struct {
	s    *Server
	cli  *clientv3.Client
	bin  string
	mark int64 // a revision the setup remembers for args

	out   lockedBuffer
	stdin io.WriteCloser

	stdout, stderr, end string
	notes               []string // failures of the session itself
}

func (c *ctlSide) notef(format string, args ...any) {
	c.notes = append(c.notes, fmt.Sprintf(format, args...))
}

func (c *ctlSide) run(cc ctlCase) {
	if cc.setup != nil {
		cc.setup(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, append([]string{"--endpoints=" + c.s.Endpoint()}, cc.args(c)...)...)
	var stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &c.out, &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		c.notef("stdin: %v", err)
		return
	}
	c.stdin = stdin
	if err := cmd.Start(); err != nil {
		c.notef("start etcdctl: %v", err)
		return
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	c.write(cc.stdin)
	time.Sleep(ctlWatchSettle)
	if cc.writes != nil {
		cc.writes(c)
	}
	var exitErr error
	if cc.until != "" {
		c.await(cc.until)
		time.Sleep(100 * time.Millisecond) // anything printed after it
		_ = cmd.Process.Kill()
		<-exited
		c.end = "still watching"
	} else {
		select {
		case exitErr = <-exited:
			c.end = "exited: " + exitStatus(exitErr)
		case <-time.After(ctlWatchTimeout):
			_ = cmd.Process.Kill()
			<-exited
			c.end = "still watching"
		}
	}
	_ = stdin.Close()
	c.stdout, c.stderr = c.out.String(), stderr.String()
}

// write feeds etcdctl's stdin.
func (c *ctlSide) write(s string) {
	if s == "" {
		return
	}
	if _, err := io.WriteString(c.stdin, s); err != nil {
		c.notef("write stdin: %v", err)
	}
}

// await waits until stdout holds s.
func (c *ctlSide) await(s string) {
	deadline := time.Now().Add(ctlWatchTimeout)
	for !strings.Contains(c.out.String(), s) {
		if time.Now().After(deadline) {
			c.notef("no %q in stdout within %v", s, ctlWatchTimeout)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *ctlSide) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (c *ctlSide) put(k, v string) int64 {
	ctx, cancel := c.ctx()
	defer cancel()
	r, err := c.cli.Put(ctx, k, v)
	if err != nil {
		c.notef("put %q: %v", k, err)
		return 0
	}
	return r.Header.Revision
}

func (c *ctlSide) del(k string, opts ...clientv3.OpOption) {
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.cli.Delete(ctx, k, opts...); err != nil {
		c.notef("delete %q: %v", k, err)
	}
}

func (c *ctlSide) txn(ops ...clientv3.Op) {
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		c.notef("txn: %v", err)
	}
}

func (c *ctlSide) compact(rev int64) {
	ctx, cancel := c.ctx()
	defer cancel()
	if _, err := c.cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		c.notef("compact %d: %v", rev, err)
	}
}

// errLines keeps what etcdctl itself reports on stderr (not the client
// library's log lines, nor timestamps).
func (c *ctlSide) errLines() string {
	var keep []string
	for _, line := range strings.Split(c.stderr, "\n") {
		switch {
		case strings.Contains(line, "watch was canceled"):
			keep = append(keep, line)
		case strings.Contains(line, "Error:"):
			keep = append(keep, line[strings.Index(line, "Error:"):])
		}
	}
	return strings.Join(keep, "\n")
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	}
	return err.Error()
}

// lockedBuffer is a bytes.Buffer a process writes while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
