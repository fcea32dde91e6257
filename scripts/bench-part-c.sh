#!/usr/bin/env bash
# Part C benchmarks on real `raftkv server` processes on loopback (fsync on):
#
#   1. catch-up of a store from a large state through a snapshot: time, MiB/s, and the
#      RSS of the sender (leader) and the receiver before and during the transfer;
#   2. write latency on the leader before and during that transfer;
#   3. raftdb's size on disk after one million writes with raft_log_gc_count_limit 10000.
#
# Usage: scripts/bench-part-c.sh [STATE_MIB (default 1024)] [WRITES (default 1000000)]
# SNAP_RATE=bytes/s overrides snap_max_bytes_per_sec (default 100 MiB/s, SPEC's default).
# BENCH_CLIENTS sets the writers measured before and during the transfer (default 16).
# Work files (data, logs, bench output) stay in $RAFTKV_BENCH_DIR (default: a new temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

STATE_MIB=${1:-1024}
WRITES=${2:-1000000}
VALUE=65536
KEYS=$((STATE_MIB * 1024 * 1024 / VALUE))
WORK=${RAFTKV_BENCH_DIR:-$(mktemp -d /tmp/raftkv-bench.XXXXXX)}
PEERS=1=127.0.0.1:23161,2=127.0.0.1:23162,3=127.0.0.1:23163
EPS=127.0.0.1:23161,127.0.0.1:23162,127.0.0.1:23163

cargo build --release -p raftkv >/dev/null 2>&1
BIN=$PWD/target/release/raftkv
echo "work dir: $WORK"

start() { # id config
  "$BIN" server --id "$1" --peers "$PEERS" --data-dir "$WORK/$2/store-$1" \
    --config "$WORK/$2.toml" >>"$WORK/$2-store-$1.log" 2>&1 &
  echo $! >"$WORK/$2-store-$1.pid"
}
stop_all() { # config
  for id in 1 2 3; do
    [ -f "$WORK/$1-store-$id.pid" ] && kill "$(cat "$WORK/$1-store-$id.pid")" 2>/dev/null || true
  done
  sleep 2
}
status_field() { # endpoint field
  { "$BIN" status --json --endpoints "$1" 2>/dev/null || true; } |
    sed -n "s/.*\"$2\": *\([0-9]*\).*/\1/p" | head -1
}
leader_id() {
  for id in 1 2 3; do
    l=$(status_field "127.0.0.1:2316$id" leader)
    if [ -n "$l" ] && [ "$l" != 0 ]; then echo "$l"; return; fi
  done
  echo 0
}
await_leader() {
  for _ in $(seq 1 100); do
    [ "$(leader_id)" != 0 ] && return
    sleep 0.2
  done
  echo "no leader" >&2; exit 1
}
calc() { awk "BEGIN { print ($1) }"; }
rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- 1 & 2: catch-up from a large state, and write latency meanwhile --------------------
# The log is compacted once it holds a quarter of the state (256 MiB, the default, for
# 1 GiB): store 3, which never started, can only catch up through a snapshot.
cat >"$WORK/catchup.toml" <<EOT
[raftstore]
raft_log_gc_tick_interval_ms = 1000
raft_log_gc_size_limit_bytes = $((STATE_MIB * 1024 * 1024 / 4))
snap_max_bytes_per_sec = ${SNAP_RATE:-104857600}
EOT
start 1 catchup; start 2 catchup
await_leader
echo "loading $STATE_MIB MiB ($KEYS keys of $VALUE bytes) into stores 1 and 2 (store 3 never started)"
"$BIN" bench --load --clients 32 --keys "$KEYS" --value-size "$VALUE" --endpoints "$EPS" |
  tail -4 | tee "$WORK/load.txt"
sleep 3 # two GC ticks: the log is compacted past index 5 (size limit)
LEADER=$(leader_id)
LPID=$(cat "$WORK/catchup-store-$LEADER.pid")
# Samples the leader's RSS while a bench runs: the peak under the same write load, without
# and then with a snapshot transfer, isolates what the transfer costs.
peak_rss_while() { # pid pid-of-bench
  local max=0 r
  while kill -0 "$2" 2>/dev/null; do
    r=$(rss_kib "$1"); if [ "$r" -gt "$max" ]; then max=$r; fi
    sleep 0.1
  done
  echo "$max"
}
echo "--- writes before the transfer (leader: store $LEADER), --cf write"
"$BIN" bench --clients "${BENCH_CLIENTS:-16}" --duration 12 --cf write --endpoints "$EPS" >"$WORK/before.txt" &
LRSS0=$(peak_rss_while "$LPID" $!)
grep -E "^(done|writes|errors)" "$WORK/before.txt"

T0=$(date +%s.%N)
start 3 catchup
FPID=$(cat "$WORK/catchup-store-3.pid")
"$BIN" bench --clients "${BENCH_CLIENTS:-16}" --duration 20 --cf write --endpoints "$EPS" >"$WORK/during.txt" &
BENCH=$!
LMAX=0; FMAX=0
# Caught up once the region worker installed the snapshot's data.
until grep -q "applied a snapshot" "$WORK/catchup-store-3.log"; do
  l=$(rss_kib "$LPID"); f=$(rss_kib "$FPID")
  if [ "$l" -gt "$LMAX" ]; then LMAX=$l; fi
  if [ "$f" -gt "$FMAX" ]; then FMAX=$f; fi
  if [ "$(calc "$(date +%s.%N) - $T0 > 600")" = 1 ]; then echo "no catch-up in 10 min" >&2; break; fi
  sleep 0.1
done
T1=$(date +%s.%N)
wait "$BENCH" || true
SNAP_BYTES=$({ grep -ho 'sent a snapshot.*bytes=[0-9]*' "$WORK"/catchup-store-*.log || true; } |
  tail -1 | sed 's/.*bytes=//')
SECS=$(calc "$T1 - $T0")
echo "--- writes during the transfer (20 s from the start of store 3)"
grep -E "^(done|writes|errors)" "$WORK/during.txt"
printf 'catch-up: snapshot of %s bytes generated, sent and installed %.2f s after store 3 started = %.1f MiB/s\n' \
  "${SNAP_BYTES:-0}" "$SECS" "$(calc "${SNAP_BYTES:-0} / 1048576 / $SECS")"
echo "RSS leader (sender): $((LRSS0 / 1024)) MiB peak under the same load without a transfer, $((LMAX / 1024)) MiB peak during"
echo "RSS store 3 (receiver): $((FMAX / 1024)) MiB peak until installed"
{ grep -h "applied a snapshot\|generated a snapshot\|sent a snapshot" "$WORK"/catchup-store-*.log || true; } |
  sed 's/\x1b\[[0-9;]*m//g' | cut -c1-200
stop_all catchup

# --- 3: raftdb size after a million writes with GC limit 10,000 -------------------------
cat >"$WORK/gc.toml" <<EOT
[raftstore]
raft_log_gc_count_limit = 10000
raft_log_gc_tick_interval_ms = 1000
EOT
start 1 gc; start 2 gc; start 3 gc
await_leader
echo "--- $WRITES writes of 256 bytes, raft_log_gc_count_limit = 10000"
"$BIN" bench --load --clients 256 --keys "$WRITES" --endpoints "$EPS" | grep -E "^(done|writes|errors)"
sleep 3
for id in 1 2 3; do
  echo "store $id: raftdb $(du -sh "$WORK/gc/store-$id/raftdb" | cut -f1), kvdb $(du -sh "$WORK/gc/store-$id/kvdb" | cut -f1)"
done
stop_all gc
