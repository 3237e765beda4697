//go:build linux

package faults

import (
	"net"
	"sync"
)

// front is a TCP proxy on a loopback port in front of one member's peer
// listener. The member advertises the front's URL, so every connection a
// peer opens to the member passes through it, and the front knows which
// member opened each one (sourceOf). Cut(from) holds — neither forwards
// nor drops — the bytes of every connection member `from` opened to this
// member, both ways, until Heal. To both ends that is a network that lost
// its packets: connections stay open and stall, new ones connect but get
// no answer, writes back up until the sender's own timeouts give up.
// Cutting A from B takes both fronts: B's for A's connections to B, and
// A's for B's connections to A.
//
// Connections from a process that is no member (the test's own tools)
// are never held.
type front struct {
	ln       net.Listener
	sourceOf func(c net.Conn) string // the member that opened c, "" if none

	mu     sync.Mutex
	cond   *sync.Cond
	target string // the member's own peer address
	cut    map[string]bool
	links  map[*link]struct{}
	closed bool
}

// link is one accepted connection and, once it passes, the connection to
// the member it is forwarded to.
type link struct {
	from string // guarded by front.mu
	c    net.Conn
	up   net.Conn // guarded by front.mu
}

// newFront listens on a free loopback port in front of the member's peer
// address target.
func newFront(target string, sourceOf func(net.Conn) string) (*front, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f := &front{ln: ln, target: target, sourceOf: sourceOf,
		cut: map[string]bool{}, links: map[*link]struct{}{}}
	f.cond = sync.NewCond(&f.mu)
	go f.accept()
	return f, nil
}

// URL is what the member advertises.
func (f *front) URL() string { return "http://" + f.ln.Addr().String() }

// Cut holds the links of the connections from member from.
func (f *front) Cut(from string) {
	f.mu.Lock()
	f.cut[from] = true
	f.mu.Unlock()
}

// Heal lets every held link go on, with the bytes it held.
func (f *front) Heal() {
	f.mu.Lock()
	clear(f.cut)
	f.mu.Unlock()
	f.cond.Broadcast()
}

// Reidentify asks again who opened the links whose source was unknown: a
// member's connections opened before its process id was known (while it
// started) would otherwise never be cut.
func (f *front) Reidentify() {
	f.mu.Lock()
	var unknown []*link
	for l := range f.links {
		if l.from == "" {
			unknown = append(unknown, l)
		}
	}
	f.mu.Unlock()
	for _, l := range unknown {
		if from := f.sourceOf(l.c); from != "" {
			f.mu.Lock()
			l.from = from
			f.mu.Unlock()
		}
	}
}

// Close stops listening and closes every connection.
func (f *front) Close() {
	f.mu.Lock()
	f.closed = true
	for l := range f.links {
		f.closeLink(l)
	}
	f.mu.Unlock()
	f.cond.Broadcast()
	_ = f.ln.Close()
}

// closeLink closes both ends of l; f.mu is held.
func (f *front) closeLink(l *link) {
	_ = l.c.Close()
	if l.up != nil {
		_ = l.up.Close()
	}
}

func (f *front) accept() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.serve(c)
	}
}

// pass blocks while l is cut; false once the front is closed.
func (f *front) pass(l *link) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for l.from != "" && f.cut[l.from] && !f.closed {
		f.cond.Wait()
	}
	return !f.closed
}

// serve links one accepted connection to the member. The member is
// dialed only once the link passes: a connection opened during a cut
// reaches nothing, as a SYN into a partition would.
func (f *front) serve(c net.Conn) {
	l := &link{from: f.sourceOf(c), c: c}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = c.Close()
		return
	}
	f.links[l] = struct{}{}
	target := f.target
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.closeLink(l)
		delete(f.links, l)
		f.mu.Unlock()
	}()
	if !f.pass(l) {
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		return // the member is down: the peer sees its connection closed
	}
	f.mu.Lock()
	l.up = up
	closed := f.closed
	f.mu.Unlock()
	if closed {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.pipe(l, up, c)
	}()
	f.pipe(l, c, up)
	<-done
}

// pipe copies src to dst chunk by chunk, holding each chunk while the
// link is cut, and closes both ends when either side ends (HTTP/1.1 peer
// connections never half-close).
func (f *front) pipe(l *link, dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !f.pass(l) {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
