#!/usr/bin/env bash
# Part B benchmark (issue 3's setup): three `raftkv server` processes on loopback, fsync on,
# 16-byte keys, 256-byte values, 10,000 keys loaded first, uniform; then, for 10 s each:
# writes at 1, 16 and 256 clients, linearizable reads at 1 and 256, a 50/50 mix at 64.
#
# Usage: scripts/bench-part-b.sh [SECS (default 10)]
# LOADS="w1 w256" runs only some loads (w1 w16 w256 r1 r256 m64).
# Work files (data, logs, bench output) stay in $RAFTKV_BENCH_DIR (default: a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
LOADS=${LOADS:-w1 w16 w256 r1 r256 m64}
WORK=${RAFTKV_BENCH_DIR:-$(mktemp -d /tmp/raftkv-bench.XXXXXX)}
PEERS=1=127.0.0.1:23171,2=127.0.0.1:23172,3=127.0.0.1:23173
EPS=127.0.0.1:23171,127.0.0.1:23172,127.0.0.1:23173

cargo build --release -p raftkv >/dev/null 2>&1
BIN=$PWD/target/release/raftkv
echo "work dir: $WORK"

PIDS=()
stop_all() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap stop_all EXIT
for id in 1 2 3; do
  "$BIN" server --id "$id" --peers "$PEERS" --data-dir "$WORK/store-$id" \
    >>"$WORK/store-$id.log" 2>&1 &
  PIDS+=($!)
done
"$BIN" bench --load --clients 32 --keys 10000 --endpoints "$EPS" >"$WORK/load.txt" 2>&1

run() { # name clients read-ratio
  "$BIN" bench --clients "$2" --read-ratio "$3" --duration "$SECS" --endpoints "$EPS" \
    >"$WORK/$1.txt" 2>&1
  printf '%-5s %s\n' "$1" "$(grep -E '^(reads|writes)' "$WORK/$1.txt" | tr -s ' ' | paste -sd'|')"
}
for load in $LOADS; do
  case $load in
    w1) run w1 1 0 ;; w16) run w16 16 0 ;; w256) run w256 256 0 ;;
    r1) run r1 1 1 ;; r256) run r256 256 1 ;; m64) run m64 64 0.5 ;;
    *) echo "unknown load $load" >&2; exit 2 ;;
  esac
done
