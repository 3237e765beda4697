#!/usr/bin/env bash
# MetaStore vs reference etcd, measured with etcd's own `benchmark` tool
# (the body of `make bench`).
#
# Each server is started in turn on 127.0.0.1 with a fresh data dir (both
# under one temp dir, so on the same filesystem), the same flags and the same
# ports, gets every scenario below, and is stopped before the next starts:
#
#   a  put, 1 conn / 1 client                          (latency-bound, fsync per put)
#   b  put, 100 conns / 1000 clients, 8 B keys, 256 B values, random keys
#      over a key space of BENCH_KEY_SPACE
#   c  range linearizable, 100 conns / 1000 clients, one pre-put 256 B key
#   d  range serializable (--consistency=s), as c
#   e  txn-mixed (read/write ratio 1, reads are prefix ranges with --limit),
#      reported as two rows: its reads and its writes
#   f  watch-latency: 10 streams x 10 watchers, puts at a fixed rate; event
#      latency (put sent -> event received) and put latency
#   g  watch fan-out: 100 streams x 100 watchers on one key, events/s
#   h  watch memory: 100k watchers over 1k streams (one put), the server's
#      peak RSS growth per watcher over a freshly restarted process, sampled
#      from /proc every 0.1 s
#   i  lease keep-alive: benchmark lease-keepalive, 100 conns / 1000 clients
#   j  mass lease expiry: scripts/massexpiry grants BENCH_LEASES leases with a
#      key each, all expiring together; put p99 while idle and while they are
#      revoked, and how long the revoking took
#   m  maintenance: scripts/maintbench fills BENCH_MAINT_BYTES (1 GiB at
#      scale 1) of 64 KiB values, overwrites a quarter, compacts; then how
#      long a snapshot takes (written to a file as etcdctl snapshot save
#      does) and its size, the defragmentation's duration and the put p99
#      while idle, during the snapshot and during the defragmentation
#   n  JSON gateway put: scripts/httpload, BENCH_HTTP_CLIENTS (100) HTTP/1.1
#      clients (one keep-alive connection each) POST /v3/kv/put, random keys
#      over BENCH_KEY_SPACE, 256 B values
#   o  JSON gateway range: as n, POST /v3/kv/range of the pre-put key
#      (linearizable)
#   u  Kubernetes' update: BENCH_KEY_SPACE keys of 16 B are put first (not
#      measured); then benchmark stm, 100 conns / 1000 clients, each
#      transaction a linearizable get of one of them and a txn that puts a
#      256 B value if the key's mod revision is still the one read
#      (kube-apiserver's GuaranteedUpdate); req/s are transactions
#   p  large lists: on a freshly started server with a new data dir,
#      scripts/biglist loads BENCH_BIGLIST_KEYS (100k at scale 1) keys of
#      1 KiB under one prefix, then 10 clients (one connection each) list
#      it BENCH_BIGLIST_ROUNDS (3) times each, first in pages of 500 keys
#      (Kubernetes' paginated list: the first page at the current revision,
#      the next ones at its revision), then whole (one Range each); lists/s
#      of each, and the server's peak RSS growth during each over its RSS
#      once loaded, sampled from /proc every 0.1 s
#   q  memory under writes: a fresh server (new data dir) gets BENCH_MEM_PUTS
#      (600k at scale 1) puts as b's over BENCH_KEY_SPACE keys; its peak RSS
#      (VmHWM) over the run and its RSS at the end
#   r  memory holding keys: a fresh server gets BENCH_MEM_KEYS (1M at scale
#      1) distinct 16 B keys with 256 B values (the benchmark tool's
#      sequential keys); its RSS once they are in, and the peak while
#      loading
#   k  put as b, with auth on: scripts/authsetup enables auth with a user
#      "bench" whose role may read and write every key (prefix "bench-" and
#      from-key "\x00": the put keys are binary and share no prefix); the
#      benchmark runs as that user (every request carries its token)
#   l  range serializable as d, with auth on, as that user
#      (k and l run last, on a freshly started server with a new data dir,
#      each against its own baseline kb / ld run on that server without
#      auth, in the order kb ld | auth on | k l l2 k2 | auth off | ld2 kb2: each
#      row is the mean of its two runs, which sit at the same mean place in
#      the sequence, so a drift over it (compaction debt of the puts before,
#      the host) moves a row and its baseline alike)
#
# Prints three tables (a-e, n, o, u, k, l, q, r: req/s of each, ratio metastore/etcd, p99
# latency of each, then for a-e, n, o, u, k, l the server's CPU per request of each and
# their ratio; k/b and l/d for each server: what auth costs it; f-p: the watch, lease,
# maintenance and large list measures and their ratio) and writes them as markdown to
# BENCH_OUT.
#
# CPU per request ("us CPU/req <target>") is the server process's utime + stime
# (from /proc/<pid>/stat of the pid start_server recorded; not the load tool's),
# read just before and just after the load's run, over the requests the load
# made (its --total), in microseconds. Both e rows show the whole mix's. For k
# and l a run of 1000 requests before the measured one gives the CPU of the
# tool's logins (a bcrypt check per connection, made before it starts timing),
# which is taken off with those 1000 requests' share of the measured run. "CPU etcd/metastore" is etcd's over
# MetaStore's: above 1, MetaStore spends less, as a req/s ratio above 1 means
# it serves more. On a shared machine it swings much less between runs than
# req/s does.
#
# Environment (relative paths are taken from the current directory):
#   METASTORE_BIN   server binary under test     (default <repo>/bin/metastore)
#   REF_BIN         dir with etcd, etcdctl, benchmark (default <repo>/.ref/bin,
#                   built by scripts/build-ref.sh when missing)
#   BENCH_OUT       markdown output              (default bench-results.md)
#   BENCH_SCALE     multiplies every --total     (default 1; e.g. 0.05 for a smoke run)
#   BENCH_PUT1_TOTAL BENCH_PUT_TOTAL BENCH_RANGE_TOTAL BENCH_TXN_TOTAL BENCH_STM_TOTAL
#                   override the totals of a / b / c+d / e / u
#                   (defaults at scale 1: 2000 / 100000 / 100000 / 5000 / 50000)
#   BENCH_KEY_SPACE key space of b, e and u      (default 100000)
#   BENCH_CONNS BENCH_CLIENTS                    (defaults 100 / 1000)
#   BENCH_TXN_LIMIT range limit of e's reads     (default 100)
#   BENCH_LEASES    leases of j                  (default at scale 1: 100000)
#   BENCH_MAINT_BYTES bytes written by m         (default at scale 1: 1 GiB)
#   BENCH_BIGLIST_KEYS BENCH_BIGLIST_ROUNDS  keys of p, lists per client
#                   (defaults at scale 1: 100000, 3)
#   BENCH_TARGETS   which servers, in order      (default "metastore etcd")
#   BENCH_ONLY      scenario ids to run, e.g. "f g" (default: all)
#   BENCH_ROUNDS    rounds, the servers' order reversed every other round;
#                   the table shows each measure's mean (default 2: each
#                   server goes first once; about 12 min at scale 1). Which
#                   server runs first moves single runs by up to 20 %.
#   BENCH_PORT      client port; peer port is +1 (default 23790)
#   BENCH_TIMEOUT   seconds per benchmark run    (default 600)
#   BENCH_TMPDIR    parent of the temp work dir  (default $TMPDIR or /tmp)
#   BENCH_KEEP=1    keep data dirs and logs
#   METASTORE_FLAGS ETCD_FLAGS  extra server flags (word-split)
#
# Validate the script without MetaStore (ratios should be near 1.0):
#   METASTORE_BIN=.ref/bin/etcd BENCH_SCALE=0.05 bash scripts/bench.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=bench
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"


