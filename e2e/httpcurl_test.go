package e2e

// Helpers for the HTTP tests of issue 18 (http_test.go, metrics_test.go):
// requests made with the real curl binary, transcripts of what each server
// answered, normalised so that MetaStore's and etcd's can be compared line
// for line, and a runner that plays one scenario on both servers at once.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// httpWait bounds every poll of these tests: a broken server fails the test
// instead of hanging it.
const httpWait = 20 * time.Second

// curlPath returns the curl binary, skipping the test if there is none.
func curlPath(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed")
	}
	return p
}

// curlResult is what curl got: the final response's status and headers and
// the body, or Err when curl failed (then Status is 0).
type curlResult struct {
	Status int
	Proto  string
	Header http.Header
	Body   string
	Err    string
}

// curl runs `curl -sS --max-time <timeout> -D <file> args...` and returns
// the response. args hold the URL and any other options (-X, -d, -H,
// --cert, ...).
func curl(t testing.TB, timeout time.Duration, args ...string) curlResult {
	t.Helper()
	hdr, err := os.CreateTemp("", "e2e-curl-hdr-")
	if err != nil {
		t.Fatal(err)
	}
	hdr.Close()
	defer os.Remove(hdr.Name())
	full := append([]string{"-sS", "--max-time", fmt.Sprintf("%.1f", timeout.Seconds()), "-D", hdr.Name()}, args...)
	cmd := exec.Command(curlPath(t), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	raw, _ := os.ReadFile(hdr.Name())
	r := parseCurlHeaders(raw)
	r.Body = stdout.String()
	if runErr != nil {
		r.Err = fmt.Sprintf("curl failed (%v): %s", runErr, strings.TrimSpace(stderr.String()))
	}
	return r
}

// parseCurlHeaders reads the status line and headers of the last response
// in a -D dump (after any 100 Continue).
func parseCurlHeaders(raw []byte) curlResult {
	r := curlResult{Header: http.Header{}}
	text := strings.ReplaceAll(string(raw), "\r\n", "\n")
	blocks := strings.Split(strings.TrimSpace(text), "\n\n")
	last := ""
	for _, b := range blocks {
		if strings.HasPrefix(b, "HTTP/") {
			last = b
		}
	}
	if last == "" {
		return r
	}
	lines := strings.Split(last, "\n")
	if f := strings.Fields(lines[0]); len(f) >= 2 {
		r.Proto = f[0]
		r.Status, _ = strconv.Atoi(f[1])
	}
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, ":"); ok {
			r.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
	}
	return r
}

// curlStream is a curl process reading a streaming response (-N -i), line
// by line.
type curlStream struct {
	cmd    *exec.Cmd
	head   chan curlResult // the status and headers, once read
	lines  chan string     // then the body's lines
	done   chan struct{}
	stderr bytes.Buffer
	once   sync.Once
}

// curlStart starts curl -sS -N -i args... in the background; it is killed
// when the test ends if still running.
func curlStart(t testing.TB, args ...string) *curlStream {
	t.Helper()
	s := &curlStream{head: make(chan curlResult, 1), lines: make(chan string, 1024), done: make(chan struct{})}
	s.cmd = exec.Command(curlPath(t), append([]string{"-sS", "-N", "-i", "--max-time", "60"}, args...)...)
	s.cmd.Stderr = &s.stderr
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(s.done)
		defer close(s.lines)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		var hdr bytes.Buffer
		inHeader := true
		for sc.Scan() {
			if inHeader {
				l := strings.TrimRight(sc.Text(), "\r")
				hdr.WriteString(l + "\r\n")
				// The blank line after a final (not 1xx) response's headers.
				if l == "" && !strings.HasPrefix(hdr.String(), "HTTP/1.1 1") {
					inHeader = false
					s.head <- parseCurlHeaders(hdr.Bytes())
				} else if l == "" {
					hdr.Reset()
				}
				continue
			}
			s.lines <- sc.Text()
		}
		if inHeader {
			s.head <- parseCurlHeaders(hdr.Bytes())
		}
		_ = s.cmd.Wait()
	}()
	t.Cleanup(s.stop)
	return s
}

