package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/coreos/go-systemd/v22/journal"
	"go.etcd.io/etcd/client/pkg/v3/logutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"gopkg.in/natefinch/lumberjack.v2"
)

// etcd's --log-outputs names.
const (
	logDefault = "default" // stderr, as etcd 3.7
	logStderr  = "stderr"
	logStdout  = "stdout"
	logJournal = "journal"
)

// errLogRotationOutput is etcd's message (it names a flag etcd does not
// have; operators search for it as it is).
var errLogRotationOutput = errors.New("--log-outputs requires a single file path when --log-rotate-config-json is defined")

// validateLogging checks the logging settings as etcd does when it builds
// its logger.
func (c *Config) validateLogging() error {
	switch c.Logger {
	case "zap":
	case "capnslog":
		return errors.New("--logger=capnslog is removed in v3.5")
	default:
		return fmt.Errorf("unknown logger option %q", c.Logger)
	}
	if len(c.LogOutputs) == 0 {
		c.LogOutputs = []string{logDefault}
	}
	if len(c.LogOutputs) > 1 {
		for _, o := range c.LogOutputs {
			if o == logDefault {
				return fmt.Errorf("multi logoutput for %q is not supported yet", logDefault)
			}
		}
	}
	if c.EnableLogRotation {
		if _, err := c.rotation(); err != nil {
			return err
		}
	}
	var lvl zapcore.Level
	if err := lvl.Set(c.LogLevel); err != nil {
		return err
	}
	_, err := logutil.ConvertToZapFormat(c.LogFormat)
	return err
}

// rotation is the lumberjack settings of --log-rotation-config-json, for
// the one file output rotation allows.
func (c *Config) rotation() (*lumberjack.Logger, error) {
	r := &lumberjack.Logger{}
	files := 0
	for _, o := range c.LogOutputs {
		switch o {
		case logDefault, logStderr, logStdout:
		default:
			files++
		}
	}
	if files != 1 {
		return nil, errLogRotationOutput
	}
	if err := json.Unmarshal([]byte(c.LogRotationConfigJSON), r); err != nil {
		var syntax *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syntax):
			return nil, fmt.Errorf("improperly formatted log rotation config: %w", err)
		case errors.As(err, &typ):
			return nil, fmt.Errorf("invalid log rotation config: %w", err)
		default:
			return nil, fmt.Errorf("fail to unmarshal log rotation config: %w", err)
		}
	}
	return r, nil
}

// ZapLevel is the zap level of --log-level (Validate has checked it).
func (c *Config) ZapLevel() zapcore.Level {
	var lvl zapcore.Level
	_ = lvl.Set(c.LogLevel)
	return lvl
}

// Logging is a member's logger, whose level, outputs and format can
// change while it runs (a configuration reload): the logger and every
// logger derived from it (Named, With) write through the current core.
type Logging struct {
	Logger *zap.Logger
	level  zap.AtomicLevel
	core   *atomic.Pointer[zapcore.Core]
	mu     sync.Mutex
	files  []io.Closer // the current outputs' files, closed when replaced
}

// NewLogging builds the member's logger from --log-level, --log-outputs,
// --log-format, --enable-log-rotation and --log-rotation-config-json,
// with etcd's encoder (its keys and timestamp layout, which log tooling
// built for etcd parses). Every line is kept: no sampling.
func (c *Config) NewLogging() (*Logging, error) {
	l := &Logging{level: zap.NewAtomicLevelAt(c.ZapLevel()), core: new(atomic.Pointer[zapcore.Core])}
	if err := l.Apply(c); err != nil {
		return nil, err
	}
	l.Logger = zap.New(swapCore{cur: l.core}, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr)),
		zap.AddStacktrace(zapcore.ErrorLevel))
	return l, nil
}

// Apply makes the logging settings of c current: the new outputs are
// opened before the old ones are closed, so a bad value changes nothing.
func (l *Logging) Apply(c *Config) error {
	if err := c.validateLogging(); err != nil {
		return err
	}
	format, _ := logutil.ConvertToZapFormat(c.LogFormat)
	enc := zapcore.NewJSONEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	if format == logutil.ConsoleLogFormat {
		enc = zapcore.NewConsoleEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	}
	var sinks []zapcore.WriteSyncer
	var files []io.Closer
	fail := func(err error) error {
		for _, f := range files {
			_ = f.Close()
		}
		return err
	}
	seen := map[string]bool{}
	for _, o := range c.LogOutputs {
		if seen[o] {
			continue
		}
		seen[o] = true
		switch o {
		case logDefault, logStderr:
			sinks = append(sinks, zapcore.Lock(os.Stderr))
		case logStdout:
			sinks = append(sinks, zapcore.Lock(os.Stdout))
		case logJournal:
			if !journal.Enabled() {
				return fail(errors.New("--log-outputs=journal: the systemd journal is not available"))
			}
			sinks = append(sinks, zapcore.AddSync(journalWriter{}))
		default:
			if c.EnableLogRotation {
				r, err := c.rotation()
				if err != nil {
					return fail(err)
				}
				r.Filename = o
				sinks, files = append(sinks, zapcore.AddSync(r)), append(files, r)
				continue
			}
			f, err := os.OpenFile(o, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
			if err != nil {
				return fail(err)
			}
			sinks, files = append(sinks, zapcore.Lock(f)), append(files, f)
		}
	}
	core := zapcore.NewCore(enc, zapcore.NewMultiWriteSyncer(sinks...), l.level)
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.core.Swap(&core)
	if old != nil {
		_ = (*old).Sync()
	}
	for _, f := range l.files {
		_ = f.Close()
	}
	l.files = files
	l.level.SetLevel(c.ZapLevel())
	return nil
}

// swapCore writes through whichever core is current.
type swapCore struct {
	cur    *atomic.Pointer[zapcore.Core]
	fields []zapcore.Field
}

func (s swapCore) Enabled(l zapcore.Level) bool { return (*s.cur.Load()).Enabled(l) }

func (s swapCore) With(fields []zapcore.Field) zapcore.Core {
	return swapCore{cur: s.cur, fields: append(append([]zapcore.Field(nil), s.fields...), fields...)}
}

func (s swapCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if s.Enabled(e.Level) {
		return ce.AddCore(e, s)
	}
	return ce
}

func (s swapCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if len(s.fields) > 0 {
		fields = append(append([]zapcore.Field(nil), s.fields...), fields...)
	}
	return (*s.cur.Load()).Write(e, fields)
}

func (s swapCore) Sync() error { return (*s.cur.Load()).Sync() }

// journalWriter sends each JSON log line to the systemd journal with the
// line's level as the journal priority, as etcd's journal output does.
type journalWriter struct{}

func (journalWriter) Write(p []byte) (int, error) {
	var line struct {
		Level  string `json:"level"`
		Caller string `json:"caller"`
	}
	prio := journal.PriInfo
	if json.Unmarshal(p, &line) == nil {
		switch line.Level {
		case "debug":
			prio = journal.PriDebug
		case "warn":
			prio = journal.PriWarning
		case "error":
			prio = journal.PriErr
		case "dpanic", "panic":
			prio = journal.PriCrit
		case "fatal":
			prio = journal.PriEmerg
		}
	}
	err := journal.Send(string(p), prio, map[string]string{"SYSLOG_IDENTIFIER": "metastore", "CODE_FILE": line.Caller})
	return len(p), err
}
