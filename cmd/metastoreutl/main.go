// Command metastoreutl is MetaStore's offline administration tool, the
// counterpart of etcdutl: it works on snapshot files and data dirs, never
// on a running member.
//
//	metastoreutl snapshot status FILE [-w simple|table|json|fields]
//	metastoreutl snapshot restore FILE [--data-dir DIR] [--name N]
//	    [--initial-cluster ...] [--initial-cluster-token ...]
//	    [--initial-advertise-peer-urls ...] [--skip-hash-check]
//	metastoreutl snapshot export --to-etcd FILE|DIR OUT
//	metastoreutl migrate from-etcd FILE|DIR [--data-dir DIR] [restore's flags]
//	metastoreutl defrag --data-dir DIR
//	metastoreutl version
//
// Commands, flags, defaults, output formats, messages and exit codes are
// etcdutl v3.7's; what they mean for MetaStore's storage (a pebble DB under
// <data-dir>/member/pebble, snapshots in the format of
// storeactor/snapshot.go) is documented with each command.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/metastore/metastore/node"
)

// Version is metastoreutl's own version (MetaStore's).
const Version = "0.1.0"

// Exit codes, as etcdutl's (pkg/cobrautl).
const (
	exitSuccess    = 0
	exitError      = 1 // a failed command; also cobra's usage errors (unknown flag or command)
	exitBadFeature = 4 // e.g. an unsupported output format
	exitBadArgs    = 128
)

const cliName = "metastoreutl"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// globals are etcdutl's persistent flags, accepted before or after the
// command words.
type globals struct {
	writeOut string
	timeout  time.Duration
}

type command struct {
	path  string // e.g. "snapshot status"
	use   string // usage line after the tool name
	short string
	long  string
	// flags declares the command's own flags on fs.
	flags func(fs *flag.FlagSet)
	run   func(c *cli, args []string) int
}

// cli is one invocation: its output streams and global flags.
type cli struct {
	stdout, stderr io.Writer
	g              globals
	cmd            *command
	fs             *flag.FlagSet
}

var groups = map[string]string{
	"snapshot": "Manages MetaStore node snapshots",
	"migrate":  "Migrates data from etcd",
}

func commands() []*command {
	return []*command{defragCommand(), migrateFromEtcdCommand(), snapshotExportCommand(), snapshotRestoreCommand(), snapshotStatusCommand(), versionCommand()}
}

// globalValueFlags take a value in the next argument (-w json).
var globalValueFlags = map[string]bool{"w": true, "write-out": true, "timeout": true}

func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	// The command words are the arguments that are neither flags nor the
	// value of a global flag, up to the leaf command.
	var words []string
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") && a != "-" {
			rest = append(rest, a)
			name := strings.TrimLeft(a, "-")
			if !strings.Contains(name, "=") && globalValueFlags[name] && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
			continue
		}
		if len(words) == 0 || (len(words) == 1 && groups[words[0]] != "") {
			words = append(words, a)
			continue
		}
		rest = append(rest, a)
	}
	if len(words) > 0 && words[0] == "help" {
		words = words[1:]
		rest = append(rest, "--help")
	}
	path := strings.Join(words, " ")
	var cmd *command
	for _, k := range commands() {
		if k.path == path {
			cmd = k
		}
	}
	if cmd == nil {
		return c.group(words, rest)
	}
	c.cmd = cmd
	c.fs = c.flagSet(cmd)
	pos, err := parseInterspersed(c.fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(stdout, true)
		return exitSuccess
	}
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		c.usage(stderr, false)
		return exitError
	}
	return cmd.run(c, pos)
}

