package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// pingFlood is what a server answers a client that sends pings back to
// back over one HTTP/2 connection: "acked" when it answered every ping,
// "goaway <code> <debug data>" when it sent the client away.
//
// withStream opens a Watch stream first and keeps it open (no request
// sent, so the server writes nothing on it): gRPC judges pings against
// --grpc-keepalive-min-time only while the client has a stream open; on a
// connection without streams etcd's policy allows none within two hours.
func pingFlood(t *testing.T, endpoint string, withStream bool) string {
	t.Helper()
	const pings = 10
	c, err := net.DialTimeout("tcp", endpoint, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) // a failure's bound, not a wait
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	if withStream {
		var block bytes.Buffer
		enc := hpack.NewEncoder(&block)
		for _, f := range [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", "/etcdserverpb.Watch/Watch"},
			{":authority", endpoint}, {"content-type", "application/grpc"}, {"te", "trailers"},
		} {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range pings {
		if err := fr.WritePing(false, [8]byte{byte(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	acked := 0
	for acked < pings {
		f, err := fr.ReadFrame()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return "closed without GOAWAY"
			}
			t.Fatalf("after %d ping acks: %v", acked, err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if f.IsAck() {
				acked++
			}
		case *http2.GoAwayFrame:
			return fmt.Sprintf("goaway %s %s", f.ErrCode, f.DebugData())
		}
	}
	return "acked"
}

// A client that pings more often than --grpc-keepalive-min-time is sent
// away with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", as by etcd given
// the same flag; one that pings at all while it has no stream open is
// too, whatever the flag (etcd does not permit pings without streams).
func TestGRPCKeepAliveMinTimeAsEtcd(t *testing.T) {
	const tooMany = "goaway ENHANCE_YOUR_CALM too_many_pings"
	for _, tc := range []struct {
		minTime    string
		withStream bool
		want       string
	}{
		{"5s", true, tooMany}, // etcd's default: ten pings in a row break it
		{"1ns", true, "acked"},
		{"1ns", false, tooMany},
	} {
		name := fmt.Sprintf("min-time=%s/stream=%v", tc.minTime, tc.withStream)
		t.Run(name, func(t *testing.T) {
			flag := WithFlags("--grpc-keepalive-min-time=" + tc.minTime)
			for _, s := range []*Server{StartEtcd(t, flag), StartMetaStore(t, flag)} {
				if got := pingFlood(t, s.Endpoint(), tc.withStream); got != tc.want {
					t.Errorf("%s: %s; want %s", s.Kind, got, tc.want)
				}
			}
		})
	}
}

// A member under systemd's Type=notify (NOTIFY_SOCKET set) sends READY=1
// once it serves clients, and logs etcd's two lines about it, as etcd.
func TestSdNotifyReadyAsEtcd(t *testing.T) {
	for _, start := range []func(testing.TB, ...Option) *Server{StartEtcd, StartMetaStore} {
		sock := filepath.Join(t.TempDir(), "notify.sock")
		conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		s := start(t, WithEnv("NOTIFY_SOCKET="+sock))

		conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // a failure's bound, not a wait
		buf := make([]byte, 256)
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%s: no notification on NOTIFY_SOCKET: %v", s.Kind, err)
		}
		if got := string(buf[:k]); got != "READY=1" {
			t.Fatalf("%s: NOTIFY_SOCKET got %q; want READY=1", s.Kind, got)
		}
		// Ready as systemd now believes: a write commits.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = s.Client(t).Put(ctx, "k", "v")
		cancel()
		if err != nil {
			t.Fatalf("%s: put after READY=1: %v", s.Kind, err)
		}
		for _, line := range []string{`"notifying init daemon"`, `"successfully notified init daemon"`} {
			if !strings.Contains(s.Log(), line) {
				t.Errorf("%s: the log has no %s", s.Kind, line)
			}
		}
	}
}
