#!/usr/bin/env bash
# collectord's ring: memory with nothing held, and with the ring full. A release collectord
# (file monitor only, on a directory of its own; the ring at its default bound, 32 MiB, and the
# flood limit lifted so that every event is kept) starts with no reader; its RSS is taken once
# its monitor runs (idle). Then a rename loop (testkit's rename-flood, ~100,000 renames/s) fills
# the ring until it holds at least 95% of its bound; RSS and peak RSS are taken again, with how
# many events the ring holds and what they cost on average (encoded, plus 64 bytes of
# bookkeeping each).
#
# Usage: sudo scripts/bench/ring.sh [runs=3]   (or env RUNS; RESULTS_DIR: also write the rows there)
# The last lines are the medians as `RESULT|benchmark|sec-tracker|peer|note` (for run-all.sh).
set -euo pipefail
RUNS=${1:-${RUNS:-3}}
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (collectord's file monitor uses fanotify)"; exit 1; }
command -v jq >/dev/null || { echo "missing jq: apt-get install jq"; exit 1; }

. scripts/bench/lib.sh
bench_setup bench-ring

status() { "$BIN/sec-trackerctl" --socket "$WORK/c.sock" status --json 2>/dev/null; }
field() { status | jq -r ".collector.$1"; }

printf "%-4s %-10s %-14s %-14s %-10s %-12s %s\n" run "idle RSS" "full RSS" "full peak" events "held" "bytes/event"
: > "$WORK/results"
for run in $(seq 1 "$RUNS"); do
  D=$WORK/run$run
  mkdir -p "$D/tree/up" "$D/state"
  cat > "$D/config.json" <<EOF
{"agent": {"state_dir": "$D/state", "collector_socket": "$WORK/c.sock"},
 "monitoring": {"process_monitor": false, "auth_monitor": false, "network_monitor": false,
                "system_info": false, "watch_paths": ["$D/tree"], "flood_limit": 100000000}}
EOF
  "$BIN/collectord" --config "$D/config.json" > "$D/collectord.log" 2>&1 &
  cpid=$!
  WATCHED_PIDS=("$cpid"); WAIT_LOG_DIR=$D
  wait_for "collectord's file monitor" 30 sh -c "'$BIN/sec-trackerctl' --socket '$WORK/c.sock' status --json 2>/dev/null | jq -e '.collector.monitors[] | select(.name == \"file_monitor\" and .state == \"running\")' >/dev/null"
  sleep 1
  idle=$(status_mib "$cpid" VmRSS)
  bound=$(field buffer_bytes)
  "$BIN/rename-flood" "$D/tree/up" 60 > "$D/flood.out" &
  fpid=$!
  wait_for "the ring to fill" 60 sh -c "[ \$('$BIN/sec-trackerctl' --socket '$WORK/c.sock' status --json 2>/dev/null | jq .collector.buffered_bytes) -ge $((bound * 95 / 100)) ]"
  kill "$fpid" 2>/dev/null || true
  wait "$fpid" 2>/dev/null || true
  full=$(status_mib "$cpid" VmRSS)
  peak=$(status_mib "$cpid" VmHWM)
  events=$(field buffered)
  held=$(field buffered_bytes)
  per=$((held / events))
  kill "$cpid"; wait "$cpid" 2>/dev/null || true
  printf "%-4s %-10s %-14s %-14s %-10s %-12s %s\n" "$run" "$idle MiB" "$full MiB" "$peak MiB" "$events" "$((held / 1048576)) MiB" "$per"
  echo "$idle $full $peak $events $per" >> "$WORK/results"
done

col() { awk -v c="$1" '{print $c}' "$WORK/results" | median; }
echo
echo "median: idle $(col 1) MiB; ring full $(col 2) MiB (peak $(col 3) MiB) holding $(col 4) events of $(col 5) bytes"
note="ring bound 32 MiB (agent.buffer_bytes), no reader; median of $RUNS"
{
  echo "RESULT|collectord RSS: idle / ring full|$(col 1) MiB / $(col 2) MiB ($(col 4) events held, $(col 5) B each)|-|$note"
} | tee "${RESULTS_DIR:-$WORK}/ring.result"
