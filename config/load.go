package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"go.etcd.io/etcd/pkg/v3/flags"
	"go.uber.org/zap"
)

// ErrUsage is Load's error for a command line the flag package refused
// (it has printed why): etcd exits 2 for it.
var ErrUsage = errors.New("invalid command line")

// ErrVersion is Load's answer to --version: print the version, exit 0.
var ErrVersion = errors.New("version requested")

// EnvConflictError is an ETCD_* variable for a flag also given on the
// command line. etcd stops on it (a fatal log line, exit 1) rather than
// pick one: the operator meant one of the two and should say which.
type EnvConflictError struct{ Variable string }

func (e *EnvConflictError) Error() string {
	return "conflicting environment variable is shadowed by corresponding command-line flag (either unset environment variable or disable flag))"
}

// Load reads a member's configuration from the command line args (the
// program name excluded) and the environment, as etcd 3.7 does:
//
//   - flags first; an unknown flag or bad value is ErrUsage;
//   - --version is ErrVersion;
//   - a config file (--config-file, else ETCD_CONFIG_FILE) is read over
//     the defaults and every other flag and ETCD_* variable is ignored
//     (logged), as etcd;
//   - otherwise ETCD_<FLAG> variables set the flags not given on the
//     command line (each one used is logged, ETCD_* variables that name no
//     flag are warned about, one naming a flag also given is an
//     EnvConflictError);
//
// then Validate. lg logs what loading decides (etcd's lines).
func Load(args []string, environ []string, lg *zap.Logger) (*Config, error) {
	c := Default()
	fs := newFlagSet(c)
	fs.SetOutput(os.Stderr)
	fs.Usage = func() { fmt.Fprint(fs.Output(), usage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			return nil, flag.ErrHelp
		}
		return nil, ErrUsage
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("%q is not a valid flag", fs.Arg(0))
	}
	if fs.version {
		return nil, ErrVersion
	}
	file := c.ConfigFile
	if file == "" {
		file = envValue(environ, flags.FlagToEnv("ETCD", "config-file"))
	}
	if file != "" {
		c = Default()
		if err := c.fromFile(file); err != nil {
			return nil, err
		}
		lg.Info("loaded server configuration, other configuration command line flags and environment variables will be ignored if provided",
			zap.String("path", file))
		for _, k := range c.unknownKeys {
			lg.Warn("unknown key in the configuration file; ignored", zap.String("path", file), zap.String("key", k))
		}
	} else {
		if err := fs.fromEnv(environ, lg); err != nil {
			return nil, err
		}
		fs.fromFlags()
	}
	for name := range c.Explicit {
		if msg, ok := deprecated[name]; ok {
			lg.Warn(msg)
		}
	}
	// etcd enforces its default whatever is given.
	c.V2Deprecation = Default().V2Deprecation
	if err := c.Validate(lg); err != nil {
		return c, err
	}
	if c.DataDir == "" {
		c.DataDir = c.Name + ".metastore"
		lg.Warn("'data-dir' was empty; using default", zap.String("data-dir", c.DataDir))
	}
	return c, nil
}

// usage is printed after a command line the flag package refused, as
// etcd prints its usage lines.
const usage = `Usage:

  metastore [flags]
    Start a MetaStore member (it takes etcd's server flags, ETCD_*
    environment variables and config file).

  metastore --version
    Show the version of the etcd API it implements and its own.

  metastore -h | --help
    Show the help information about every flag.
`

// deprecated are etcd's warnings for settings it still takes.
var deprecated = map[string]string{
	"max-snapshots":  "--max-snapshots is deprecated in 3.6 and will be decommissioned in 3.8.",
	"v2-deprecation": "--v2-deprecation is deprecated and scheduled for removal in v3.8. The default value is enforced, ignoring user input.",
}

// fromEnv sets every flag not given on the command line from its ETCD_*
// variable, as etcd's flags.SetFlagsFromEnv, but returning (not exiting
// on) a variable that conflicts with a given flag.
func (fs *flagSet) fromEnv(environ []string, lg *zap.Logger) error {
	if v := envValue(environ, "ETCD_VERSION"); v != "" {
		lg.Warn("cannot set special environment variable", zap.String("key", "ETCD_VERSION"), zap.String("value", v))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[flags.FlagToEnv("ETCD", f.Name)] = true })
	used := map[string]bool{"ETCD_VERSION": true}
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		key := flags.FlagToEnv("ETCD", f.Name)
		val := envValue(environ, key)
		if given[key] || val == "" {
			return
		}
		used[key] = true
		if serr := fs.Set(f.Name, val); serr != nil {
			// etcd goes on with the others and reports the last failure.
			err = fmt.Errorf("invalid value %q for %s: %w", val, key, serr)
			return
		}
		lg.Info("recognized and used environment variable", zap.String("variable-name", key), zap.String("variable-value", val))
	})
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case used[k]:
		case given[k]:
			return &EnvConflictError{Variable: k}
		case strings.HasPrefix(k, "ETCD_"):
			lg.Warn("unrecognized environment variable", zap.String("environment-variable", kv))
		}
	}
	return err
}

// envValue is the value of key in environ ("" when unset), the last one
// winning as os.Getenv.
func envValue(environ []string, key string) string {
	val := ""
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			val = v
		}
	}
	return val
}
