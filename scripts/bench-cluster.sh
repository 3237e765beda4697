#!/usr/bin/env bash
# 3-member MetaStore vs 3-member reference etcd on loopback, measured with
# etcd's own `benchmark` tool (the body of `make bench-cluster`; the
# single-member comparison is scripts/bench.sh, whose conventions this
# follows).
#
# Each server gets, in turn, a fresh 3-member cluster on 127.0.0.1 (data dirs
# under one temp dir, the same flags and ports for both), every scenario
# below, and is stopped before the other starts. The benchmark tool is given
# all three members' endpoints (its connections are spread over them, so
# two thirds of the writes reach a follower and are forwarded to the leader):
#
#   p  put, 100 conns / 1000 clients, 8 B keys, 256 B values, random keys
#      over a key space of BENCH_KEY_SPACE
#   r  range linearizable, 100 conns / 1000 clients, one pre-put 256 B key
#   f  leader failover: with a put load running (the benchmark tool, 10 conns
#      / 100 clients, on all three members), find the leader
#      (etcdctl endpoint status --cluster -w json), kill -9 it, then
#      `etcdctl put` through the two survivors with a short --command-timeout
#      every 20 ms: the time from the kill to the first successful put. Then
#      the killed member is restarted on its data dir: the time from its
#      start to it serving (serializable get) the last put made meanwhile.
#
# Prints two tables (p, r: req/s of each, ratio metastore/etcd, p99 latency
# of each; f: failover and rejoin ms of each and their ratio) and writes them
# as markdown to BENCH_OUT.
#
# Environment (relative paths are taken from the current directory):
#   METASTORE_BIN   server binary under test     (default <repo>/bin/metastore)
#   REF_BIN         dir with etcd, etcdctl, benchmark (default <repo>/.ref/bin,
#                   built by scripts/build-ref.sh when missing)
#   BENCH_OUT       markdown output              (default bench-cluster-results.md)
#   BENCH_SCALE     multiplies every --total     (default 1; e.g. 0.02 for a smoke run)
#   BENCH_PUT_TOTAL BENCH_RANGE_TOTAL            override the totals of p / r
#                   (defaults at scale 1: 100000 / 100000)
#   BENCH_KEY_SPACE key space of p and f's load  (default 100000)
#   BENCH_CONNS BENCH_CLIENTS                    (defaults 100 / 1000)
#   BENCH_FAILOVER_CONNS BENCH_FAILOVER_CLIENTS  f's put load (defaults 10 / 100)
#   BENCH_FAILOVER_POLL_TIMEOUT  --command-timeout of f's probe puts (default 200ms)
#   BENCH_FAILOVER_MAX  seconds to wait for a write after the kill (default 30)
#   BENCH_TARGETS   which servers, in order      (default "metastore etcd")
#   BENCH_ONLY      scenario ids to run, e.g. "f" (default: all)
#   BENCH_ROUNDS    rounds, the servers' order reversed every other round;
#                   the tables show each measure's mean (default 2: each
#                   server goes first once)
#   BENCH_PORT      first member's client port; its peer port is +1, the
#                   other members' are +10 and +20 (default 24790, apart
#                   from scripts/bench.sh's 23790)
#   BENCH_TIMEOUT   seconds per benchmark run    (default 600)
#   BENCH_TMPDIR    parent of the temp work dir  (default $TMPDIR or /tmp)
#   BENCH_KEEP=1    keep data dirs and logs
#   METASTORE_FLAGS ETCD_FLAGS  extra server flags for every member (word-split)
#
# Plain http between members and to clients: MetaStore has no TLS yet.
#
# Validate the script without MetaStore (ratios should be near 1.0):
#   METASTORE_BIN=.ref/bin/etcd BENCH_SCALE=0.02 BENCH_ROUNDS=1 bash scripts/bench-cluster.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=bench-cluster
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"


