#!/usr/bin/env bash
# abrace.sh: A/B two server binaries on the put or range path by racing them.
#
#   scripts/abrace.sh [rounds] <binary-A> <binary-B>
#
# Both servers run at once (ports 23790 and 23792); each round starts
# etcd's benchmark tool against both at the same moment (by default put,
# 1000 clients, 8 B keys, 256 B values over 100k keys) and prints each
# side's req/s, their ratio B/A and each server's CPU ticks (1/100 s) for
# the round, with the CPU ticks of the benchmark tool that drove it (it
# shares the cores, so what a server makes its clients spend counts too).
#
# Why race: on a small shared VM the same binary's put throughput drifts by
# +-15 % from one run to the next (both the server's and the benchmark
# tool's CPU per request move together), so sequential A/B runs cannot see
# a 5 % change. Racing puts both servers under the same conditions at the
# same time: an A/A run gives ratios within about +-3 % and CPU ticks within
# about 2 %, so a change of a few percent in CPU per put is visible.
#
# Either binary may be a wrapper script that sets environment variables
# (e.g. GOGC) and execs a server. Env: BENCH (the benchmark tool, default
# .ref/bin/benchmark), ABRACE_TOTAL (requests per side per round, default
# 50000), ABRACE_DIR (scratch data, default a temp dir), ABRACE_OP (put, the
# default, or range: serializable ranges of one 256 B key, as bench.sh's d),
# ABRACE_AUTH=1 (auth on as in bench.sh's k and l: scripts/authsetup, then
# the tool runs as its user; each round's ticks then include the tool's 100
# logins, bcrypt, ~6 s of server CPU: scripts/cpucost.sh subtracts them).
# A binary may also be the reference etcd.
set -euo pipefail

rounds=5
if [[ $# -eq 3 ]]; then rounds=$1; shift; fi
if [[ $# -ne 2 ]]; then
	echo "usage: $0 [rounds] <binary-A> <binary-B>" >&2
	exit 2
fi
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/race-lib.sh
source "$root/scripts/race-lib.sh"
bench=${BENCH:-$root/.ref/bin/benchmark}
dir=${ABRACE_DIR:-$(mktemp -d)}
scenario "${ABRACE_OP:-put}" "${ABRACE_TOTAL:-50000}"
op=("${SCENARIO[@]}")
user=() authsetup=""
if [[ ${ABRACE_AUTH:-} == 1 ]]; then
	(cd "$root" && go build -o "$dir/authsetup" ./scripts/authsetup)
	user=(--user=bench:benchpw) authsetup=$dir/authsetup
fi

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
bins=("$1" "$2")
for i in 0 1; do
	start_member "${bins[$i]}" "$dir/s$i" $((23790 + 2 * i)) $((23800 + 2 * i)) "$dir/s$i.log"
	pids+=($!)
done
sleep 2
for i in 0 1; do
	if ! kill -0 "${pids[$i]}" 2>/dev/null; then
		echo "server ${bins[$i]} did not start: $dir/s$i.log" >&2
		exit 1
	fi
	ep=127.0.0.1:$((23790 + 2 * i))
	prepare_member "$(dirname "$bench")/etcdctl" "$ep" "$authsetup"
	"$bench" --endpoints "$ep" "${user[@]}" "${op[@]}" >/dev/null 2>&1 # warm up
done

rps() { awk '/Requests\/sec/ {printf "%d", $2}' "$1"; }
toolticks() { awk '/^tool-cpu/ {printf "%d", ($2 + $3) * 100}' "$1"; }
for ((r = 0; r < rounds; r++)); do
	a0=$(proc_ticks "${pids[0]}") b0=$(proc_ticks "${pids[1]}")
	(TIMEFORMAT='tool-cpu %U %S' && time "$bench" --endpoints 127.0.0.1:23790 "${user[@]}" "${op[@]}") >"$dir/a.out" 2>&1 &
	ba=$!
	(TIMEFORMAT='tool-cpu %U %S' && time "$bench" --endpoints 127.0.0.1:23792 "${user[@]}" "${op[@]}") >"$dir/b.out" 2>&1 &
	bb=$!
	wait "$ba" "$bb"
	a1=$(proc_ticks "${pids[0]}") b1=$(proc_ticks "${pids[1]}")
	ra=$(rps "$dir/a.out") rb=$(rps "$dir/b.out")
	printf 'round %d  A %6d req/s %4d ticks (tool %4d)  B %6d req/s %4d ticks (tool %4d)  B/A %s\n' \
		"$r" "$ra" $((a1 - a0)) "$(toolticks "$dir/a.out")" "$rb" $((b1 - b0)) "$(toolticks "$dir/b.out")" \
		"$(awk -v a="$ra" -v b="$rb" 'BEGIN {printf "%.3f", b / a}')"
done
