#!/usr/bin/env bash
# Keyspaces beyond RAM, MetaStore vs reference etcd (the body of `make
# bench-big`; issue 22 item 4; not part of `make test` or `make bench`).
#
# Each server in BENCH_TARGETS is started in turn on 127.0.0.1 with a fresh
# data dir under BIG_DIR and a 16 GiB space quota, and scripts/bigload loads
# BIG_KEYS keys (/registry/pods/ns-NNNN/pod-NNNNNNNN, 300 B incompressible
# values: ~3 GB at 10M) with 64 writers sending txns of 64 puts. At every
# BIG_STEP keys it pauses the load and records the server's RSS (VmRSS, its
# anonymous / file-backed parts, its peak so far), the data dir's size on
# disk, and the p50/p99 of point reads of random existing keys
# (serializable and linearizable), of overwrites of random existing keys
# and of watch event latency (a watch on one namespace, open for the whole
# run), each from a fixed number of requests; then resumes. The server is stopped before the
# next starts.
#
# Writes, in BIG_OUT_DIR: bench-big-<server>.tsv (bigload's lines), and
# bench-big.md (a table: per step, RSS and the p99s of both servers side by
# side) and bench-big.png (gnuplot: RSS vs keys, and p99s vs keys). gnuplot
# is installed with apt-get (gnuplot-nox) when missing.
#
# Environment (relative paths are taken from the current directory):
#   METASTORE_BIN   server binary under test     (default <repo>/bin/metastore)
#   REF_BIN         dir with etcd                (default <repo>/.ref/bin)
#   BENCH_TARGETS   which servers, in order      (default "metastore etcd")
#   BIG_KEYS        keys to load                 (default 10000000)
#   BIG_STEP        keys between measurements    (default 1000000)
#   BIG_DIR         parent of the work dir (data dirs, logs; ~4 GB a
#                   server at 10M keys)          (default $TMPDIR or /tmp)
#   BIG_OUT_DIR     where the TSVs, table and plot go (default .)
#   BIG_PORT        client port; peer port is +1 (default 26790)
#   BIG_QUOTA       --quota-backend-bytes of both (default 16 GiB)
#   BIGLOAD_FLAGS   extra scripts/bigload flags (word-split), e.g.
#                   "-clients 32 -reads 2000"; see go run ./scripts/bigload -help
#   BENCH_KEEP=1    keep data dirs and logs
#   METASTORE_FLAGS ETCD_FLAGS  extra server flags (word-split)
#
# A small run to check it (a minute or two a server):
#   BIG_KEYS=200000 BIG_STEP=50000 make bench-big
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH_NAME=bench-big
# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

METASTORE_BIN="$(abspath "${METASTORE_BIN:-$ROOT/bin/metastore}")"
REF_BIN="$(abspath "${REF_BIN:-$ROOT/.ref/bin}")"
BENCH_TARGETS="${BENCH_TARGETS:-metastore etcd}"
BIG_KEYS="${BIG_KEYS:-10000000}"
BIG_STEP="${BIG_STEP:-1000000}"
BIG_OUT_DIR="$(abspath "${BIG_OUT_DIR:-.}")"
BIG_PORT="${BIG_PORT:-26790}"
BIG_QUOTA="${BIG_QUOTA:-$((16 << 30))}"

ensure_tools
if ! command -v gnuplot >/dev/null; then
  log "gnuplot missing; installing gnuplot-nox"
  { apt-get update -qq && apt-get install -y -qq gnuplot-nox; } >/dev/null || die "cannot install gnuplot-nox (install it, or run as root)"
fi

CLIENT_PORT="$BIG_PORT"
PEER_PORT=$((BIG_PORT + 1))
ENDPOINT="127.0.0.1:$CLIENT_PORT"
WORK="$(mktemp -d "${BIG_DIR:-${TMPDIR:-/tmp}}/metastore-bench-big.XXXXXX")"
mkdir -p "$BIG_OUT_DIR"
SERVER_PID=""
STOP_WAIT=60 # a large store may flush
PORT_VAR=BIG_PORT
LOAD_PID=""

trap_cleanup


run_target() { # run_target <target>: writes $BIG_OUT_DIR/bench-big-<target>.tsv
  local name="$1" bin flags tsv="$BIG_OUT_DIR/bench-big-$1.tsv"
  case "$name" in
    metastore) bin="$METASTORE_BIN"; flags="${METASTORE_FLAGS:-}" ;;
    etcd) bin="$REF_BIN/etcd"; flags="${ETCD_FLAGS:-}" ;;
  esac
  rm -rf "$WORK/$name/data"
  log "starting $name ($bin) on $ENDPOINT, data in $WORK/$name/data; loading $BIG_KEYS keys"
  # shellcheck disable=SC2086 # flags are deliberately word-split
  start_server "$name" "$bin" --quota-backend-bytes "$BIG_QUOTA" $flags
  # In the background, so that a signal to this script is handled at once.
  # shellcheck disable=SC2086 # flags are deliberately word-split
  "$WORK/bigload" -endpoint "$ENDPOINT" -pid "$SERVER_PID" -data-dir "$WORK/$name/data" \
    -keys "$BIG_KEYS" -step "$BIG_STEP" ${BIGLOAD_FLAGS:-} >"$tsv" 2> >(tee "$WORK/$name-bigload.err" >&2) &
  LOAD_PID=$!
  local ok=1
  wait "$LOAD_PID" || ok=0
  LOAD_PID=""
  if ((!ok)); then
    log "$name: bigload failed; the server log follows"
    tail -n 30 "$WORK/$name/server.log" >&2 || true
    die "$name: bigload failed"
  fi
  stop_server
  # Leave the disk quiet for the next server.
  [[ "${BENCH_KEEP:-0}" == 1 ]] || rm -rf "$WORK/$name/data"
  sync
}

