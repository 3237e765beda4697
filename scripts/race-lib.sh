# shellcheck shell=bash
# Functions shared by scripts/abrace.sh and scripts/cpucost.sh (sourced by
# both; defines functions only): one single-member server per port pair,
# the benchmark tool's put and range scenarios as bench.sh's b/d (k/l with
# auth), and a process's CPU ticks.

# start_member <binary> <data dir> <client port> <peer port> <log>: starts
# MetaStore or etcd (same flags) in the background; its pid is $!.
start_member() {
	local c="http://127.0.0.1:$3" p="http://127.0.0.1:$4"
	rm -rf "$2"
	"$1" --data-dir "$2" --listen-client-urls "$c" --advertise-client-urls "$c" \
		--listen-peer-urls "$p" --initial-advertise-peer-urls "$p" \
		--initial-cluster "default=$p" >"$5" 2>&1 &
}

# scenario <put|range> <total>: sets SCENARIO to the benchmark tool's
# arguments (1000 clients over 100 conns; put: 8 B keys over 100k, 256 B
# values; range: serializable, the 256 B bench-range-key).
# shellcheck disable=SC2034 # SCENARIO is the caller's to read
scenario() {
	case "$1" in
	put) SCENARIO=(--conns=100 --clients=1000 put --total="$2" --key-size=8 --val-size=256 --key-space-size=100000) ;;
	range) SCENARIO=(--conns=100 --clients=1000 range bench-range-key --consistency=s --total="$2") ;;
	*) echo "unknown scenario '$1' (want put or range)" >&2; return 2 ;;
	esac
}

# prepare_member <etcdctl> <endpoint> [authsetup]: writes bench-range-key
# and, given the authsetup binary, turns auth on as bench.sh does (the
# tool then runs with --user=bench:benchpw).
prepare_member() {
	"$1" --endpoints "$2" put bench-range-key "$(printf '%0256d' 0)" >/dev/null
	if [[ -n "${3:-}" ]]; then
		"$3" -endpoint "$2" -password benchpw
	fi
}

proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; } # utime+stime, 1/100 s