METASTORE_BIN="$(abspath "${METASTORE_BIN:-$ROOT/bin/metastore}")"
REF_BIN="$(abspath "${REF_BIN:-$ROOT/.ref/bin}")"
BENCH_OUT="$(abspath "${BENCH_OUT:-bench-results.md}")"
BENCH_SCALE="${BENCH_SCALE:-1}"
BENCH_TARGETS="${BENCH_TARGETS:-metastore etcd}"
BENCH_ROUNDS="${BENCH_ROUNDS:-2}"
BENCH_PORT="${BENCH_PORT:-23790}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
CONNS="${BENCH_CONNS:-100}"
CLIENTS="${BENCH_CLIENTS:-1000}"
KEY_SPACE="${BENCH_KEY_SPACE:-100000}"
TXN_LIMIT="${BENCH_TXN_LIMIT:-100}"
KEY_SIZE=8
VAL_SIZE=256
RANGE_KEY="bench-range-key"


check_scale
PUT1_TOTAL="${BENCH_PUT1_TOTAL:-$(scaled 2000 100)}"
PUT_TOTAL="${BENCH_PUT_TOTAL:-$(scaled 100000 100)}"
RANGE_TOTAL="${BENCH_RANGE_TOTAL:-$(scaled 100000 100)}"
TXN_TOTAL="${BENCH_TXN_TOTAL:-$(scaled 5000 400)}"
STM_TOTAL="${BENCH_STM_TOTAL:-$(scaled 50000 500)}"
WLAT_PUTS="$(scaled 2000 200)"
WFAN_PUTS="$(scaled 100 10)"
KEEPALIVE_TOTAL="$(scaled 100000 1000)"
HTTP_CLIENTS="${BENCH_HTTP_CLIENTS:-100}"
HTTP_TOTAL="$(scaled 30000 500)"
LEASES="${BENCH_LEASES:-$(scaled 100000 1000)}"
MEM_PUTS="${BENCH_MEM_PUTS:-$(scaled 600000 1000)}"
MEM_KEYS="${BENCH_MEM_KEYS:-$(scaled 1000000 1000)}"
MAINT_BYTES="${BENCH_MAINT_BYTES:-$(scaled 1073741824 67108864)}"
BIGLIST_KEYS="${BENCH_BIGLIST_KEYS:-$(scaled 100000 1000)}"
BIGLIST_ROUNDS="${BENCH_BIGLIST_ROUNDS:-3}"