(cd "$ROOT" && go build -o "$WORK/bigload" ./scripts/bigload) || die "cannot build scripts/bigload"
log "work dir $WORK; $BIG_KEYS keys, a measure every $BIG_STEP; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for target in $BENCH_TARGETS; do
  run_target "$target"
done

# ---- report -------------------------------------------------------------------
# col <target> <column name>: "keys value" lines of one TSV column.
col() {
  awk -F'\t' -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) n = i; next } { print $1, $n }' \
    "$BIG_OUT_DIR/bench-big-$1.tsv"
}

# cell <column> <keys> <format>: "metastore / etcd" of one step (- if a
# server has no such step).
cell() {
  local t v out=""
  for t in $BENCH_TARGETS; do
    v="$(col "$t" "$1" | awk -v k="$2" -v f="$3" '$1 == k { printf f, $2 }')"
    out+="${out:+ / }${v:--}"
  done
  printf '%s' "$out"
}

MD="$BIG_OUT_DIR/bench-big.md"
PNG="$BIG_OUT_DIR/bench-big.png"
first="$(set -- $BENCH_TARGETS; echo "$1")"
vs="$(echo "$BENCH_TARGETS" | sed 's/ / \/ /g')"
{
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores (load average $(cut -d' ' -f1-3 /proc/loadavg) at the end),"
  echo "$BIG_KEYS keys of 300 B, a measure every $BIG_STEP; cells are $vs; latencies p99 in ms."
  echo
  echo "| keys | RSS MiB | peak RSS MiB | disk MiB | load keys/s | read p99 serializable | read p99 linearizable | put p99 | watch event p99 |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  while read -r keys; do
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$keys" \
      "$(cell rss_mib "$keys" '%.0f')" "$(cell rss_peak_mib "$keys" '%.0f')" "$(cell disk_mib "$keys" '%.0f')" \
      "$(cell load_keys_per_s "$keys" '%.0f')" \
      "$(cell read_s_p99 "$keys" '%.2f')" "$(cell read_l_p99 "$keys" '%.2f')" \
      "$(cell put_p99 "$keys" '%.2f')" "$(cell watch_p99 "$keys" '%.2f')"
  done < <(col "$first" keys | cut -d' ' -f1)
} >"$MD"
cat "$MD" >&2

# The plot: RSS on top, the p99s below (log scale), one colour a server.
plots_rss="" plots_p99=""
colors=(dark-blue dark-red dark-green)
i=0
for t in $BENCH_TARGETS; do
  f="$BIG_OUT_DIR/bench-big-$t.tsv" c="${colors[$i]}"
  plots_rss+="${plots_rss:+, }'$f' using (\$1/1e6):2 with linespoints lc rgb '$c' pt 7 title '$t RSS'"
  plots_rss+=", '$f' using (\$1/1e6):15 with lines lc rgb '$c' dt 3 title '$t peak RSS'"
  plots_rss+=", '$f' using (\$1/1e6):5 with lines lc rgb '$c' dt 2 title '$t data on disk'"
  plots_p99+="${plots_p99:+, }'$f' using (\$1/1e6):8 with linespoints lc rgb '$c' pt 7 title '$t read (s)'"
  plots_p99+=", '$f' using (\$1/1e6):10 with linespoints lc rgb '$c' pt 5 title '$t read (l)'"
  plots_p99+=", '$f' using (\$1/1e6):12 with linespoints lc rgb '$c' pt 9 title '$t put'"
  plots_p99+=", '$f' using (\$1/1e6):14 with linespoints lc rgb '$c' pt 13 title '$t watch'"
  i=$((i + 1))
done
gnuplot <<EOF || die "gnuplot failed"
set terminal pngcairo size 1000,1000 font ',10' noenhanced
set output '$PNG'
set datafile separator tab
set key autotitle columnhead
set multiplot layout 2,1 title 'MetaStore vs etcd: $BIG_KEYS keys of 300 B, measured every $BIG_STEP'
set xlabel 'keys loaded (millions)'
set grid
set key top left
set ylabel 'MiB'
set title 'resident set (RSS at each pause, peak so far) and data dir size on disk'
plot $plots_rss
set ylabel 'p99 latency, ms (log)'
set logscale y
set title 'p99: point reads (serializable, linearizable), overwrites, watch event latency'
plot $plots_p99
unset multiplot
EOF
log "wrote $MD, $PNG and the TSVs in $BIG_OUT_DIR"