METASTORE_BIN="$(abspath "${METASTORE_BIN:-$ROOT/bin/metastore}")"
REF_BIN="$(abspath "${REF_BIN:-$ROOT/.ref/bin}")"
BENCH_OUT="$(abspath "${BENCH_OUT:-bench-cluster-results.md}")"
BENCH_SCALE="${BENCH_SCALE:-1}"
BENCH_TARGETS="${BENCH_TARGETS:-metastore etcd}"
BENCH_ROUNDS="${BENCH_ROUNDS:-2}"
BENCH_PORT="${BENCH_PORT:-24790}"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-600}"
CONNS="${BENCH_CONNS:-100}"
CLIENTS="${BENCH_CLIENTS:-1000}"
FO_CONNS="${BENCH_FAILOVER_CONNS:-10}"
FO_CLIENTS="${BENCH_FAILOVER_CLIENTS:-100}"
FO_POLL_TIMEOUT="${BENCH_FAILOVER_POLL_TIMEOUT:-200ms}"
FO_MAX="${BENCH_FAILOVER_MAX:-30}"
KEY_SPACE="${BENCH_KEY_SPACE:-100000}"
KEY_SIZE=8
VAL_SIZE=256
RANGE_KEY="bench-range-key"
FO_KEY="bench-failover-key"
MEMBERS=3
TOKEN="bench-cluster"


check_scale
PUT_TOTAL="${BENCH_PUT_TOTAL:-$(scaled 100000 100)}"
RANGE_TOTAL="${BENCH_RANGE_TOTAL:-$(scaled 100000 100)}"

# ---- tools -------------------------------------------------------------------
ensure_tools
ETCDCTL="$REF_BIN/etcdctl"

CLIENT_PORTS=() PEER_PORTS=() EPS=()
INITIAL_CLUSTER=""
for ((i = 0; i < MEMBERS; i++)); do
  CLIENT_PORTS[i]=$((BENCH_PORT + 10 * i))
  PEER_PORTS[i]=$((BENCH_PORT + 10 * i + 1))
  EPS[i]="127.0.0.1:${CLIENT_PORTS[i]}"
  INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}m$((i + 1))=http://127.0.0.1:${PEER_PORTS[i]}"
done
ENDPOINTS="$(IFS=,; echo "${EPS[*]}")"

now_ns() { date +%s%N; }

# ---- temp dir, cluster lifecycle, cleanup -------------------------------------
WORK="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/metastore-bench-cluster.XXXXXX")"
PIDS=()      # member index -> pid ("" when not running)
LOGSTART=()  # member index -> first line of its current run in its log
BENCH_PID=""
CUR=""       # target whose cluster runs
CUR_BIN=""
CUR_FLAGS=""

stop_member() { # stop_member <index> <signal>
  local i="$1" sig="$2" pid="${PIDS[$1]:-}"
  [[ -n "$pid" ]] || return 0
  PIDS[i]=""
  stop_pid "$pid" "$sig" "member m$((i + 1)) (pid $pid)"
}

stop_cluster() {
  local i
  for ((i = 0; i < MEMBERS; i++)); do # SIGTERM to all at once, then wait
    if [[ -n "${PIDS[i]:-}" ]]; then kill -TERM "${PIDS[i]}" 2>/dev/null || true; fi
  done
  for ((i = 0; i < MEMBERS; i++)); do stop_member "$i" TERM; done
}

stop_load() {
  [[ -n "$BENCH_PID" ]] || return 0
  kill -TERM "$BENCH_PID" 2>/dev/null || true
  wait "$BENCH_PID" 2>/dev/null || true
  BENCH_PID=""
}

cleanup() {
  local rc=$?
  trap - EXIT
  stop_load
  stop_cluster
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    log "kept data dirs and logs in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_member() { # start_member <index>: CUR's member, on its data dir (kept if there)
  local i="$1" name="m$(($1 + 1))"
  local dir="$WORK/$CUR" logf="$WORK/$CUR/$name.log"
  local client="http://${EPS[i]}" peer="http://127.0.0.1:${PEER_PORTS[i]}"
  mkdir -p "$dir"
  touch "$logf"
  LOGSTART[i]=$(($(wc -l <"$logf") + 1))
  # shellcheck disable=SC2086 # flags are deliberately word-split
  "$CUR_BIN" \
    --name "$name" \
    --data-dir "$dir/$name" \
    --listen-client-urls "$client" \
    --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" \
    --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$INITIAL_CLUSTER" \
    --initial-cluster-token "$TOKEN" \
    --initial-cluster-state new \
    $CUR_FLAGS >>"$logf" 2>&1 &
  PIDS[i]=$!
}