// header returns the response's status and headers (Status 0 if none came
// within d).
func (s *curlStream) header(d time.Duration) curlResult {
	select {
	case h := <-s.head:
		s.head <- h
		return h
	case <-time.After(d):
		return curlResult{Header: http.Header{}, Err: "no response headers within " + d.String()}
	}
}

// next returns the next line of the body, or ok false if none came within
// d (or the response ended).
func (s *curlStream) next(d time.Duration) (line string, ok bool) {
	select {
	case l, ok := <-s.lines:
		return l, ok
	case <-time.After(d):
		return "", false
	}
}

// read returns the headers and the next n lines of the body as one
// curlResult, then stops curl. A line that does not come within httpWait
// fails the test.
func (s *curlStream) read(t testing.TB, n int) curlResult {
	t.Helper()
	r := s.header(httpWait)
	var lines []string
	for range n {
		l, ok := s.next(httpWait)
		if !ok {
			s.stop()
			t.Fatalf("streamed response: line %d of %d did not come (status %d, so far %q); curl: %s", len(lines)+1, n, r.Status, lines, s.stderr.String())
		}
		lines = append(lines, l)
	}
	s.stop()
	r.Body = strings.Join(lines, "\n") + "\n"
	return r
}

// stop kills curl (the client side of the stream) and waits for it.
func (s *curlStream) stop() {
	s.once.Do(func() {
		select {
		case <-s.done:
		default:
			_ = s.cmd.Process.Kill()
			<-s.done
		}
	})
}

// ---------------------------------------------------------------------------
// Transcripts

// hstep is one recorded observation: what was asked, and the normalised
// answer.
type hstep struct{ name, out string }

// hside is one server kind's run of a scenario: its transcript and the
// normalisation state (ids numbered in order of appearance, ports named).
type hside struct {
	t     *testing.T // the subtest running this side
	kind  Kind
	steps []hstep
	ids   map[string]string
	ports []string // "127.0.0.1:<port>", "<name>" pairs
	mu    sync.Mutex
	// scrapes are /metrics answers kept for checks across the sides.
	scrapes map[string]metricSet
}

func newHSide(kind Kind) *hside {
	return &hside{kind: kind, ids: map[string]string{}, scrapes: map[string]metricSet{}}
}

// port names a port so that transcripts show <name> instead of its number.
func (sd *hside) port(p int, name string) {
	sd.ports = append(sd.ports, "127.0.0.1:"+strconv.Itoa(p), "127.0.0.1:<"+name+">",
		"localhost:"+strconv.Itoa(p), "localhost:<"+name+">")
}

// name shows a member's name (in JSON, quoted) as <name>.
func (sd *hside) name(name, as string) {
	sd.ports = append(sd.ports, `"`+name+`"`, `"<`+as+`>"`)
}

func (sd *hside) replacePorts(s string) string {
	if len(sd.ports) == 0 {
		return s
	}
	return strings.NewReplacer(sd.ports...).Replace(s)
}

// id returns the placeholder of an id: <id1>, <id2>, ... in order of first
// appearance in this side's transcript ("0" stays "0").
func (sd *hside) id(v string) string {
	if v == "0" || v == "" {
		return v
	}
	n, ok := sd.ids[v]
	if !ok {
		n = fmt.Sprintf("<id%d>", len(sd.ids)+1)
		sd.ids[v] = n
	}
	return n
}

// note appends an observation made otherwise than with curl.
func (sd *hside) note(name, format string, args ...any) {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	sd.steps = append(sd.steps, hstep{name: sd.replacePorts(name), out: sd.replacePorts(fmt.Sprintf(format, args...))})
}