# ---- tools -------------------------------------------------------------------
ensure_tools

CLIENT_PORT="$BENCH_PORT"
PEER_PORT=$((BENCH_PORT + 1))
ENDPOINT="127.0.0.1:$CLIENT_PORT"

# ---- temp dir, server lifecycle, cleanup --------------------------------------
WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/metastore-bench.XXXXXX")"
SERVER_PID=""
LOAD_PID=""

trap_cleanup


# ---- scenarios ------------------------------------------------------------------
# selected <id>: whether BENCH_ONLY runs scenario id (kb and ld, the auth
# rows' baselines, and the second runs of all four, run with k and l).
selected() {
  local ids=" ${BENCH_ONLY:-} "
  [[ -z "${BENCH_ONLY:-}" || "$ids" == *" $1 "* ]] && return 0
  case "$1" in
    kb | k2 | kb2) [[ "$ids" == *" k "* ]] ;;
    ld | l2 | ld2) [[ "$ids" == *" l "* ]] ;;
    *) return 1 ;;
  esac
}

# id | label | benchmark arguments after the global flags
SCENARIOS=(
  "a|put 1 conn/1 client|--conns=1 --clients=1 put --total=$PUT1_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "b|put ${CONNS} conns/${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS put --total=$PUT_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "c|range linearizable ${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=l --total=$RANGE_TOTAL"
  "d|range serializable ${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=s --total=$RANGE_TOTAL"
  "e|txn-mixed ${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS txn-mixed --total=$TXN_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE --rw-ratio=1 --limit=$TXN_LIMIT"
  "f|watch-latency 10x10 watchers|--precise watch-latency --streams=10 --watchers-per-stream=10 --put-total=$WLAT_PUTS --put-rate=1000 --val-size=$VAL_SIZE"
  "g|watch fan-out 100x100 watchers|--conns=2 --clients=2 watch --streams=100 --watch-per-stream=100 --put-total=$WFAN_PUTS --key-space-size=1"
  "h|watch memory 1000x100 watchers|--conns=20 --clients=20 watch --streams=1000 --watch-per-stream=100 --put-total=1 --key-space-size=1"
  "i|lease keep-alive ${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS lease-keepalive --total=$KEEPALIVE_TOTAL"
  "j|mass lease expiry ($LEASES leases)|massexpiry"
  "m|maintenance on a $((MAINT_BYTES >> 20)) MiB store|maintbench"
  "n|JSON gateway put ${HTTP_CLIENTS} HTTP clients|httpload put"
  "o|JSON gateway range ${HTTP_CLIENTS} HTTP clients|httpload range"
  "u|Kubernetes update (stm) ${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS stm --keys=$KEY_SPACE --keys-per-txn=1 --txn-wr-percent=100 --val-size=$VAL_SIZE --total=$STM_TOTAL"
  "p|large lists, $BIGLIST_KEYS keys of 1 KiB, 10 clients|biglist"
  "q|memory: $MEM_PUTS puts over $KEY_SPACE keys, fresh server|--conns=$CONNS --clients=$CLIENTS put --total=$MEM_PUTS --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "r|memory: $MEM_KEYS keys of 16 B with 256 B values, fresh server|--conns=$CONNS --clients=$CLIENTS put --total=$MEM_KEYS --key-size=16 --val-size=$VAL_SIZE --key-space-size=$MEM_KEYS --sequential-keys"
  "kb|put as b, on k's server before auth|--conns=$CONNS --clients=$CLIENTS put --total=$PUT_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "ld|range serializable as d, on l's server before auth|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=s --total=$RANGE_TOTAL"
  "k|put with auth ${CONNS} conns/${CLIENTS} clients|--user=bench:benchpw --conns=$CONNS --clients=$CLIENTS put --total=$PUT_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "l|range serializable with auth ${CLIENTS} clients|--user=bench:benchpw --conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=s --total=$RANGE_TOTAL"
  "l2|range serializable with auth, again|--user=bench:benchpw --conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=s --total=$RANGE_TOTAL"
  "k2|put with auth, again|--user=bench:benchpw --conns=$CONNS --clients=$CLIENTS put --total=$PUT_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "ld2|range serializable as d, auth off again|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=s --total=$RANGE_TOTAL"
  "kb2|put as b, auth off again|--conns=$CONNS --clients=$CLIENTS put --total=$PUT_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
)
# second_run <id>: the scenario whose run a row also averages (see k and l).
second_run() {
  case "$1" in
    k | kb | l | ld) echo "${1}2" ;;
    *) return 1 ;;
  esac
}
# Table rows: id | label | section of the benchmark output ("" or read/write).
ROWS=(
  "a|(a) put, 1 conn / 1 client|"
  "b|(b) put, ${CONNS} conns / ${CLIENTS} clients|"
  "c|(c) range linearizable, ${CLIENTS} clients|"
  "d|(d) range serializable, ${CLIENTS} clients|"
  "e|(e) txn-mixed reads, ${CLIENTS} clients|read"
  "e|(e) txn-mixed writes, ${CLIENTS} clients|write"
  "n|(n) JSON gateway put, ${HTTP_CLIENTS} HTTP clients|"
  "o|(o) JSON gateway range, ${HTTP_CLIENTS} HTTP clients|"
  "u|(u) Kubernetes update: get + compare-and-put, ${CLIENTS} clients|"
  "kb|(kb) put as b, on k's server before auth|"
  "k|(k) put with auth, ${CONNS} conns / ${CLIENTS} clients|"
  "ld|(ld) range serializable as d, on l's server before auth|"
  "l|(l) range serializable with auth, ${CLIENTS} clients|"
  "q|(q) put as b, $MEM_PUTS of them on a fresh server|"
  "r|(r) put of $MEM_KEYS new keys on a fresh server|"
)
# Second table rows: id | label | section | measure (rps, avg or p99 of a
# benchmark section; kv: the value after a "name value" line of the output).
# Higher is better only for rps; the h row (RSS per watcher) is added
# separately.
WROWS=(
  "f|(f) watch-latency: event latency avg, ms|^Watch events summary|avg"
  "f|(f) watch-latency: event latency p99, ms|^Watch events summary|p99"
  "f|(f) watch-latency: put latency p99, ms|^Put summary|p99"
  "g|(g) watch fan-out: events/s received|^Watch events received summary|rps"
  "i|(i) lease keep-alive, ${CLIENTS} clients: req/s||rps"
  "j|(j) mass expiry: put p99 while idle, ms|idle_put_p99_ms|kv"
  "j|(j) mass expiry: put p99 while leases are revoked, ms|expiry_put_p99_ms|kv"
  "j|(j) mass expiry: seconds to revoke them all|expiry_seconds|kv"
  "m|(m) snapshot save, seconds|snapshot_seconds|kv"
  "m|(m) snapshot size, MB|snapshot_mb|kv"
  "m|(m) put p99 during snapshot save, ms|snapshot_put_p99_ms|kv"
  "m|(m) defragment, seconds|defrag_seconds|kv"
  "m|(m) put p99 while idle, ms|idle_put_p99_ms|kv"
  "m|(m) put p99 during defragment, ms|defrag_put_p99_ms|kv"
  "p|(p) paged lists (limit 500), 10 clients: lists/s|paged_lists_per_sec|kv"
  "p|(p) paged lists: peak RSS growth, MB|paged_rss_mb|kv"
  "p|(p) whole-prefix lists, 10 clients: lists/s|whole_lists_per_sec|kv"
  "p|(p) whole-prefix lists: peak RSS growth, MB|whole_rss_mb|kv"
  "q|(q) peak RSS over $MEM_PUTS puts on $KEY_SPACE keys, MiB|peak_rss_mib|kv"
  "q|(q) RSS after them, MiB|rss_mib|kv"
  "r|(r) RSS holding $MEM_KEYS keys, MiB|rss_mib|kv"
  "r|(r) peak RSS while loading them, MiB|peak_rss_mib|kv"
)

