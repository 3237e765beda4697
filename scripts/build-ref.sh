#!/usr/bin/env bash
# Builds the reference etcd tools pinned in tools/ into <repo>/.ref/bin and
# prints that directory on stdout (progress goes to stderr).
#
#   tools/etcd/go.mod   etcd, etcdctl, etcdutl   (go.etcd.io/etcd/*/v3 @ v3.7.3)
#   tools/bench/go.mod  benchmark                (go.etcd.io/etcd/v3/tools/benchmark @ v3.6.8)
#
# Needs only Go and the Go module proxy. A binary is rebuilt only when it is
# missing or older than its module's go.mod/go.sum, so reruns are cheap.
#
# Usage:  bash scripts/build-ref.sh              # -> /path/to/repo/.ref/bin
#         PATH="$(bash scripts/build-ref.sh):$PATH" etcdctl version
#         REF_REBUILD=1 bash scripts/build-ref.sh  # force a rebuild
# The binaries are a yardstick for behaviour and speed; never commit them.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$ROOT/.ref/bin"
mkdir -p "$BIN"

# Serialise concurrent callers (e.g. several e2e test binaries at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$ROOT/.ref/.lock"
  flock 9
fi

# Builds must come from the committed go.mod/go.sum only: no go.work from a
# parent directory, no silent go.mod edits.
export GOWORK=off

# up_to_date <binary> <module dir>
up_to_date() {
  [[ "${REF_REBUILD:-0}" != 1 && -x "$1" && "$1" -nt "$2/go.mod" && "$1" -nt "$2/go.sum" ]]
}

# build <module dir> <binary name> <main package>
build() {
  local moddir="$ROOT/tools/$1" name="$2" pkg="$3"
  local out="$BIN/$name" tmp="$BIN/.$name.tmp.$$"
  if up_to_date "$out" "$moddir"; then
    return 0
  fi
  echo "build-ref: building $name from $pkg (tools/$1)" >&2
  if ! (cd "$moddir" && go build -mod=readonly -trimpath -o "$tmp" "$pkg"); then
    rm -f "$tmp"
    echo "build-ref: FAILED to build $name" >&2
    return 1
  fi
  mv -f "$tmp" "$out" # atomic: running copies of the old binary are unaffected
}

build etcd etcd go.etcd.io/etcd/server/v3
build etcd etcdctl go.etcd.io/etcd/etcdctl/v3
build etcd etcdutl go.etcd.io/etcd/etcdutl/v3
build bench benchmark go.etcd.io/etcd/v3/tools/benchmark

echo "$BIN"
