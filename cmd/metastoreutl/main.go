// Command metastoreutl is MetaStore's offline administration tool, the
// counterpart of etcdutl: it works on snapshot files and data dirs, never
// on a running member.
//
//	metastoreutl snapshot status FILE [-w simple|table|json|fields]
//	metastoreutl snapshot restore FILE [--data-dir DIR] [--wal-dir DIR] [--name N]
//	    [--initial-cluster ...] [--initial-cluster-token ...]
//	    [--initial-advertise-peer-urls ...] [--skip-hash-check]
//	    [--bump-revision N --mark-compacted]
//	metastoreutl snapshot export --to-etcd FILE|DIR OUT
//	metastoreutl migrate from-etcd FILE|DIR [--data-dir DIR] [restore's flags]
//	metastoreutl hashkv DATA-DIR|FILE [--rev R]
//	metastoreutl defrag --data-dir DIR
//	metastoreutl completion bash|zsh|fish|powershell
//	metastoreutl version
//
// Commands, flags, defaults, output formats, messages and exit codes are
// etcdutl v3.7's, on the same command line library (cobra, with etcdutl's
// settings: help shows the usage only, commands match by prefix); what
// they mean for MetaStore's storage (a pebble DB under
// <data-dir>/member/pebble, snapshots in the format of
// storeactor/snapshot.go) is documented with each command and in
// docs/operations.md, "metastoreutl".
package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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

func init() {
	cobra.EnablePrefixMatching = true // as etcdutl: `snap st` is `snapshot status`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// globals are etcdutl's persistent flags, accepted before or after the
// command words.
type globals struct {
	writeOut string
	timeout  time.Duration
}

// command is one leaf command: the table below is turned into cobra
// commands, a group ("snapshot") made for the first word of a two-word
// path.
type command struct {
	path  string // e.g. "snapshot status"
	use   string // usage line after the tool name
	short string
	// long is the command's description (cobra's Long): kept as its
	// documentation, not printed, as etcdutl's help prints the usage only.
	long string
	// flags declares the command's own flags on fs (pflag: the standard
	// library's methods, with cobra's parsing and messages).
	flags func(fs *pflag.FlagSet)
	// setup, if set, adds what etcdutl's command has beyond its flags:
	// argument checks, required flags, flags completed as directories.
	setup func(cc *cobra.Command)
	run   func(c *cli, args []string) int
}

// cli is one invocation: its output streams, global flags, and the
// command that ran (its flags: cc.Flags()) with its exit code.
type cli struct {
	stdout, stderr io.Writer
	g              globals
	cc             *cobra.Command
	code           int
}

var groups = map[string]string{
	"snapshot": "Manages MetaStore node snapshots",
	"migrate":  "Moves etcd's data into MetaStore, with every revision",
}

func commands() []*command {
	return []*command{completionCommand(), defragCommand(), hashKVCommand(), migrateFromEtcdCommand(),
		snapshotExportCommand(), snapshotRestoreCommand(), snapshotStatusCommand(), versionCommand()}
}

// run executes one command line and returns the exit code. As etcdutl's
// main, an error cobra reports (unknown command or flag, wrong arguments,
// a required flag missing) is printed by cobra, with the command's usage
// on stderr, then printed again, and exits 1.
func run(args []string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	root := c.rootCommand()
	root.SetArgs(args)
	cmd, err := root.ExecuteC()
	if err == nil {
		return c.code
	}
	// cobra prints the usage to the same writer as help; etcdutl's goes to
	// stderr, so it is printed here (an unknown command gets none).
	if !strings.HasPrefix(err.Error(), "unknown command ") {
		fmt.Fprintln(stderr, cmd.UsageString())
	}
	fmt.Fprintf(stderr, "Error: %v\n", err)
	return exitError
}

func (c *cli) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:          cliName,
		Short:        "An administrative command line tool for MetaStore.",
		SilenceUsage: true,
	}
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	root.SetHelpTemplate(`{{.UsageString}}`) // as etcdutl: help is the usage
	pf := root.PersistentFlags()
	pf.DurationVar(&c.g.timeout, "timeout", 10*time.Second, "time to wait to obtain a file lock on db file, 0 to block indefinitely")
	pf.StringVarP(&c.g.writeOut, "write-out", "w", "simple", "set the output format (fields, json, protobuf, simple, table)")
	_ = root.RegisterFlagCompletionFunc("write-out", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"fields", "json", "protobuf", "simple", "table"}, cobra.ShellCompDirectiveDefault
	})
	parents := map[string]*cobra.Command{}
	for _, k := range commands() {
		parent := root
		if group, _, sub := strings.Cut(k.path, " "); sub {
			if parents[group] == nil {
				parents[group] = &cobra.Command{Use: group + " <subcommand>", Short: groups[group]}
				root.AddCommand(parents[group])
			}
			parent = parents[group]
		}
		parent.AddCommand(c.leaf(k, parent))
	}
	return root
}

// leaf makes k's cobra command.
func (c *cli) leaf(k *command, parent *cobra.Command) *cobra.Command {
	use := k.use
	if parent.HasParent() {
		use = strings.TrimPrefix(use, parent.Name()+" ")
	}
	cc := &cobra.Command{
		Use: use, Short: k.short, Long: k.long,
		Run: func(cc *cobra.Command, args []string) {
			c.cc = cc
			c.code = k.run(c, args)
		},
	}
	if k.flags != nil {
		k.flags(cc.Flags())
	}
	if k.setup != nil {
		k.setup(cc)
	}
	return cc
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
