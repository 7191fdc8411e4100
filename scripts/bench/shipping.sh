#!/usr/bin/env bash
# End-to-end server-mode benchmark: synthetic collector → shipperd (release) → local HTTPS server.
#
#   synthetic-collector (scripts/testkit) serves the real Collector gRPC service and publishes
#     synthetic process-exec events (~550 bytes of JSON each) as fast as shipperd takes them:
#     never more than MAX_AHEAD events beyond what shipperd reports delivered, so the collector's
#     ring is never overrun and shipperd's queue stays bounded (in = out: a sustainable rate).
#   shipperd: the release binary, real SQLite queue in a fresh state directory, real TLS.
#   test-server --stats (scripts/testkit): the management-server double (rustls, gunzips and parses
#     every batch), batch_size BATCH_SIZE, report_interval 1s.
#
# Per run, over the window from WARMUP s after the first batch to SECONDS_PER_RUN-1 s:
#   events/s delivered at the server; p50/p99 delivery latency (arrival at the server minus the
#   event's own timestamp) — at saturation that is mostly the MAX_AHEAD backlog, so a second
#   pass at a fixed LATENCY_RATE (below capacity) gives the latency figure that means something;
#   wire bytes per event (gzip); shipperd peak RSS (VmHWM) and RSS at the end (VmRSS); shipperd
#   CPU seconds per 100k events delivered; CPU use in the window, in % of one core, of shipperd,
#   the server, the collector and everything else on the machine (other = noise).
# Then the queue on its own: the ignored push_throughput test in shipperd/tests/queue.rs.
# Prints per-run rows, then medians as a markdown table, then the medians as
# `RESULT|benchmark|sec-tracker|peer|note` lines (for run-all.sh; also into $RESULTS_DIR if set).
#
# Usage: scripts/bench/shipping.sh            (as root or not; ~RUNS × (SECONDS_PER_RUN + LATENCY_SECONDS + 10) s)
# Env:   RUNS=5  SECONDS_PER_RUN=60  WARMUP=5  BATCH_SIZE=1000  MAX_AHEAD=20000
#        RATE=          (events/s for the throughput pass; empty: as fast as shipperd takes them)
#        LATENCY_RATE=10000 LATENCY_SECONDS=30  (0: skip the fixed-rate latency pass)
#        KEEP=1         (keep the work directory with every log)
set -euo pipefail
RUNS=${RUNS:-5}
SECS=${SECONDS_PER_RUN:-60}
WARMUP=${WARMUP:-5}
BATCH=${BATCH_SIZE:-1000}
MAX_AHEAD=${MAX_AHEAD:-20000}
RATE=${RATE:-}
LAT_RATE=${LATENCY_RATE:-10000}
LAT_SECS=${LATENCY_SECONDS:-30}
cd "$(dirname "$0")/../.."
command -v jq >/dev/null || { echo "missing jq: apt-get install jq"; exit 1; }
[ "$SECS" -gt $((WARMUP + 2)) ] || { echo "SECONDS_PER_RUN must exceed WARMUP + 2"; exit 1; }

. scripts/bench/lib.sh
bench_setup bench-shipping
ALLOW_ROOT=()
[ "$(id -u)" = 0 ] && ALLOW_ROOT=(--allow-root)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }

# one_pass <dir> <seconds> [rate]: runs server, collector and shipperd; leaves figures in <dir>.
one_pass() {
  D=$1; WAIT_LOG_DIR=$1; local secs=$2 rate=${3:-}
  mkdir -p "$D"
  WATCHED_PIDS=()
  "$BIN/test-server" "$D" --stats --batch-size "$BATCH" --window "$WARMUP" $((secs - 1)) \
    > "$D/server.jsonl" 2> "$D/server.log" &
  local spid=$!; WATCHED_PIDS+=("$spid")
  wait_for "the server's config" 30 test -f "$D/config.json"
  "$BIN/synthetic-collector" "$D/c.sock" --seconds "$secs" --pace-socket "$D/s.sock" \
    --max-ahead "$MAX_AHEAD" ${rate:+--rate "$rate"} > "$D/collector.out" 2> "$D/collector.log" &
  local cpid=$!; WATCHED_PIDS+=("$cpid")
  wait_for "the collector socket" 30 test -S "$D/c.sock"
  "$BIN/shipperd" --config "$D/config.json" --collector-socket "$D/c.sock" --socket "$D/s.sock" \
    --state-dir "$D/state" "${ALLOW_ROOT[@]}" 2> "$D/shipperd.log" &
  local shpid=$!; WATCHED_PIDS+=("$shpid")
  wait_for "the first batch at the server" 60 grep -q '"total_payloads":[1-9]' "$D/server.jsonl"
  wait_for "the window to open" $((WARMUP + 30)) grep -q '"window_open"' "$D/server.jsonl"
  local t0=$EPOCHREALTIME s0 c0 v0 b0
  s0=$(cpu_ticks $shpid); c0=$(cpu_ticks $cpid); v0=$(cpu_ticks $spid); b0=$(busy_ticks)
  local n0; n0=$(jq -r 'select(.window_open) | .window_open.total_payloads' "$D/server.jsonl")
  wait_for "the window to close" $((secs + 60)) grep -q '"window"' "$D/server.jsonl"
  local t1=$EPOCHREALTIME s1 c1 v1 b1
  s1=$(cpu_ticks $shpid); c1=$(cpu_ticks $cpid); v1=$(cpu_ticks $spid); b1=$(busy_ticks)
  local hwm rss
  hwm=$(status_kib $shpid VmHWM); rss=$(status_kib $shpid VmRSS)
  wait_for "the collector's final count" 30 grep -q '^published' "$D/collector.out"
  kill "${WATCHED_PIDS[@]}" 2>/dev/null || true
  wait "${WATCHED_PIDS[@]}" 2>/dev/null || true
  local w; w=$(jq -c 'select(.window) | .window' "$D/server.jsonl")
  local n1; n1=$(jq -r '.total_payloads' <<< "$w")
  # shipperd CPU s per 100k events delivered between the two samples; CPU use in % of one core.
  awk -v s=$((s1 - s0)) -v c=$((c1 - c0)) -v v=$((v1 - v0)) -v b=$((b1 - b0)) -v hz="$HZ" \
    -v n=$((n1 - n0)) -v t0="$t0" -v t1="$t1" -v hwm="$hwm" -v rss="$rss" \
    'BEGIN { wall = t1 - t0; pct = 100 / (wall * hz)
             printf "%.2f %.1f %.1f %.0f %.0f %.0f %.0f\n", (n > 0 ? s / hz / (n / 1e5) : 0), hwm / 1024, rss / 1024,
               s * pct, v * pct, c * pct, (b - s - v - c) * pct }' > "$D/cpu"
  echo "$w" > "$D/window.json"
}

