package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

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

// NewLogger builds the member's logger from --log-outputs, --log-format,
// --enable-log-rotation and --log-rotation-config-json, with etcd's
// encoder (its keys and timestamp layout, which log tooling built for
// etcd parses), at level (which the caller may change while it runs).
// Every line is kept: no sampling.
func (c *Config) NewLogger(level zap.AtomicLevel) (*zap.Logger, error) {
	if err := c.validateLogging(); err != nil {
		return nil, err
	}
	format, _ := logutil.ConvertToZapFormat(c.LogFormat)
	enc := zapcore.NewJSONEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	if format == logutil.ConsoleLogFormat {
		enc = zapcore.NewConsoleEncoder(logutil.DefaultZapLoggerConfig.EncoderConfig)
	}
	var sinks []zapcore.WriteSyncer
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
				return nil, errors.New("--log-outputs=journal: the systemd journal is not available")
			}
			sinks = append(sinks, zapcore.AddSync(journalWriter{}))
		default:
			if c.EnableLogRotation {
				r, err := c.rotation()
				if err != nil {
					return nil, err
				}
				r.Filename = o
				sinks = append(sinks, zapcore.AddSync(r))
				continue
			}
			f, _, err := zap.Open(o)
			if err != nil {
				return nil, err
			}
			sinks = append(sinks, f)
		}
	}
	out := zapcore.NewMultiWriteSyncer(sinks...)
	return zap.New(zapcore.NewCore(enc, out, level), zap.AddCaller(), zap.ErrorOutput(out),
		zap.AddStacktrace(zapcore.ErrorLevel)), nil
}

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