# parse <file> <section>: prints "<req/s> <p99 ms> <errors> <avg ms>"; "-" when
# absent. <section> is "" (whole output), read/write (txn-mixed's "Total Read
# Ops" / "Total Write Ops") or a regex matching a "... summary:" header.
parse() {
  awk -v want="$2" '
    /^Total Read Ops/  { sec = "read";  inerr = 0; next }
    /^Total Write Ops/ { sec = "write"; inerr = 0; next }
    /summary:$/        { sec = (want != "" && $0 ~ want) ? want : "other"; inerr = 0; next }
    sec != want { next }
    /Requests\/sec:/    { rps = $2 }
    /^ *Average:/       { avg = $2 * 1000 }
    /^ *99% in /        { p99 = $3 * 1000 }
    /^Error distribution:/ { inerr = 1; next }
    inerr && match($0, /^ *\[[0-9]+\]/) { v = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", v); errs += v }
    END {
      printf "%s %s %d %s\n", (rps == "" ? "-" : sprintf("%.1f", rps)),
                              (p99 == "" ? "-" : sprintf("%.2f", p99)), errs,
                              (avg == "" ? "-" : sprintf("%.3f", avg))
    }' "$1"
}

# cpu_ticks <pid>: the process's utime + stime in clock ticks (CLK_TCK a
# second). The fields are counted after the ") " that ends the command name,
# which may hold spaces.
cpu_ticks() { awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$1/stat" 2>/dev/null; }
CLK_TCK="$(getconf CLK_TCK)"

# cpu_requests <id>: the requests scenario <id>'s load makes, for the
# scenarios whose server CPU per request is reported; fails for the others.
cpu_requests() {
  case "$1" in
    a) echo "$PUT1_TOTAL" ;;
    b | k | kb | k2 | kb2) echo "$PUT_TOTAL" ;;
    c | d | l | ld | l2 | ld2) echo "$RANGE_TOTAL" ;;
    e) echo "$TXN_TOTAL" ;;
    n | o) echo "$HTTP_TOTAL" ;;
    u) echo "$STM_TOTAL" ;;
    *) return 1 ;;
  esac
}