# Queue on its own, if there is such a test.
QUEUE_TEST=""
if grep -q '#\[ignore' shipperd/src/queue/*.rs 2>/dev/null; then
  QUEUE_TEST="--lib"
elif grep -q 'fn push_throughput' shipperd/tests/queue.rs 2>/dev/null; then
  QUEUE_TEST="--test queue"
fi
QUEUE_BIN=""
if [ -n "$QUEUE_TEST" ]; then
  # shellcheck disable=SC2086
  QUEUE_BIN=$(cargo test --release -q -p shipperd $QUEUE_TEST --no-run --message-format=json 2> "$WORK/queue-build.log" |
    jq -r 'select(.profile.test == true and .executable != null) | .executable' | tail -1) || true
  [ -n "$QUEUE_BIN" ] || { echo "the queue test does not build; skipping it:" >&2; tail -5 "$WORK/queue-build.log" >&2; QUEUE_TEST=""; }
fi

printf "%-4s %-9s %-16s %-16s %-8s %-8s %-9s %-9s %-9s %-26s %s\n" run events/s "sat p50/p99 ms" \
  "@${LAT_RATE}/s p50/p99" "wire B" "JSON B" "peak RSS" "end RSS" "CPU/100k" "CPU% ship/srv/coll/other" "queue push/s"
for run in $(seq 1 "$RUNS"); do
  one_pass "$WORK/run$run" "$SECS" "$RATE"
  w=$(cat "$WORK/run$run/window.json"); read -r cpu hwm rss ps pv pc po < "$WORK/run$run/cpu"
  lat50=- lat99=-
  if [ "$LAT_RATE" != 0 ]; then
    one_pass "$WORK/run$run-lat" "$LAT_SECS" "$LAT_RATE"
    lat50=$(jq -r '.latency_ms.p50' "$WORK/run$run-lat/window.json")
    lat99=$(jq -r '.latency_ms.p99' "$WORK/run$run-lat/window.json")
  fi
  qrate=-
  if [ -n "$QUEUE_TEST" ]; then
    qout=$("$QUEUE_BIN" --ignored --nocapture --exact push_throughput 2>&1 || true)
    qrate=$(grep -o 'push: [^:]*: [0-9]* events/s' <<< "$qout" | grep -o '[0-9]* events/s$' | tr -dc 0-9)
    qrate=${qrate:--}
  fi
  eps=$(jq -r '.events_per_s' <<< "$w"); p50=$(jq -r '.latency_ms.p50' <<< "$w"); p99=$(jq -r '.latency_ms.p99' <<< "$w")
  wire=$(jq -r '.wire_bytes_per_event' <<< "$w"); json=$(jq -r '.json_bytes_per_event' <<< "$w")
  skipped=$(grep -o 'so far: [0-9]*' "$WORK/run$run/collector.out" | tr -dc 0-9 || true)
  printf "%-4s %-9s %-16s %-16s %-8s %-8s %-9s %-9s %-9s %-26s %s\n" "$run" "$eps" "$p50 / $p99" "$lat50 / $lat99" \
    "$wire" "$json" "$hwm MiB" "$rss MiB" "$cpu s" "$ps / $pv / $pc / $po" "$qrate"
  [ "${skipped:-0}" = 0 ] || echo "     (the collector skipped shipperd ahead: $skipped events)"
  echo "$eps $p50 $p99 $lat50 $lat99 $wire $json $hwm $rss $cpu $ps $pv $pc $po $qrate" >> "$WORK/results"
done

col() { awk -v c="$1" '$c != "-" {print $c}' "$WORK/results" | median; }
echo
echo "median of $RUNS runs; window ${WARMUP}–$((SECS - 1)) s after the first batch; batch_size $BATCH;" \
  "synthetic exec events, ~$(col 7) bytes of JSON each; $(nproc) CPUs, $(uname -m)"
echo
echo "| figure | median |"
echo "|---|---|"
echo "| sustained delivery, events/s${RATE:+ (offered $RATE/s)} | $(col 1) |"
echo "| latency p50 / p99 at saturation (≈ MAX_AHEAD=$MAX_AHEAD backlog), ms | $(col 2) / $(col 3) |"
[ "$LAT_RATE" != 0 ] && echo "| latency p50 / p99 at a steady $LAT_RATE events/s, ms | $(col 4) / $(col 5) |"
echo "| bytes on the wire per event (gzip) | $(col 6) |"
echo "| shipperd peak RSS (VmHWM) / at the end (VmRSS), MiB | $(col 8) / $(col 9) |"
echo "| shipperd CPU s per 100k events | $(col 10) |"
echo "| CPU in the window, % of one core: shipperd / server / collector / other | $(col 11) / $(col 12) / $(col 13) / $(col 14) |"
if [ -n "$QUEUE_TEST" ]; then
  echo "| queue alone: push, events/s (groups of 500, ~300 B; push_throughput test) | $(col 15) |"
else
  echo "| queue alone | no ignored throughput test in shipperd/src/queue or shipperd/tests/queue.rs: skipped |"
fi

echo
note="synthetic collector → shipperd → local HTTPS server, batch_size $BATCH, median of $RUNS × ${SECS} s"
{
  echo "RESULT|shipping: sustained events/s|$(col 1)|-|$note"
  [ "$LAT_RATE" != 0 ] && echo "RESULT|shipping: latency p50 / p99 at $LAT_RATE events/s|$(col 4) / $(col 5) ms|-|event timestamp → arrival at the server"
  echo "RESULT|shipping: wire bytes per event (gzip)|$(col 6) B|-|~$(col 7) B of JSON per event"
  echo "RESULT|shipping: shipperd peak / end RSS, CPU per 100k events|$(col 8) / $(col 9) MiB, $(col 10) s|-|$note"
  if [ -n "$QUEUE_TEST" ]; then echo "RESULT|shipping: queue alone, push events/s|$(col 15)|-|push_throughput test"; fi
} | tee "${RESULTS_DIR:-$WORK}/shipping.result"