member_ready() { # member_ready <index>: its log (this run) says it serves
  tail -n "+${LOGSTART[$1]}" "$WORK/$CUR/m$(($1 + 1)).log" 2>/dev/null | grep -q 'ready to serve client requests'
}

member_log_tail() { # member_log_tail <index>
  log "last lines of $WORK/$CUR/m$(($1 + 1)).log:"
  tail -n "+${LOGSTART[$1]}" "$WORK/$CUR/m$(($1 + 1)).log" | tail -n 20 >&2 || true
}

start_cluster() { # start_cluster <target>
  local i t ready p
  CUR="$1"
  case "$CUR" in
    metastore) CUR_BIN="$METASTORE_BIN"; CUR_FLAGS="${METASTORE_FLAGS:-}" ;;
    etcd) CUR_BIN="$REF_BIN/etcd"; CUR_FLAGS="${ETCD_FLAGS:-}" ;;
  esac
  for ((i = 0; i < MEMBERS; i++)); do
    for p in "${CLIENT_PORTS[i]}" "${PEER_PORTS[i]}"; do
      port_in_use "$p" && die "port $p is in use (set BENCH_PORT)"
    done
  done
  log "starting a $MEMBERS-member $CUR cluster ($CUR_BIN) on $ENDPOINTS, data in $WORK/$CUR"
  for ((i = 0; i < MEMBERS; i++)); do start_member "$i"; done
  for ((t = 0; t < 600; t++)); do # up to 60 s
    ready=0
    for ((i = 0; i < MEMBERS; i++)); do
      if ! kill -0 "${PIDS[i]}" 2>/dev/null; then
        PIDS[i]=""
        member_log_tail "$i"
        die "$CUR member m$((i + 1)) exited during startup (log above)"
      fi
      member_ready "$i" && ready=$((ready + 1))
    done
    ((ready == MEMBERS)) && break
    sleep 0.1
  done
  ((ready == MEMBERS)) || die "$CUR cluster not ready after 60s (logs in $WORK/$CUR)"
}

alive_all() { # alive_all: every member runs; else reports and fails
  local i ok=0
  for ((i = 0; i < MEMBERS; i++)); do
    if [[ -z "${PIDS[i]:-}" ]] || ! kill -0 "${PIDS[i]}" 2>/dev/null; then
      log "$CUR member m$((i + 1)) is not running"
      member_log_tail "$i"
      ok=1
    fi
  done
  return "$ok"
}

# leader_index: the index of the member all members' status names as leader
# (etcdctl endpoint status --cluster -w json), or nothing.
leader_index() {
  local out
  out="$("$ETCDCTL" --endpoints="$ENDPOINTS" --command-timeout=2s endpoint status --cluster -w json 2>/dev/null)" || true
  # Per entry, in order: "Endpoint":"http://127.0.0.1:PORT", "member_id":N,
  # "leader":N (ids as digits: no float rounding).
  grep -o '"Endpoint":"[^"]*"\|"member_id":[0-9]*\|"leader":[0-9]*' <<<"$out" |
    awk -F'"' -v base="$BENCH_PORT" -v n="$MEMBERS" '
      /^"Endpoint"/ { ep = $4; sub(/.*:/, "", ep); next }
      /^"member_id"/ { split($0, a, ":"); id[ep] = a[2]; next }
      /^"leader"/ { split($0, a, ":"); lead[a[2]]++; next }
      END {
        for (l in lead) if (lead[l] == n) for (p in id) if (id[p] == l) { print int((p - base) / 10); exit }
      }'
}

# ---- scenarios ------------------------------------------------------------------
# id | label | benchmark arguments after the global flags ("failover": f)
SCENARIOS=(
  "p|put ${CONNS} conns/${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS put --total=$PUT_TOTAL --key-size=$KEY_SIZE --val-size=$VAL_SIZE --key-space-size=$KEY_SPACE"
  "r|range linearizable ${CLIENTS} clients|--conns=$CONNS --clients=$CLIENTS range $RANGE_KEY --consistency=l --total=$RANGE_TOTAL"
  "f|leader failover under a put load|failover"
)
ROWS=(
  "p|(p) put, ${CONNS} conns / ${CLIENTS} clients, 3 members"
  "r|(r) range linearizable, ${CLIENTS} clients, 3 members"
)
FROWS=(
  "fo|(f) leader kill -9 to first write through the survivors, ms"
  "rj|(f) restarted member: start to serving the last write, ms"
)