# rss_kb <pid>: the process's resident set in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# sample_rss <pid> <file>: writes the highest RSS seen, every 0.1 s, until
# killed or the process is gone.
sample_rss() {
  local max=0 v
  while kill -0 "$1" 2>/dev/null; do
    v="$(rss_kb "$1")"
    ((v > max)) && max=$v && echo "$max" >"$2"
    sleep 0.1
  done
}

# run_biglist <pid> <base RSS KiB> <out> <err>: scenario p on the server
# <pid>, loaded already: paged lists, then whole ones, each with the peak
# RSS growth over <base> sampled while it runs. Prints "name value" lines.
run_biglist() {
  local pid="$1" base="$2" out="$3" err="$4" phase sampler
  for phase in paged whole; do
    echo "$base" >"$out.$phase.rss"
    sample_rss "$pid" "$out.$phase.rss" &
    sampler=$!
    timeout "$BENCH_TIMEOUT" "$WORK/biglist" -endpoint "$ENDPOINT" -op "$phase" -keys "$BIGLIST_KEYS" -rounds "$BIGLIST_ROUNDS" \
      >>"$out" 2>>"$err" || { kill "$sampler"; return 1; }
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    awk -v p="$phase" -v peak="$(cat "$out.$phase.rss")" -v base="$base" \
      'BEGIN { printf "%s_rss_mb %.1f\n", p, (peak - base) / 1024 }' >>"$out"
  done
}

# shellcheck disable=SC2034 # filled by `read` and read through `get` (namerefs)
declare -A RPS P99 ERRS AVG CPU WVAL RSSW SUMS CNTS
FAILED=0



