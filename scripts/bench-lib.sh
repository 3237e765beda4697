# shellcheck shell=bash
# Functions shared by scripts/bench.sh and scripts/bench-cluster.sh (sourced
# by both; defines functions only). The caller sets BENCH_NAME (the log
# prefix) and, before calling check_scale and ensure_tools, BENCH_SCALE,
# REF_BIN, METASTORE_BIN, BENCH_TARGETS and ROOT.

abspath() { # abspath <path>: relative to the caller's cwd
  case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac
}

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
log() { echo "$BENCH_NAME: $*" >&2; }

scaled() { # scaled <n> <min>: n * BENCH_SCALE, rounded, at least min (>= 100 for a p99)
  awk -v n="$1" -v s="$BENCH_SCALE" -v min="$2" 'BEGIN { v = int(n * s + 0.5); if (v < min) v = min; print v }'
}

check_scale() {
  awk -v s="$BENCH_SCALE" 'BEGIN { exit !(s + 0 > 0) }' || die "BENCH_SCALE must be a positive number, got '$BENCH_SCALE'"
}

# ensure_tools builds the reference tools when missing (default REF_BIN
# only) and checks BENCH_TARGETS and the MetaStore binary.
ensure_tools() {
  if [[ ! -x "$REF_BIN/etcd" || ! -x "$REF_BIN/etcdctl" || ! -x "$REF_BIN/benchmark" ]]; then
    [[ "$REF_BIN" == "$ROOT/.ref/bin" ]] || die "REF_BIN=$REF_BIN lacks etcd, etcdctl or benchmark"
    log "reference tools missing; running scripts/build-ref.sh"
    bash "$ROOT/scripts/build-ref.sh" >/dev/null
  fi
  local target
  for target in $BENCH_TARGETS; do
    case "$target" in
      metastore) [[ -x "$METASTORE_BIN" ]] || die "no MetaStore binary at $METASTORE_BIN (go build -o bin/metastore ./cmd/metastore, or set METASTORE_BIN)" ;;
      etcd) ;;
      *) die "unknown target '$target' in BENCH_TARGETS (want metastore and/or etcd)" ;;
    esac
  done
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# acc <array> <key> <value>: adds a round's value ("-" or empty: none) to
# SUMS/CNTS (associative arrays the caller declares).
acc() {
  [[ -n "$3" && "$3" != "-" ]] || return 0
  SUMS["$1|$2"]="$(awk -v a="${SUMS["$1|$2"]:-0}" -v b="$3" 'BEGIN { print a + b }')"
  CNTS["$1|$2"]=$((${CNTS["$1|$2"]:-0} + 1))
}

# finish_rounds sets every array entry to the mean over rounds (errors: the sum).
finish_rounds() {
  local k arr key v
  for k in "${!SUMS[@]}"; do
    arr="${k%%|*}" key="${k#*|}"
    if [[ "$arr" == ERRS ]]; then
      v="${SUMS[$k]}"
    else
      v="$(awk -v s="${SUMS[$k]}" -v n="${CNTS[$k]}" 'BEGIN { printf "%.2f", s / n }')"
    fi
    printf -v "${arr}[$key]" '%s' "$v"
  done
}

ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.2f\n", a / b }'
}

# text_table <label width> <header array> <rows array>: a report table for
# the terminal; each row is "label|value|value...".
text_table() {
  local width=$1 row
  local -n tt_head=$2 tt_rows=$3
  local -a cells
  printf "%-${width}s" "${tt_head[0]}"
  printf '%22s' "${tt_head[@]:1}"
  printf '\n'
  for row in "${tt_rows[@]}"; do
    IFS='|' read -r -a cells <<<"$row"
    printf "%-${width}s" "${cells[0]}"
    printf '%22s' "${cells[@]:1}"
    printf '\n'
  done
}

# md_table <header array> <rows array>: the same table as markdown, numbers
# right-aligned.
md_table() {
  local row i
  local -n mt_head=$1 mt_rows=$2
  local -a cells
  printf '| %s ' "${mt_head[@]}"
  printf '|\n|---'
  for ((i = 1; i < ${#mt_head[@]}; i++)); do printf '|---:'; done
  printf '|\n'
  for row in "${mt_rows[@]}"; do
    IFS='|' read -r -a cells <<<"$row"
    printf '| %s ' "${cells[@]}"
    printf '|\n'
  done
}

# One server at a time on 127.0.0.1 (bench.sh, bench-big.sh). The caller
# sets WORK, CLIENT_PORT, PEER_PORT, ENDPOINT, SERVER_PID ("") and LOAD_PID
# (the load running in the background, "" when none), and may
# set STOP_WAIT (seconds a graceful stop may take; default 30) and PORT_VAR
# (the variable that moves the ports, named when they are taken). The
# member is named $BENCH_NAME-<target>.
stop_server() {
  [[ -n "$SERVER_PID" ]] || return 0
  local pid="$SERVER_PID"
  SERVER_PID=""
  stop_pid "$pid" TERM "server pid $pid"
}

# stop_pid <pid> <signal> <what>: sends the signal, waits STOP_WAIT
# seconds (default 30) for the process to exit, kills it if it did not
# (logging <what> ignored the signal), and reaps it.
stop_pid() {
  local pid="$1" sig="$2" what="$3" i
  kill "-$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < ${STOP_WAIT:-30} * 10; i++)); do # a graceful stop
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$what ignored SIG$sig for ${STOP_WAIT:-30}s; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

start_server() { # start_server <target> <binary> <extra flags...>
  local name="$1" bin="$2" i
  shift 2
  local dir="$WORK/$name"
  mkdir -p "$dir"
  port_in_use "$CLIENT_PORT" && die "port $CLIENT_PORT is in use (set ${PORT_VAR:-BENCH_PORT})"
  port_in_use "$PEER_PORT" && die "port $PEER_PORT is in use (set ${PORT_VAR:-BENCH_PORT})"
  local peer="http://127.0.0.1:$PEER_PORT" client="http://$ENDPOINT"
  "$bin" \
    --name "$BENCH_NAME-$name" \
    --data-dir "$dir/data" \
    --listen-client-urls "$client" \
    --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" \
    --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$BENCH_NAME-$name=$peer" \
    "$@" >"$dir/server.log" 2>&1 &
  SERVER_PID=$!
  for ((i = 0; i < 600; i++)); do # up to 60 s
    if grep -q 'ready to serve client requests' "$dir/server.log" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      tail -n 30 "$dir/server.log" >&2 || true
      SERVER_PID=""
      die "$name exited during startup (log above)"
    fi
    sleep 0.1
  done
  tail -n 30 "$dir/server.log" >&2 || true
  die "$name not ready after 60s (log above)"
}

# trap_cleanup makes every exit stop the load and the server and remove
# WORK (kept with BENCH_KEEP=1).
trap_cleanup() {
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

cleanup() {
  local rc=$?
  if [[ -n "$LOAD_PID" ]]; then
    kill -TERM "$LOAD_PID" 2>/dev/null || true
    wait "$LOAD_PID" 2>/dev/null || true
  fi
  stop_server
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    log "kept data dirs and logs in $WORK"
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