# parse <file>: prints "<req/s> <p99 ms> <errors>"; "-" when absent.
parse() {
  awk '
    /Requests\/sec:/    { rps = $2 }
    /^ *99% in /        { p99 = $3 * 1000 }
    /^Error distribution:/ { inerr = 1; next }
    inerr && match($0, /^ *\[[0-9]+\]/) { v = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", v); errs += v }
    END {
      printf "%s %s %d\n", (rps == "" ? "-" : sprintf("%.1f", rps)),
                           (p99 == "" ? "-" : sprintf("%.2f", p99)), errs
    }' "$1"
}

# shellcheck disable=SC2034 # filled by acc and read through `get` (namerefs)
declare -A RPS P99 ERRS FO SUMS CNTS
declare -A PER_ROUND # "<target>|<measure>" -> the rounds' values, space-separated
FAILED=0



# failover <target>: scenario f on the running cluster. Records FO[<target>,fo]
# and FO[<target>,rj]; returns 1 when a step failed.
failover() {
  local name="$1" out="$WORK/$1-f.out" lead=-1 t i
  : >"$out"
  # shellcheck disable=SC2086 # args are deliberately word-split
  timeout "$BENCH_TIMEOUT" "$REF_BIN/benchmark" --endpoints="$ENDPOINTS" --conns="$FO_CONNS" --clients="$FO_CLIENTS" \
    put --total=100000000 --key-size="$KEY_SIZE" --val-size="$VAL_SIZE" --key-space-size="$KEY_SPACE" \
    >"$WORK/$name-f-load.out" 2>"$WORK/$name-f-load.err" &
  # shellcheck disable=SC2128 # $! is no array (a shellcheck 0.9 false positive)
  BENCH_PID=$!
  sleep 2 # the load gets going
  if ! kill -0 "$BENCH_PID" 2>/dev/null; then
    log "$name: (f) the put load did not start:"
    tail -n 20 "$WORK/$name-f-load.out" "$WORK/$name-f-load.err" >&2 || true
    return 1
  fi
  for ((t = 0; t < 50; t++)); do
    lead="$(leader_index)"
    [[ -n "$lead" ]] && break
    sleep 0.1
  done
  if [[ -z "$lead" ]]; then
    log "$name: (f) no leader agreed by all members; endpoint status says:"
    "$ETCDCTL" --endpoints="$ENDPOINTS" endpoint status --cluster -w table >&2 || true
    stop_load
    return 1
  fi
  local survivors=() lpid="${PIDS[lead]}"
  for ((i = 0; i < MEMBERS; i++)); do ((i == lead)) || survivors+=("${EPS[i]}"); done
  local seps
  seps="$(IFS=,; echo "${survivors[*]}")"

  local t0 t1="" n=0 tries=0 deadline
  disown "$lpid" 2>/dev/null || true # no "Killed" job notice; bash still reaps it
  kill -KILL "$lpid"
  t0="$(now_ns)"
  PIDS[lead]=""
  log "$name: (f) killed the leader m$((lead + 1)) (pid $lpid); putting through $seps every 20 ms"
  deadline=$((t0 + FO_MAX * 1000000000))
  while (($(now_ns) < deadline)); do
    tries=$((tries + 1))
    if "$ETCDCTL" --endpoints="$seps" --dial-timeout="$FO_POLL_TIMEOUT" --command-timeout="$FO_POLL_TIMEOUT" \
      put "$FO_KEY" "after-kill-$tries" >/dev/null 2>>"$WORK/$name-f-probe.err"; then
      t1="$(now_ns)"
      break
    fi
    sleep 0.02
  done
  if [[ -z "$t1" ]]; then
    log "$name: (f) no write succeeded through the survivors within ${FO_MAX}s ($tries tries; last errors:)"
    tail -n 5 "$WORK/$name-f-probe.err" >&2 || true
    stop_load
    start_member "$lead" # so that the cluster stops cleanly
    return 1
  fi
  local fo_ms new_lead
  fo_ms="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
  new_lead="$("$ETCDCTL" --endpoints="$seps" endpoint status -w json 2>/dev/null | grep -o '"leader":[0-9]*' | head -n 1 | cut -d: -f2)"
  log "$name: (f) first write through the survivors ${fo_ms} ms after the kill ($tries tries; new leader id ${new_lead:-?})"
  echo "failover_ms $fo_ms" >>"$out"
  acc FO "$name,fo" "$fo_ms"
  PER_ROUND["$name|fo"]+="$fo_ms "

  # The last write made while the member was down; it must serve it on return.
  local last="before-restart-$RANDOM"
  "$ETCDCTL" --endpoints="$seps" put "$FO_KEY" "$last" >/dev/null ||
    { log "$name: (f) put through the survivors failed"; stop_load; start_member "$lead"; return 1; }
  local t2 t3="" got
  start_member "$lead"
  t2="$(now_ns)"
  deadline=$((t2 + 60 * 1000000000))
  while (($(now_ns) < deadline)); do
    if ! kill -0 "${PIDS[lead]}" 2>/dev/null; then
      PIDS[lead]=""
      member_log_tail "$lead"
      log "$name: (f) the restarted member m$((lead + 1)) exited (log above)"
      stop_load
      return 1
    fi
    # Only once its client port is open: a refused dial would put etcdctl's
    # gRPC connection into a reconnect backoff of up to its dial timeout.
    got=""
    if port_in_use "${CLIENT_PORTS[lead]}"; then
      got="$("$ETCDCTL" --endpoints="${EPS[lead]}" --dial-timeout=500ms --command-timeout=500ms \
        get "$FO_KEY" --consistency=s --print-value-only 2>/dev/null)" || got=""
    fi
    if [[ "$got" == "$last" ]]; then
      t3="$(now_ns)"
      break
    fi
    sleep 0.02
  done
  stop_load
  if [[ -z "$t3" ]]; then
    log "$name: (f) the restarted member m$((lead + 1)) did not serve the last write within 60s"
    member_log_tail "$lead"
    return 1
  fi
  local rj_ms
  rj_ms="$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f", (b - a) / 1e6 }')"
  log "$name: (f) restarted m$((lead + 1)) served the last write ${rj_ms} ms after its start"
  echo "rejoin_ms $rj_ms" >>"$out"
  acc FO "$name,rj" "$rj_ms"
  PER_ROUND["$name|rj"]+="$rj_ms "
  return 0
}