run_target() { # run_target <target>
  local name="$1" bin flags
  case "$name" in
    metastore) bin="$METASTORE_BIN"; flags="${METASTORE_FLAGS:-}" ;;
    etcd) bin="$REF_BIN/etcd"; flags="${ETCD_FLAGS:-}" ;;
  esac
  log "starting $name ($bin) on $ENDPOINT, data in $WORK/$name/data"
  rm -rf "$WORK/$name/data" # every round starts empty (BENCH_KEEP keeps the last)
  rm -f "$WORK/$name"-*.out "$WORK/$name"-*.cpu # a round cut short must not count the last one's
  # shellcheck disable=SC2086 # flags are deliberately word-split
  start_server "$name" "$bin" $flags

  local value
  value="$(head -c "$VAL_SIZE" /dev/zero | tr '\0' 'v')"
  "$REF_BIN/etcdctl" --endpoints="$ENDPOINT" put "$RANGE_KEY" "$value" >/dev/null ||
    die "$name: etcdctl put $RANGE_KEY failed"

  local spec id label args out i rid sec
  for spec in "${SCENARIOS[@]}"; do
    IFS='|' read -r id label args <<<"$spec"
    selected "$id" || continue
    out="$WORK/$name-$id.out"
    log "$name: ($id) $label"
    local sampler="" base=0
    if [[ "$id" == h ]]; then
      # A fresh process, so that the heap grown by the scenarios before
      # does not hide what the watchers take.
      stop_server
      # shellcheck disable=SC2086 # flags are deliberately word-split
      start_server "$name" "$bin" $flags
      base="$(rss_kb "$SERVER_PID")"
      echo "$base" >"$WORK/$name-h.rss"
      sample_rss "$SERVER_PID" "$WORK/$name-h.rss" &
      sampler=$!
    fi
    if [[ "$id" == q || "$id" == r ]]; then
      # A fresh process on a new data dir: its peak RSS is this
      # scenario's alone.
      stop_server
      rm -rf "$WORK/$name/data"
      # shellcheck disable=SC2086 # flags are deliberately word-split
      start_server "$name" "$bin" $flags
    fi
    if [[ "$id" == kb || "$id" == ld || "$id" == k || "$id" == l ]] && [[ ! -f "$WORK/$name.authsrv" ]]; then
      # A fresh server and data dir, as b and d had. kb and ld measure it
      # as b and d did, right before auth is turned on: the auth rows are
      # compared with them, not with b and d, whose place in the sequence
      # (first, on a quiet disk) moved the ratio by up to 0.25.
      stop_server
      rm -rf "$WORK/$name/data"
      # shellcheck disable=SC2086 # flags are deliberately word-split
      start_server "$name" "$bin" $flags
      "$REF_BIN/etcdctl" --endpoints="$ENDPOINT" put "$RANGE_KEY" "$value" >/dev/null ||
        die "$name: etcdctl put $RANGE_KEY failed"
      touch "$WORK/$name.authsrv"
    fi
    if [[ "$id" == k || "$id" == l ]] && [[ ! -f "$WORK/$name.auth" ]]; then
      "$WORK/authsetup" -endpoint "$ENDPOINT" -password benchpw >"$WORK/$name-authsetup.err" 2>&1 ||
        { cat "$WORK/$name-authsetup.err" >&2; die "$name: auth setup failed"; }
      touch "$WORK/$name.auth"
    fi
    if [[ "$id" == kb2 || "$id" == ld2 ]] && [[ -f "$WORK/$name.auth" ]]; then
      "$REF_BIN/etcdctl" --endpoints="$ENDPOINT" --user=root:benchpw auth disable >/dev/null 2>"$WORK/$name-authoff.err" ||
        { cat "$WORK/$name-authoff.err" >&2; die "$name: auth disable failed"; }
      rm "$WORK/$name.auth"
    fi
    if [[ "$id" == p ]]; then
      # A fresh server and data dir: the lists read a store holding only
      # their keys, and the RSS baseline is the loaded store's, not what
      # the scenarios before grew.
      stop_server
      rm -rf "$WORK/$name/data"
      # shellcheck disable=SC2086 # flags are deliberately word-split
      start_server "$name" "$bin" $flags
      "$WORK/biglist" -endpoint "$ENDPOINT" -op load -keys "$BIGLIST_KEYS" >"$out" 2>"$WORK/$name-$id.err" ||
        { cat "$WORK/$name-$id.err" >&2; die "$name: loading the big list failed"; }
    fi
    if [[ "$id" == u ]]; then
      # Every key the transactions touch exists, as the objects Kubernetes
      # updates do: the tool's sequential puts of 16-byte keys write the
      # keys its stm command picks from (both varint-encode the key's number).
      "$REF_BIN/benchmark" --endpoints="$ENDPOINT" --conns="$CONNS" --clients="$CLIENTS" put --total="$KEY_SPACE" \
        --key-size=16 --val-size="$VAL_SIZE" --key-space-size="$KEY_SPACE" --sequential-keys >/dev/null 2>"$WORK/$name-$id.err" ||
        { cat "$WORK/$name-$id.err" >&2; die "$name: loading u's keys failed"; }
    fi
    # The server's CPU from here to the load's end, for cpu_requests' scenarios.
    local reqs="" cpu0="" logins=0
    rm -f "$WORK/$name-$id.cpu"
    if reqs="$(cpu_requests "$id")"; then
      if [[ "$args" == --user=* ]]; then
        # The tool's clients log in (one bcrypt check a connection) before
        # it starts timing: a run of 1000 requests measures what that costs
        # the server, taken off the measured run's CPU (as cpucost.sh).
        local c0
        c0="$(cpu_ticks "$SERVER_PID")"
        # shellcheck disable=SC2086 # args are deliberately word-split
        timeout "$BENCH_TIMEOUT" "$REF_BIN/benchmark" --endpoints="$ENDPOINT" ${args/--total=$reqs/--total=1000} \
          >/dev/null 2>&1 && logins=$(($(cpu_ticks "$SERVER_PID") - c0))
      fi
      cpu0="$(cpu_ticks "$SERVER_PID")"
    fi
    # In the background, so that a signal to this script is handled at once.
    if [[ "$args" == biglist ]]; then
      run_biglist "$SERVER_PID" "$(rss_kb "$SERVER_PID")" "$out" "$WORK/$name-$id.err" &
    elif [[ "$args" == maintbench ]]; then
      timeout "$BENCH_TIMEOUT" "$WORK/maintbench" -endpoint "$ENDPOINT" -bytes "$MAINT_BYTES" \
        -snapshot-file "$WORK/$name.snapshot" >"$out" 2>"$WORK/$name-$id.err" &
    elif [[ "$args" == httpload* ]]; then
      timeout "$BENCH_TIMEOUT" "$WORK/httpload" -endpoint "$ENDPOINT" -op "${args#httpload }" \
        -clients "$HTTP_CLIENTS" -total "$HTTP_TOTAL" -key-space "$KEY_SPACE" -val-size "$VAL_SIZE" \
        -key "$RANGE_KEY" >"$out" 2>"$WORK/$name-$id.err" &
    elif [[ "$args" == massexpiry ]]; then
      timeout "$BENCH_TIMEOUT" "$WORK/massexpiry" -endpoint "$ENDPOINT" -leases "$LEASES" -ttl 30 \
        >"$out" 2>"$WORK/$name-$id.err" &
    else
      # shellcheck disable=SC2086 # args are deliberately word-split
      timeout "$BENCH_TIMEOUT" "$REF_BIN/benchmark" --endpoints="$ENDPOINT" $args \
        >"$out" 2>"$WORK/$name-$id.err" &
    fi
    LOAD_PID=$!
    local ok=1
    wait "$LOAD_PID" || ok=0
    local cpu1
    if [[ -n "$cpu0" ]] && ((ok)) && cpu1="$(cpu_ticks "$SERVER_PID")"; then
      awk -v t="$((cpu1 - cpu0 - logins))" -v hz="$CLK_TCK" -v n="$((reqs - 1000 * (logins > 0)))" \
        'BEGIN { printf "%.1f\n", t * 1e6 / hz / n }' >"$WORK/$name-$id.cpu"
    fi
    if [[ "$id" == q || "$id" == r ]] && ((ok)); then
      # VmHWM is the process's peak resident set; it started with this
      # scenario.
      awk '/^VmHWM:/ { printf "peak_rss_mib %.1f\n", $2 / 1024 } /^VmRSS:/ { printf "rss_mib %.1f\n", $2 / 1024 }' \
        "/proc/$SERVER_PID/status" >>"$out"
    fi
    if [[ -n "$sampler" ]]; then
      kill "$sampler" 2>/dev/null || true
      wait "$sampler" 2>/dev/null || true
      # bytes per watcher: peak growth over 100k watchers
      acc RSSW "$name" "$(awk -v peak="$(cat "$WORK/$name-h.rss")" -v base="$base" 'BEGIN { printf "%.0f", (peak - base) * 1024 / 100000 }')"
    fi
    if ((!ok)); then
      log "$name: ($id) benchmark failed; its output and the server log follow"
      tail -n 20 "$out" "$WORK/$name-$id.err" >&2 || true
      tail -n 20 "$WORK/$name/server.log" >&2 || true
      FAILED=1
    fi
    LOAD_PID=""
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      log "$name: server died during ($id); skipping its remaining scenarios"
      tail -n 30 "$WORK/$name/server.log" >&2 || true
      FAILED=1
      break
    fi
  done
  local run
  for i in "${!ROWS[@]}"; do
    IFS='|' read -r rid _ sec <<<"${ROWS[$i]}"
    for run in "$rid" $(second_run "$rid"); do
      [[ -f "$WORK/$name-$run.out" ]] || continue
      local rps p99 errs
      read -r rps p99 errs _ < <(parse "$WORK/$name-$run.out" "$sec")
      acc RPS "$name,$i" "$rps"
      acc P99 "$name,$i" "$p99"
      acc ERRS "$name,$i" "$errs"
      if [[ -f "$WORK/$name-$run.cpu" ]]; then acc CPU "$name,$i" "$(<"$WORK/$name-$run.cpu")"; fi
    done
  done
  local measure rps p99 avg
  for i in "${!WROWS[@]}"; do
    IFS='|' read -r rid _ sec measure <<<"${WROWS[$i]}"
    [[ -f "$WORK/$name-$rid.out" ]] || continue
    if [[ "$measure" == kv ]]; then
      acc WVAL "$name,$i" "$(awk -v k="$sec" '$1 == k { print $2 }' "$WORK/$name-$rid.out")"
      continue
    fi
    read -r rps p99 _ avg < <(parse "$WORK/$name-$rid.out" "$sec")
    case "$measure" in
      rps) acc WVAL "$name,$i" "$rps" ;;
      p99) acc WVAL "$name,$i" "$p99" ;;
      avg) acc WVAL "$name,$i" "$avg" ;;
    esac
  done
  stop_server
  rm -f "$WORK/$name.auth" "$WORK/$name.authsrv"
  # Leave the disk quiet for the next server: drop this data dir, flush.
  [[ "${BENCH_KEEP:-0}" == 1 ]] || rm -rf "$WORK/$name/data"
  sync
}

