package main

import (
	"errors"
	"flag"
	"strings"
)

// etcd server flags MetaStore accepts but does not act on yet. A user's
// etcd command line must start MetaStore, so these are taken (with their
// value) and reported in a warning rather than refused. Booleans take no
// separate value argument.
var (
	etcdBoolFlags = words(`discovery-insecure-skip-tls-verify discovery-insecure-transport
		enable-distributed-tracing enable-log-rotation
		initial-election-tick-advance memory-mlock
		pre-vote socket-reuse-address socket-reuse-port
		unsafe-no-fsync`)
	etcdValueFlags = words(`backend-batch-interval backend-batch-limit backend-bbolt-freelist-type
		bootstrap-defrag-threshold-megabytes
		compact-hash-check-time compaction-batch-limit compaction-sleep-interval config-file
		discovery-cacert discovery-cert discovery-dial-timeout discovery-fallback
		discovery-keepalive-time discovery-keepalive-timeout discovery-key
		discovery-password discovery-request-timeout discovery-srv discovery-srv-name
		discovery-token discovery-user distributed-tracing-address
		distributed-tracing-instance-id distributed-tracing-sampling-rate
		distributed-tracing-service-name downgrade-check-time grpc-keepalive-interval
		grpc-keepalive-min-time grpc-keepalive-timeout log-format log-outputs
		log-rotation-config-json max-concurrent-streams max-snapshots max-wals
		raft-read-timeout raft-write-timeout
		v2-deprecation wal-dir warning-apply-duration
		warning-unary-request-duration discovery`)
)

func words(s string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(s) {
		m[w] = true
	}
	return m
}

// splitArgs separates the etcd flags MetaStore does not implement from the
// ones its FlagSet knows, so that flag.Parse never fails on an etcd flag.
// It understands the forms Go's flag package does: -k, --k, -k=v, --k=v
// and -k v. Unknown non-etcd flags stay in place for fs to reject.
func splitArgs(fs *flag.FlagSet, args []string) (known []string, ignored []string) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" || !strings.HasPrefix(a, "-") || a == "-" {
			known = append(known, args[i:]...)
			break
		}
		name := strings.TrimLeft(a, "-")
		hasValue := false
		if eq := strings.IndexByte(name, '='); eq >= 0 {
			name, hasValue = name[:eq], true
		}
		if fs.Lookup(name) != nil {
			known = append(known, a)
			if !hasValue && !isBoolFlag(fs, name) && i+1 < len(args) {
				i++
				known = append(known, args[i])
			}
			continue
		}
		switch {
		case etcdBoolFlags[name]:
			ignored = append(ignored, name)
		case etcdValueFlags[name] || strings.HasPrefix(name, "experimental-"):
			ignored = append(ignored, name)
			if !hasValue && i+1 < len(args) {
				i++
			}
		default:
			known = append(known, a)
		}
	}
	return known, ignored
}

func isBoolFlag(fs *flag.FlagSet, name string) bool {
	f := fs.Lookup(name)
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// listFlag is a comma-separated list flag, split as etcd's StringsValue.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = strings.Split(s, ","); return nil }

// urlsFlag is a comma-separated URL list flag.
type urlsFlag []string

func (u *urlsFlag) String() string { return strings.Join(*u, ",") }
func (u *urlsFlag) Set(s string) error {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return errors.New("empty URL list")
	}
	*u = out
	return nil
}
