#!/usr/bin/env bash
# A local 3-member MetaStore cluster on loopback, in the foreground (the body
# of `make cluster`; the same members as the Procfile, for goreman users):
#
#   member  client URL              peer URL
#   infra1  http://127.0.0.1:2379   http://127.0.0.1:2380
#   infra2  http://127.0.0.1:22379  http://127.0.0.1:22380
#   infra3  http://127.0.0.1:32379  http://127.0.0.1:32380
#
# Data goes to $CLUSTER_DIR/<name> (default ./cluster.metastore/<name>), each
# member's log to $CLUSTER_DIR/<name>.log (appended to across runs). Ctrl-C
# or SIGTERM stops all members (SIGTERM, then SIGKILL after 30 s). A member
# that exits on its own (or that you kill, to try a failover) is reported;
# the others keep running until every member has exited or you stop them.
#
# A re-run with the data dirs in place restarts the same cluster: the members
# keep their data and, as etcd's do, ignore --initial-cluster* then. Start
# from scratch with: rm -rf cluster.metastore
#
# Environment (relative paths are taken from the current directory):
#   METASTORE_BIN   server binary             (default <repo>/bin/metastore)
#   CLUSTER_DIR     data dirs and logs        (default ./cluster.metastore)
#   CLUSTER_FLAGS   extra flags for every member, word-split,
#                   e.g. "--heartbeat-interval 50 --election-timeout 500"
#   CLUSTER_TAIL=1  also copy the members' logs to stdout, prefixed by name
# Arguments after the script name are added to every member's flags too.
#
# Plain http only: MetaStore has no TLS yet (https URLs are refused).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac }

BIN="$(abspath "${METASTORE_BIN:-$ROOT/bin/metastore}")"
DIR="$(abspath "${CLUSTER_DIR:-cluster.metastore}")"
TOKEN="metastore-cluster-1"
NAMES=(infra1 infra2 infra3)
CLIENT_PORTS=(2379 22379 32379)
PEER_PORTS=(2380 22380 32380)
HOST=127.0.0.1

die() { echo "cluster: $*" >&2; exit 1; }
log() { echo "cluster: $*" >&2; }

[[ -x "$BIN" ]] || die "no MetaStore binary at $BIN (run make build, or set METASTORE_BIN)"

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for i in "${!NAMES[@]}"; do
  for p in "${CLIENT_PORTS[$i]}" "${PEER_PORTS[$i]}"; do
    port_in_use "$p" && die "port $p is in use (another cluster or etcd running?)"
  done
done

INITIAL_CLUSTER=""
ENDPOINTS=""
for i in "${!NAMES[@]}"; do
  INITIAL_CLUSTER+="${INITIAL_CLUSTER:+,}${NAMES[$i]}=http://$HOST:${PEER_PORTS[$i]}"
  ENDPOINTS+="${ENDPOINTS:+,}$HOST:${CLIENT_PORTS[$i]}"
done

mkdir -p "$DIR"
declare -A PIDS=()  # name -> pid of the running members
declare -A START=() # name -> first line of this run in its log
TAIL_PIDS=()

stop_all() {
  local name pid i
  for name in "${!PIDS[@]}"; do
    kill -TERM "${PIDS[$name]}" 2>/dev/null || true
  done
  for ((i = 0; i < 300; i++)); do # up to 30 s for a graceful stop
    local alive=0
    for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for name in "${!PIDS[@]}"; do
    if kill -0 "${PIDS[$name]}" 2>/dev/null; then
      log "$name (pid ${PIDS[$name]}) ignored SIGTERM for 30s; killing it"
      kill -KILL "${PIDS[$name]}" 2>/dev/null || true
    fi
    wait "${PIDS[$name]}" 2>/dev/null || true
  done
  PIDS=()
  for pid in "${TAIL_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  TAIL_PIDS=()
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if ((${#PIDS[@]})); then
    log "stopping ${!PIDS[*]}"
    stop_all
    log "stopped; data kept in $DIR (rm -rf it to start afresh)"
  else
    stop_all
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

existing=0
for i in "${!NAMES[@]}"; do
  name="${NAMES[$i]}"
  [[ -d "$DIR/$name/member" ]] && existing=$((existing + 1))
  logf="$DIR/$name.log"
  touch "$logf"
  START[$name]=$(($(wc -l <"$logf") + 1))
  client="http://$HOST:${CLIENT_PORTS[$i]}" peer="http://$HOST:${PEER_PORTS[$i]}"
  # shellcheck disable=SC2086 # CLUSTER_FLAGS is deliberately word-split
  "$BIN" --name "$name" --data-dir "$DIR/$name" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-token "$TOKEN" \
    --initial-cluster-state new ${CLUSTER_FLAGS:-} "$@" >>"$logf" 2>&1 &
  PIDS[$name]=$!
done
if ((existing == ${#NAMES[@]})); then
  log "restarting the cluster from the data in $DIR"
elif ((existing > 0)); then
  log "warning: only $existing of ${#NAMES[@]} members have data in $DIR; the others bootstrap afresh (rm -rf $DIR to start over)"
else
  log "bootstrapping a new cluster, data in $DIR"
fi
if [[ "${CLUSTER_TAIL:-0}" == 1 ]]; then
  for name in "${NAMES[@]}"; do
    # tail's pid in $!: killing it ends its sed too
    tail -n "+${START[$name]}" -F "$DIR/$name.log" 2>/dev/null > >(sed -u "s/^/$name | /") &
    TAIL_PIDS+=("$!")
  done
fi

# Wait until every member is ready (a member is ready once raft knows a
# leader, which needs a quorum: the members must come up together).
for ((t = 0; t < 600; t++)); do # up to 60 s
  ready=0
  for name in "${NAMES[@]}"; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      tail -n "+${START[$name]}" "$DIR/$name.log" | tail -n 20 >&2 || true
      die "$name exited during startup (its log above; all of it in $DIR/$name.log)"
    fi
    tail -n "+${START[$name]}" "$DIR/$name.log" | grep -q 'ready to serve client requests' && ready=$((ready + 1))
  done
  ((ready == ${#NAMES[@]})) && break
  sleep 0.1
done
((ready == ${#NAMES[@]})) || die "not all members ready after 60s; see $DIR/*.log"

cat <<EOF
cluster: ${#NAMES[@]} members ready ($(for n in "${NAMES[@]}"; do printf '%s pid %s  ' "$n" "${PIDS[$n]}"; done))
cluster: logs in $DIR/<name>.log; Ctrl-C stops the cluster.

  etcdctl --endpoints $ENDPOINTS member list -w table
  etcdctl --endpoints $ENDPOINTS endpoint status -w table
  etcdctl --endpoints $ENDPOINTS put foo bar

EOF

# Foreground: report members that exit; end when all have (or on a signal).
while ((${#PIDS[@]})); do
  for name in "${!PIDS[@]}"; do
    if ! kill -0 "${PIDS[$name]}" 2>/dev/null; then
      rc=0
      wait "${PIDS[$name]}" || rc=$?
      unset "PIDS[$name]"
      log "$name exited (status $rc); last lines of $DIR/$name.log:"
      tail -n 5 "$DIR/$name.log" >&2 || true
    fi
  done
  sleep 0.5 & # interruptible: the traps run as soon as a signal comes
  wait $! || true
done
log "all members have exited"