if selected j; then
  (cd "$ROOT" && go build -o "$WORK/massexpiry" ./scripts/massexpiry) || die "cannot build scripts/massexpiry"
fi
if selected m; then
  (cd "$ROOT" && go build -o "$WORK/maintbench" ./scripts/maintbench) || die "cannot build scripts/maintbench"
fi
if selected n || selected o; then
  (cd "$ROOT" && go build -o "$WORK/httpload" ./scripts/httpload) || die "cannot build scripts/httpload"
fi
if selected p; then
  (cd "$ROOT" && go build -o "$WORK/biglist" ./scripts/biglist) || die "cannot build scripts/biglist"
fi
if selected k || selected l; then
  (cd "$ROOT" && go build -o "$WORK/authsetup" ./scripts/authsetup) || die "cannot build scripts/authsetup"
fi

log "work dir $WORK; scale $BENCH_SCALE: totals a=$PUT1_TOTAL b=$PUT_TOTAL c,d=$RANGE_TOTAL e=$TXN_TOTAL u=$STM_TOTAL f=$WLAT_PUTS g=$WFAN_PUTS, key space $KEY_SPACE"
reversed="$(printf '%s\n' $BENCH_TARGETS | tac | tr '\n' ' ')"
for ((round = 1; round <= BENCH_ROUNDS; round++)); do
  order="$BENCH_TARGETS"
  ((round % 2 == 0)) && order="$reversed"
  log "round $round of $BENCH_ROUNDS: $order"
  for target in $order; do
    run_target "$target"
  done
done
finish_rounds

