#!/usr/bin/env bash
# cpucost.sh: CPU per request of a server and of etcd's benchmark tool.
#
#   scripts/cpucost.sh [rounds] <binary> put|range
#
# Starts <binary> (MetaStore, or the reference etcd: same flags) on a fresh
# data dir with auth on as in bench.sh's k and l (scripts/authsetup), then
# per round runs the benchmark tool at 100 conns / 1000 clients as that
# user (put: 8 B keys over 100k, 256 B values; range: serializable, one
# 256 B key) and prints req/s with the microseconds of CPU the server and
# the tool spent per request (utime+stime of each process).
#
# Why: on a machine the tool shares, a server's throughput is set by the sum
# of both costs, so this splits a req/s ratio into what the server controls
# and what it does not. Each round first runs the tool for 1000 requests
# and subtracts that run's CPU: creating the tool's 100 clients costs 100
# bcrypt checks (about 6 s of server CPU here), done before the tool
# starts timing.
#
# Env: BENCH (the benchmark tool, default .ref/bin/benchmark),
# CPUCOST_TOTAL (requests per round, default 200000), CPUCOST_DIR (scratch,
# default a temp dir). Ports 23790/23800.
set -euo pipefail

rounds=3
if [[ $# -eq 3 ]]; then rounds=$1; shift; fi
if [[ $# -ne 2 || ( $2 != put && $2 != range ) ]]; then
	echo "usage: $0 [rounds] <binary> put|range" >&2
	exit 2
fi
bin=$1 op=$2
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/race-lib.sh
source "$root/scripts/race-lib.sh"
bench=${BENCH:-$root/.ref/bin/benchmark}
total=${CPUCOST_TOTAL:-200000}
dir=${CPUCOST_DIR:-$(mktemp -d)}
ep=127.0.0.1:23790

(cd "$root" && go build -o "$dir/authsetup" ./scripts/authsetup)
start_member "$bin" "$dir/data" 23790 23800 "$dir/server.log"
pid=$!
trap 'kill $pid 2>/dev/null || true; wait 2>/dev/null || true' EXIT
sleep 2
kill -0 "$pid" 2>/dev/null || { echo "server did not start: $dir/server.log" >&2; exit 1; }
prepare_member "$(dirname "$bench")/etcdctl" "$ep" "$dir/authsetup"

# run <n> <out>: the tool for n requests; its CPU seconds on the last line of out.
run() {
	scenario "$op" "$1"
	(TIMEFORMAT='tool-cpu %U %S' && time "$bench" --endpoints "$ep" --user=bench:benchpw "${SCENARIO[@]}") >"$2" 2>&1
}
toolsec() { awk '/^tool-cpu/ {print $2 + $3}' "$1"; }

run "$total" "$dir/warm" # warm up: key space filled, caches hot
for ((r = 0; r < rounds; r++)); do
	t0=$(proc_ticks "$pid")
	run 1000 "$dir/setup"
	t1=$(proc_ticks "$pid")
	run "$total" "$dir/out"
	t2=$(proc_ticks "$pid")
	awk -v n="$total" -v setup=$((t1 - t0)) -v all=$((t2 - t1)) \
		-v tsetup="$(toolsec "$dir/setup")" -v tall="$(toolsec "$dir/out")" \
		-v rps="$(awk '/Requests\/sec/ {print $2}' "$dir/out")" -v r="$r" 'BEGIN {
		printf "round %d  %6.0f req/s  server %5.1f us/req  tool %5.1f us/req\n",
			r, rps, (all - setup) * 10000 / (n - 1000), (tall - tsetup) * 1e6 / (n - 1000)
	}'
done