run_target() { # run_target <target>
  local name="$1"
  start_cluster "$name"

  local value
  value="$(head -c "$VAL_SIZE" /dev/zero | tr '\0' 'v')"
  "$ETCDCTL" --endpoints="$ENDPOINTS" put "$RANGE_KEY" "$value" >/dev/null ||
    die "$name: etcdctl put $RANGE_KEY failed"

  local spec id label args out i rid
  for spec in "${SCENARIOS[@]}"; do
    IFS='|' read -r id label args <<<"$spec"
    [[ -z "${BENCH_ONLY:-}" || " $BENCH_ONLY " == *" $id "* ]] || continue
    out="$WORK/$name-$id.out"
    log "$name: ($id) $label"
    local ok=1
    if [[ "$args" == failover ]]; then
      failover "$name" || ok=0
    else
      # In the background, so that a signal to this script is handled at once.
      # shellcheck disable=SC2086 # args are deliberately word-split
      timeout "$BENCH_TIMEOUT" "$REF_BIN/benchmark" --endpoints="$ENDPOINTS" $args \
        >"$out" 2>"$WORK/$name-$id.err" &
      # shellcheck disable=SC2128 # $! is no array (a shellcheck 0.9 false positive)
      BENCH_PID=$!
      wait "$BENCH_PID" || ok=0
      BENCH_PID=""
    fi
    if ((!ok)); then
      log "$name: ($id) failed; its output follows"
      [[ -f "$out" ]] && tail -n 20 "$out" >&2
      [[ -f "$WORK/$name-$id.err" ]] && tail -n 20 "$WORK/$name-$id.err" >&2
      FAILED=1
    fi
    if ! alive_all; then
      log "$name: a member died during ($id); skipping the remaining scenarios"
      FAILED=1
      break
    fi
  done
  for i in "${!ROWS[@]}"; do
    IFS='|' read -r rid _ <<<"${ROWS[$i]}"
    [[ -f "$WORK/$name-$rid.out" ]] || continue
    local rps p99 errs
    read -r rps p99 errs < <(parse "$WORK/$name-$rid.out")
    acc RPS "$name,$i" "$rps"
    acc P99 "$name,$i" "$p99"
    acc ERRS "$name,$i" "$errs"
  done
  stop_cluster
  # Leave the disk quiet for the next cluster: drop these data dirs, flush.
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    mv "$WORK/$name" "$WORK/$name.round$round"
    for f in "$WORK/$name"-*.out "$WORK/$name"-*.err; do [[ -e "$f" ]] && mv "$f" "$WORK/$name.round$round/"; done
  else
    rm -rf "${WORK:?}/$name" "$WORK/$name"-*.out "$WORK/$name"-*.err
  fi
  sync
}