// record appends a curl response: status, headers (all but Date and
// Content-Length), and the body normalised (JSON ids, text health-check
// lines in a stable order).
func (sd *hside) record(name string, r curlResult) {
	sd.note(name, "%s", sd.format(r))
}

func (sd *hside) format(r curlResult) string {
	if r.Err != "" && r.Status == 0 {
		return "ERROR " + r.Err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d\n", r.Proto, r.Status)
	b.WriteString(formatHeaders(r.Header))
	body := sd.normBody(r.Body)
	b.WriteString(body)
	if body != "" && !strings.HasSuffix(body, "\n") {
		b.WriteString("\n\\ no newline at end of body")
	}
	if r.Err != "" {
		b.WriteString("\n(then " + r.Err + ")")
	}
	return b.String()
}

// ignoredHeaders differ between any two runs.
var ignoredHeaders = map[string]bool{"Date": true, "Content-Length": true}

// plumbingHeader: over TLS etcd's JSON gateway dials its own port, where
// its HTTP stack adds CORS headers and net/http hands the call to gRPC's
// ServeHTTP, which announces a "Trailer"; the gateway forwards those as
// response metadata (Grpc-Metadata-Access-Control-*, -Trailer). They are
// plumbing, not part of an answer (MetaStore's gateway calls gRPC in
// process).
func plumbingHeader(k string) bool {
	return k == "Grpc-Metadata-Trailer" || strings.HasPrefix(k, "Grpc-Metadata-Access-Control-")
}

func formatHeaders(h http.Header) string {
	var names []string
	for k := range h {
		if !ignoredHeaders[k] && !plumbingHeader(k) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\n", k, strings.Join(h[k], ", "))
	}
	return b.String()
}

// normBody normalises a response body: every line that is JSON is
// normalised as such (a streaming response is one JSON object a line),
// runs of health-check lines ("[+]name ok", "[-]name failed: ...") are
// sorted (etcd prints them in map order), ports are named.
func (sd *hside) normBody(body string) string {
	// protobuf's JSON errors put a non-breaking space after "proto:" at
	// random per binary (to keep callers from matching its text).
	body = strings.ReplaceAll(body, "proto:\u00a0", "proto: ")
	lines := strings.Split(body, "\n")
	for i, l := range lines {
		if !isCheckLine(l) {
			if n, err := sd.normJSON(l); err == nil {
				lines[i] = n
			}
		}
	}
	// Sort runs of check lines.
	for i := 0; i < len(lines); {
		if !isCheckLine(lines[i]) {
			i++
			continue
		}
		j := i
		for j < len(lines) && isCheckLine(lines[j]) {
			j++
		}
		slices.Sort(lines[i:j])
		i = j
	}
	return sd.replacePorts(strings.Join(lines, "\n"))
}

func isCheckLine(l string) bool { return strings.HasPrefix(l, "[+]") || strings.HasPrefix(l, "[-]") }

// ---------------------------------------------------------------------------
// JSON normalisation, keeping the servers' key order.

type jkv struct {
	k string
	v any
}

type jobj []jkv

func (o jobj) get(k string) (any, bool) {
	for _, kv := range o {
		if kv.k == k {
			return kv.v, true
		}
	}
	return nil, false
}

func parseOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return tok, nil // string, json.Number, bool or nil
	}
	switch d {
	case '{':
		o := jobj{}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			v, err := parseOrdered(dec)
			if err != nil {
				return nil, err
			}
			o = append(o, jkv{kt.(string), v})
		}
		_, err := dec.Token()
		return o, err
	case '[':
		a := []any{}
		for dec.More() {
			v, err := parseOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token()
		return a, err
	}
	return nil, fmt.Errorf("unexpected %v", d)
}

// parseJSON parses one JSON document, keeping key order (objects are jobj,
// numbers json.Number).
func parseJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	v, err := parseOrdered(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return v, nil
}

