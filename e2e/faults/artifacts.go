//go:build linux

package faults

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// outEnv names a directory where each run keeps its artifacts (schedule,
// member logs, the drawn KV history), failed or not. Without it they go
// to a temp dir that is removed when the run passes and kept, with the
// member logs, when it fails.
const outEnv = "METASTORE_FAULTS_OUT"

// artifacts returns the run's artifact directory.
func artifacts(t testing.TB) string {
	t.Helper()
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	if base := os.Getenv(outEnv); base != "" {
		dir := filepath.Join(base, name+"-"+time.Now().Format("20060102-150405"))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatalf("artifact dir: %v", err)
		}
		t.Logf("artifacts in %s", dir)
		return dir
	}
	dir, err := os.MkdirTemp("", "metastore-faults-"+name+"-")
	if err != nil {
		t.Fatalf("artifact dir: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("artifacts kept in %s", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	return dir
}

func copyFile(from, to string) {
	src, err := os.Open(from)
	if err != nil {
		return
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return
	}
	defer dst.Close()
	_, _ = io.Copy(dst, src)
}

// journal is the run's schedule: what was done when, in the test log and
// in a file among the artifacts.
type journal struct {
	t     testing.TB
	mu    sync.Mutex
	f     *os.File
	start time.Time
}

func newJournal(t testing.TB, path string) *journal {
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return &journal{t: t, f: f, start: time.Now()}
}

func (j *journal) log(format string, args ...any) {
	j.t.Helper()
	line := fmt.Sprintf("%s +%v "+format, append([]any{time.Now().Format("15:04:05.000"), time.Since(j.start).Round(time.Millisecond)}, args...)...)
	j.mu.Lock()
	defer j.mu.Unlock()
	fmt.Fprintln(j.f, line)
	j.t.Log(line)
}