// group answers a path that is not a leaf command: the tool itself or
// "snapshot" (their help), or an unknown command.
func (c *cli) group(words, rest []string) int {
	help := len(words) == 0 || (len(words) == 1 && groups[words[0]] != "")
	if !help {
		parent, name := cliName, words[0]
		if len(words) > 1 {
			parent, name = cliName+" "+words[0], words[1]
		}
		fmt.Fprintf(c.stderr, "Error: unknown command %q for %q\nRun '%s --help' for usage.\n", name, parent, parent)
		return exitError
	}
	prefix := ""
	if len(words) == 1 {
		prefix = words[0] + " "
	}
	fs := flag.NewFlagSet(cliName, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var g globals
	declareGlobals(fs, &g)
	h := fs.Bool("help", false, "")
	fs.BoolVar(h, "h", false, "")
	if _, err := parseInterspersed(fs, rest); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(c.stderr, "Error: %v\n", err)
		return exitError
	}
	w := c.stdout
	fmt.Fprintf(w, "Usage:\n  %s %s[command]\n\nAvailable Commands:\n", cliName, prefix)
	seen := map[string]bool{}
	for _, k := range commands() {
		if !strings.HasPrefix(k.path, prefix) {
			continue
		}
		name, _, sub := strings.Cut(strings.TrimPrefix(k.path, prefix), " ")
		short := k.short
		if sub {
			short = groups[name]
		}
		if !seen[name] {
			seen[name] = true
			fmt.Fprintf(w, "  %-11s %s\n", name, short)
		}
	}
	fmt.Fprintf(w, "\nFlags:\n  -h, --help   help for %s\n", strings.TrimSpace(cliName+" "+prefix))
	fmt.Fprintf(w, "\nGlobal Flags:\n%s\n\nUse \"%s %s[command] --help\" for more information about a command.\n", globalUsage, cliName, prefix)
	return exitSuccess
}

const globalUsage = `      --timeout duration   time to wait to obtain a file lock on db file, 0 to block indefinitely (default 10s)
  -w, --write-out string   set the output format (fields, json, simple, table) (default "simple")`

func declareGlobals(fs *flag.FlagSet, g *globals) {
	fs.StringVar(&g.writeOut, "write-out", "simple", "")
	fs.StringVar(&g.writeOut, "w", "simple", "")
	fs.DurationVar(&g.timeout, "timeout", 10*time.Second, "")
}

func (c *cli) flagSet(cmd *command) *flag.FlagSet {
	fs := flag.NewFlagSet(cliName+" "+cmd.path, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	declareGlobals(fs, &c.g)
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return fs
}

// usage prints a command's help the way cobra lays it out for etcdutl;
// withLong adds the command's description first (for --help).
func (c *cli) usage(w io.Writer, withLong bool) {
	if withLong && c.cmd.long != "" {
		fmt.Fprintf(w, "%s\n\n", strings.TrimSpace(c.cmd.long))
	}
	fmt.Fprintf(w, "Usage:\n  %s %s\n\nFlags:\n", cliName, c.cmd.use)
	var names, usages []string
	c.fs.VisitAll(func(f *flag.Flag) {
		if f.Usage == "" {
			return // globals and aliases
		}
		kind, usage := flag.UnquoteUsage(f)
		if kind == "value" {
			kind = ""
		}
		switch f.DefValue {
		case "", "0", "false":
		default:
			if kind == "string" {
				usage += fmt.Sprintf(" (default %q)", f.DefValue)
			} else {
				usage += fmt.Sprintf(" (default %s)", f.DefValue)
			}
		}
		names = append(names, strings.TrimSpace("      --"+f.Name+" "+kind))
		usages = append(usages, usage)
	})
	leaf := c.cmd.path[strings.LastIndex(c.cmd.path, " ")+1:]
	names = append(names, "-h, --help")
	usages = append(usages, "help for "+leaf)
	width := 0
	for _, n := range names {
		width = max(width, len(n))
	}
	for i, n := range names {
		indent := "      "
		if strings.HasPrefix(n, "-h") {
			indent = "  "
		}
		fmt.Fprintf(w, "%s%-*s   %s\n", indent, width, n, usages[i])
	}
	fmt.Fprintf(w, "\nGlobal Flags:\n%s\n", globalUsage)
}

// parseInterspersed parses flags anywhere among the arguments (as cobra
// does: `snapshot status FILE -w json`) and returns the positional ones.
// Unknown flags are reported as cobra reports them.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if name, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: -"); ok {
				return nil, fmt.Errorf("unknown flag: --%s", name)
			}
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // everything after "--" is positional
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// fail prints err as etcdutl does and returns code.
func (c *cli) fail(code int, err error) int {
	fmt.Fprintf(c.stderr, "Error: %v\n", err)
	return code
}

func versionCommand() *command {
	return &command{
		path: "version", use: "version", short: "Prints the version of metastoreutl",
		run: func(c *cli, args []string) int {
			fmt.Fprintf(c.stdout, "metastoreutl version: %s\nAPI version: %s\n", Version, node.ClusterVersion)
			return exitSuccess
		},
	}
}