func renderJSON(b *strings.Builder, v any) {
	switch v := v.(type) {
	case jobj:
		b.WriteByte('{')
		for i, kv := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			renderJSON(b, kv.k)
			b.WriteByte(':')
			renderJSON(b, kv.v)
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			renderJSON(b, e)
		}
		b.WriteByte(']')
	case json.Number:
		b.WriteString(v.String())
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		b.WriteString(strings.TrimSuffix(buf.String(), "\n"))
	}
}

// idFields hold member, cluster and lease ids.
var idFields = map[string]bool{
	"cluster_id": true, "member_id": true, "ID": true, "leader": true, "lease": true,
	"memberID": true, "id": true,
}

// opaqueFields vary with the server's internals (log indexes, file sizes,
// terms, hashes of differently laid out stores, random tokens).
var opaqueFields = map[string]string{
	"raft_term": "<term>", "raftTerm": "<term>", "raftIndex": "<index>", "raftAppliedIndex": "<index>",
	"dbSize": "<size>", "dbSizeInUse": "<size>", "hash": "<hash>", "token": "<token>",
	"blob": "<blob>",
}

// leaseSuffixRE matches the keys the lock and election services make:
// <name>/<lease id in hex>.
var leaseSuffixRE = regexp.MustCompile(`/([0-9a-f]{1,16})$`)

func (sd *hside) normJSON(s string) (string, error) {
	v, err := parseJSON(s)
	if err != nil {
		return "", err
	}
	v = sd.normValue("", v, nil)
	var b strings.Builder
	renderJSON(&b, v)
	return b.String(), nil
}

func scalarString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return v.String(), true
	}
	return "", false
}

func (sd *hside) normValue(key string, v any, parent jobj) any {
	switch x := v.(type) {
	case jobj:
		out := make(jobj, len(x))
		for i, kv := range x {
			out[i] = jkv{kv.k, sd.normValue(kv.k, kv.v, x)}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = sd.normValue(key, e, parent)
		}
		if key == "members" {
			// Ordered by member id, which is random: compare as a set.
			slices.SortFunc(out, func(a, b any) int {
				var sa, sb strings.Builder
				renderJSON(&sa, a)
				renderJSON(&sb, b)
				return strings.Compare(sa.String(), sb.String())
			})
		}
		return out
	}
	s, ok := scalarString(v)
	if !ok {
		return v
	}
	if ph, ok := opaqueFields[key]; ok {
		return ph
	}
	switch {
	case idFields[key]:
		if _, isNum := strconv.ParseUint(s, 10, 64); isNum == nil {
			return sd.id(s)
		}
	case key == "TTL":
		// The remaining TTL of TimeToLive depends on timing.
		if _, timeToLive := parent.get("grantedTTL"); timeToLive {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
				return "<remaining>"
			}
		}
	case key == "key":
		// Keys are base64; those the lock and election services make end
		// in a lease id in hex.
		raw, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return v
		}
		k := string(raw)
		if m := leaseSuffixRE.FindStringSubmatchIndex(k); m != nil {
			if n, err := strconv.ParseUint(k[m[2]:m[3]], 16, 64); err == nil && n != 0 {
				k = k[:m[2]] + sd.id(strconv.FormatUint(n, 10))
			}
		}
		return "b64:" + k
	}
	return v
}

// ---------------------------------------------------------------------------
// Running a scenario on both servers

// httpKinds are the server kinds the HTTP tests run: both, unless
// E2E_HTTP_KINDS names some ("etcd" to check a scenario against the
// reference alone while writing it).
func httpKinds() []Kind {
	if v := os.Getenv("E2E_HTTP_KINDS"); v != "" {
		var ks []Kind
		for _, k := range strings.Split(v, ",") {
			ks = append(ks, Kind(strings.TrimSpace(k)))
		}
		return ks
	}
	return []Kind{KindMetaStore, KindEtcd}
}

// startKind starts a single-member server of kind.
func startKind(t testing.TB, kind Kind, opts ...Option) *Server {
	t.Helper()
	if kind == KindEtcd {
		return StartEtcd(t, opts...)
	}
	return StartMetaStore(t, opts...)
}

