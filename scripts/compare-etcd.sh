#!/usr/bin/env bash
# raftkv against etcd on this box, issue 3's method: three servers of each on loopback, fsync
# on, 10,000 keys of 16 bytes with 256-byte values loaded first, then each load for SECS
# seconds, driven by tools/loadgen (one HTTP/2 connection per 8 clients, all to the leader).
# Systems run interleaved, raftkv, etcd, etcd, raftkv, each on a fresh cluster, because this
# kind of box drifts by tens of percent within an hour: only same-round ratios mean much.
#
# Needs etcd 3.4 (Debian: apt-get install etcd-server etcd-client); nothing else to install.
# Usage: scripts/compare-etcd.sh [SECS (default 10)]
# LOADS="w1 r256" runs only some loads (w1 w16 w256 r1 r256 m64); ORDER="raftkv etcd" changes
# the order. Work files stay in $RAFTKV_BENCH_DIR (default: a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
LOADS=${LOADS:-w1 w16 w256 r1 r256 m64}
ORDER=${ORDER:-raftkv etcd etcd raftkv}
WORK=${RAFTKV_BENCH_DIR:-$(mktemp -d /tmp/raftkv-compare.XXXXXX)}
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "etcd and etcdctl are needed (Debian: apt-get install etcd-server etcd-client)" >&2; exit 2; }

cargo build --release -p raftkv >/dev/null 2>&1
(cd tools/loadgen && cargo build --release >/dev/null 2>&1)
RAFTKV=$PWD/target/release/raftkv
LOADGEN=$PWD/tools/loadgen/target/release/raftkv-loadgen
echo "work dir: $WORK"

PIDS=()
stop_all() {
  for p in "${PIDS[@]}"; do
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  PIDS=()
}
trap stop_all EXIT

# The start_* functions run in this shell (not in a $(...) subshell), so that PIDS keeps
# their servers; each sets LEADER to the leader's client address.
start_raftkv() {
  local peers=1=127.0.0.1:23171,2=127.0.0.1:23172,3=127.0.0.1:23173 dir=$WORK/raftkv
  rm -rf "$dir" && mkdir -p "$dir"
  for id in 1 2 3; do
    "$RAFTKV" server --id "$id" --peers "$peers" --data-dir "$dir/s$id" >"$dir/s$id.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 100); do
    LEADER=$("$RAFTKV" status --json --endpoints 127.0.0.1:23171,127.0.0.1:23172,127.0.0.1:23173 \
      2>/dev/null | grep -o '"address":"[^"]*","role":"leader"' | cut -d'"' -f4 || true)
    [ -n "$LEADER" ] && return
    sleep 0.2
  done
  echo "raftkv elected no leader" >&2; exit 1
}

start_etcd() {
  local dir=$WORK/etcd cluster=e1=http://127.0.0.1:12380,e2=http://127.0.0.1:22380,e3=http://127.0.0.1:32380
  rm -rf "$dir" && mkdir -p "$dir"
  for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$dir/e$i" \
      --listen-client-urls "http://127.0.0.1:${i}2379" --advertise-client-urls "http://127.0.0.1:${i}2379" \
      --listen-peer-urls "http://127.0.0.1:${i}2380" --initial-advertise-peer-urls "http://127.0.0.1:${i}2380" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token compare \
      >"$dir/e$i.log" 2>&1 &
    PIDS+=($!)
  done
  for _ in $(seq 100); do
    LEADER=$(ETCDCTL_API=3 etcdctl --endpoints=127.0.0.1:12379,127.0.0.1:22379,127.0.0.1:32379 \
      endpoint status -w simple 2>/dev/null | awk -F', ' '$5 == "true" { print $1 }' || true)
    [ -n "$LEADER" ] && return
    sleep 0.2
  done
  echo "etcd elected no leader" >&2; exit 1
}

for system in $ORDER; do
  "start_$system"
  "$LOADGEN" --target "$system" --endpoint "$LEADER" --preload 2>/dev/null
  for load in $LOADS; do
    case $load in
      w1) args=(--clients 1) ;; w16) args=(--clients 16) ;; w256) args=(--clients 256) ;;
      r1) args=(--clients 1 --read-ratio 1) ;; r256) args=(--clients 256 --read-ratio 1) ;;
      m64) args=(--clients 64 --read-ratio 0.5) ;;
      *) echo "unknown load $load" >&2; exit 2 ;;
    esac
    out=$("$LOADGEN" --target "$system" --endpoint "$LEADER" --duration-secs "$SECS" "${args[@]}")
    printf '%-6s %-4s %s\n' "$system" "$load" "$(echo "$out" | paste -sd'|')"
  done
  stop_all
  sync
  sleep 2
done