# ---- report -------------------------------------------------------------------------
get() { # get <array name> <target> <row index>: the value or "-"
  local -n arr="$1"
  local v="${arr[$2,$3]-}"
  printf '%s' "${v:--}"
}

header=("scenario" "metastore req/s" "etcd req/s" "ratio metastore/etcd" "metastore p99 ms" "etcd p99 ms"
  "us CPU/req metastore" "us CPU/req etcd" "CPU etcd/metastore")
lines=()
notes=()
for i in "${!ROWS[@]}"; do
  IFS='|' read -r _ rlabel _ <<<"${ROWS[$i]}"
  m_rps="$(get RPS metastore "$i")"
  e_rps="$(get RPS etcd "$i")"
  m_cpu="$(get CPU metastore "$i")"
  e_cpu="$(get CPU etcd "$i")"
  lines+=("$rlabel|$m_rps|$e_rps|$(ratio "$m_rps" "$e_rps")|$(get P99 metastore "$i")|$(get P99 etcd "$i")|$m_cpu|$e_cpu|$(ratio "$e_cpu" "$m_cpu")")
  for target in metastore etcd; do
    errs="$(get ERRS "$target" "$i")"
    if [[ "$errs" != "-" && "$errs" != 0 ]]; then
      notes+=("$target: $errs failed requests in $rlabel")
    fi
  done
done

# Auth's cost to each server: its req/s with auth over its own without,
# measured on the same fresh server around auth's turning on and off (see
# k and l above; issue 22: MetaStore's ratio no worse than etcd's).
row_index() { # row_index <id>: index of the first ROWS entry of scenario id
  local i
  for i in "${!ROWS[@]}"; do
    [[ "${ROWS[$i]%%|*}" == "$1" ]] && { echo "$i"; return; }
  done
}
aheader=("with auth / without, same server" "metastore" "etcd")
alines=()
for pair in "kb k (k)/(kb) put" "ld l (l)/(ld) range serializable"; do
  read -r off on alabel <<<"$pair"
  off="$(row_index "$off")" on="$(row_index "$on")"
  alines+=("$alabel|$(ratio "$(get RPS metastore "$on")" "$(get RPS metastore "$off")")|$(ratio "$(get RPS etcd "$on")" "$(get RPS etcd "$off")")")
done

wheader=("watch and lease measure" "metastore" "etcd" "ratio metastore/etcd")
wlines=()
for i in "${!WROWS[@]}"; do
  IFS='|' read -r _ rlabel _ _ <<<"${WROWS[$i]}"
  m="$(get WVAL metastore "$i")"
  e="$(get WVAL etcd "$i")"
  wlines+=("$rlabel|$m|$e|$(ratio "$m" "$e")")
done
m="${RSSW[metastore]:--}"
e="${RSSW[etcd]:--}"
wlines+=("(h) RSS growth per watcher, 100k watchers / 1k streams, bytes|$m|$e|$(ratio "$m" "$e")")

{
  text_table 42 header lines
  echo
  text_table 42 aheader alines
  echo
  text_table 62 wheader wlines
  for n in "${notes[@]}"; do printf 'WARNING: %s\n' "$n"; done
}

{
  echo "# MetaStore vs etcd benchmark"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, etcd benchmark tool; BENCH_SCALE=$BENCH_SCALE; means of $BENCH_ROUNDS round(s), order alternating"
  echo "(totals: a=$PUT1_TOTAL b=$PUT_TOTAL c,d=$RANGE_TOTAL e=$TXN_TOTAL u=$STM_TOTAL; key space $KEY_SPACE; ${KEY_SIZE} B keys, ${VAL_SIZE} B values)."
  echo "us CPU/req: the server process's utime+stime over the load's run, per request (e: the whole mix; u: a transaction, its get and its txn; k, l: less the tool's logins)."
  echo "MetaStore: \`$METASTORE_BIN\`; etcd: \`$("$REF_BIN/etcd" --version 2>/dev/null | head -n 1)\`."
  echo
  md_table header lines
  echo
  md_table aheader alines
  echo
  echo "Watch (f: 10 streams x 10 watchers, $WLAT_PUTS puts at up to 1000/s; g: 100 x 100 watchers on one key, $WFAN_PUTS puts;"
  echo "h: 1000 x 100 watchers, peak RSS growth over the run / 100k; i: lease-keepalive, $KEEPALIVE_TOTAL requests;"
  echo "j: $LEASES leases with a key each expiring together; p: $BIGLIST_KEYS keys of 1 KiB listed $BIGLIST_ROUNDS times by each of 10 clients,"
  echo "RSS growth over the loaded server's; q, r: a fresh server each). For latencies, RSS and seconds lower is better."
  echo
  md_table wheader wlines
  if ((${#notes[@]})); then
    echo
    for n in "${notes[@]}"; do printf -- '- WARNING: %s\n' "$n"; done
  fi
} >"$BENCH_OUT"
log "wrote $BENCH_OUT"

if ((FAILED)); then
  die "some benchmark runs failed (see above)"
fi