// bothKinds plays scenario on MetaStore and on etcd in parallel (each
// starting its own servers) and then requires the same transcript from
// both; a difference shows both sides' answers at that step, and both
// transcripts in full.
func bothKinds(t *testing.T, scenario func(t *testing.T, sd *hside)) []*hside {
	t.Helper()
	curlPath(t)
	kinds := httpKinds()
	sides := make([]*hside, len(kinds))
	t.Run("run", func(t *testing.T) {
		for i, kind := range kinds {
			sides[i] = newHSide(kind)
			t.Run(string(kind), func(t *testing.T) {
				t.Parallel()
				sides[i].t = t
				scenario(t, sides[i])
			})
		}
	})
	if len(sides) == 2 {
		compareSides(t, sides[0], sides[1])
	} else if len(sides) == 1 {
		t.Logf("%s transcript (nothing to compare with):\n%s", sides[0].kind, sides[0].String())
	}
	return sides
}

func (sd *hside) String() string {
	var b strings.Builder
	for i, st := range sd.steps {
		fmt.Fprintf(&b, "--- %d. %s\n%s\n", i+1, st.name, strings.TrimRight(st.out, "\n"))
	}
	return b.String()
}

// compareSides requires ms's transcript to be ref's, step by step.
func compareSides(t *testing.T, ms, ref *hside) {
	t.Helper()
	diffs := 0
	n := min(len(ms.steps), len(ref.steps))
	for i := range n {
		m, r := ms.steps[i], ref.steps[i]
		switch {
		case m.name != r.name:
			t.Errorf("step %d: the scenarios diverged: %s did %q, %s did %q", i+1, ms.kind, m.name, ref.kind, r.name)
		case m.out != r.out:
			t.Errorf("step %d %q differs:\n  %s:\n%s\n  %s:\n%s", i+1, r.name, ref.kind, indent(r.out), ms.kind, indent(m.out))
		default:
			continue
		}
		diffs++
		if diffs >= 40 {
			t.Errorf("(stopping after %d differences)", diffs)
			break
		}
	}
	for _, sides := range [][2]*hside{{ms, ref}, {ref, ms}} {
		short, long := sides[0], sides[1]
		if len(short.steps) < len(long.steps) {
			var rest []string
			for i, st := range long.steps[n:] {
				rest = append(rest, fmt.Sprintf("%d. %s", n+i+1, st.name))
			}
			t.Errorf("%s's transcript ends after step %d (its run failed: see above); %s's goes on with:\n  %s",
				short.kind, n, long.kind, strings.Join(rest, "\n  "))
			diffs++
		}
	}
	if diffs > 0 {
		t.Logf("full %s transcript:\n%s", ref.kind, ref.String())
		t.Logf("full %s transcript:\n%s", ms.kind, ms.String())
	} else if testing.Verbose() {
		t.Logf("transcript (the same on both):\n%s", ref.String())
	}
}

func indent(s string) string {
	return "    | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    | ")
}

// pollCurl repeats a request until ok accepts the answer (within httpWait)
// and returns the last answer; the test fails if ok never did.
func pollCurl(t *testing.T, what string, ok func(curlResult) bool, args ...string) curlResult {
	t.Helper()
	deadline := time.Now().Add(httpWait)
	for {
		r := curl(t, 10*time.Second, args...)
		if ok(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for %s; last answer: status %d, body %q, %s", httpWait, what, r.Status, r.Body, r.Err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pollUntil polls cond until it holds (within httpWait), failing the test
// otherwise.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(httpWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%v) for %s", httpWait, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pollFor polls cond for up to d and reports whether it came to hold;
// for states whose absence is itself compared afterwards.
func pollFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}

func statusIs(code int) func(curlResult) bool {
	return func(r curlResult) bool { return r.Status == code }
}

// ctxFor is a context bounded by httpWait.
func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), httpWait)
	t.Cleanup(cancel)
	return ctx
}