log "work dir $WORK; scale $BENCH_SCALE: totals p=$PUT_TOTAL r=$RANGE_TOTAL, key space $KEY_SPACE; endpoints $ENDPOINTS"
# shellcheck disable=SC2086 # word-split on purpose
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
get() { # get <array name> <key>: the value or "-"
  local -n arr="$1"
  local v="${arr[$2]-}"
  printf '%s' "${v:--}"
}

header=("scenario" "metastore req/s" "etcd req/s" "ratio metastore/etcd" "metastore p99 ms" "etcd p99 ms")
lines=()
notes=()
for i in "${!ROWS[@]}"; do
  IFS='|' read -r _ rlabel <<<"${ROWS[$i]}"
  m_rps="$(get RPS "metastore,$i")"
  e_rps="$(get RPS "etcd,$i")"
  lines+=("$rlabel|$m_rps|$e_rps|$(ratio "$m_rps" "$e_rps")|$(get P99 "metastore,$i")|$(get P99 "etcd,$i")")
  for target in metastore etcd; do
    errs="$(get ERRS "$target,$i")"
    if [[ "$errs" != "-" && "$errs" != 0 ]]; then
      notes+=("$target: $errs failed requests in $rlabel")
    fi
  done
done
fheader=("failover measure" "metastore" "etcd" "ratio metastore/etcd")
flines=()
for spec in "${FROWS[@]}"; do
  IFS='|' read -r fid rlabel <<<"$spec"
  m="$(get FO "metastore,$fid")"
  e="$(get FO "etcd,$fid")"
  flines+=("$rlabel|$m|$e|$(ratio "$m" "$e")")
done

{
  text_table 48 header lines
  echo
  text_table 62 fheader flines
  for n in "${notes[@]}"; do printf 'WARNING: %s\n' "$n"; done
}

{
  echo "# MetaStore vs etcd, 3-member clusters"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, all members on one host (127.0.0.1), etcd benchmark tool with all three endpoints;"
  echo "BENCH_SCALE=$BENCH_SCALE; means of $BENCH_ROUNDS round(s), order alternating"
  echo "(totals: p=$PUT_TOTAL r=$RANGE_TOTAL; key space $KEY_SPACE; ${KEY_SIZE} B keys, ${VAL_SIZE} B values)."
  echo "MetaStore: \`$METASTORE_BIN\`; etcd: \`$("$REF_BIN/etcd" --version 2>/dev/null | head -n 1)\`."
  echo
  md_table header lines
  echo
  echo "Failover (f): a put load of $FO_CONNS conns / $FO_CLIENTS clients on all members; the leader is killed with SIGKILL;"
  echo "\`etcdctl put\` through the two survivors every 20 ms (--command-timeout=$FO_POLL_TIMEOUT) until one succeeds."
  echo "Then the killed member restarts on its data dir; time until a serializable get on it returns the write made while it was down."
  echo "Lower is better. Per round: metastore failover ${PER_ROUND[metastore|fo]:--}/ rejoin ${PER_ROUND[metastore|rj]:--}ms;"
  echo "etcd failover ${PER_ROUND[etcd|fo]:--}/ rejoin ${PER_ROUND[etcd|rj]:--}ms."
  echo
  md_table fheader flines
  if ((${#notes[@]})); then
    echo
    for n in "${notes[@]}"; do printf -- '- WARNING: %s\n' "$n"; done
  fi
} >"$BENCH_OUT"
log "wrote $BENCH_OUT"

if ((FAILED)); then
  die "some benchmark runs failed (see above)"
fi
