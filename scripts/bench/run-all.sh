#!/usr/bin/env bash
# The whole benchmark suite, one after the other, then one markdown table of the medians:
#   exec-storm.sh    process capture and command lines vs forkstat, forkstat -r, bpftrace, /proc polling
#   file-monitor.sh  file event coverage and latency vs inotifywait; /usr/bin baseline time
#   shipping.sh      shipperd throughput, latency, bytes per event, memory and CPU
#   overhead.sh      collectord and shipperd CPU and memory: idle, 1,000 exec/s, 1,000 writes/s;
#                    auditd with an execve rule on the same exec load (the peer)
#   ring.sh          collectord RSS with its ring empty and full (32 MiB of events, no reader)
#   many-files.sh    collectord RSS and start time with 200,000 files watched vs inotifywait -m -r
# Each script prints its medians as `RESULT|benchmark|sec-tracker|peer|note` lines; this collects
# them into `| benchmark | sec-tracker | peer | note |`, printed and written to OUT. A script that
# fails gets a FAILED row (its log is kept) and the suite goes on; the exit status is then 1.
#
# Usage: sudo scripts/bench/run-all.sh [exec-storm file-monitor shipping overhead ring many-files]
#        (a subset)
# Env:   QUICK=1   smoke run: tiny counts, 1 run, 5 s phases (minutes, not hours; figures meaningless)
#        OUT=target/bench-results.md   LOG_DIR=target/bench-logs
#        and each script's own variables (RUNS, COUNT, FILES, SECONDS_PER_RUN, SECONDS_PER_PHASE, …),
#        which QUICK=1 only sets when they are not set already.
# Needs: root; forkstat, jq, inotify-tools, python3; bpftrace and auditd optional
#        (apt-get install forkstat jq inotify-tools python3 bpftrace auditd).
# Full length (defaults) on 2 cores, measured: under 1 min exec-storm, under 1 min file-monitor,
# 9 min shipping (5 × 100 s + the queue test), 28 min overhead (5 × 4 × ~85 s), 5 min many-files;
# plus the build. RUNS=3 SECONDS_PER_PHASE=30: 18 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (exec-storm, file-monitor and overhead need it)"; exit 1; }
OUT=${OUT:-$PWD/target/bench-results.md}
LOG_DIR=${LOG_DIR:-$PWD/target/bench-logs}
ALL=(exec-storm file-monitor shipping overhead ring many-files)
SELECTED=("$@")
[ ${#SELECTED[@]} -gt 0 ] || SELECTED=("${ALL[@]}")
for s in "${SELECTED[@]}"; do
  [ -x "scripts/bench/$s.sh" ] || { echo "no such benchmark: $s (one of: ${ALL[*]})"; exit 2; }
done

if [ "${QUICK:-0}" = 1 ]; then
  export RUNS=${RUNS:-1}
  export COUNT=${COUNT:-300} FILES=${FILES:-300}
  export SECONDS_PER_RUN=${SECONDS_PER_RUN:-8} WARMUP=${WARMUP:-2} LATENCY_SECONDS=${LATENCY_SECONDS:-6}
  export SECONDS_PER_PHASE=${SECONDS_PER_PHASE:-5} SETTLE=${SETTLE:-1}
  export MANY_FILES=${MANY_FILES:-2000}
fi
mkdir -p "$LOG_DIR" "$(dirname "$OUT")"
export RESULTS_DIR
RESULTS_DIR=$(mktemp -d /tmp/sec-tracker-bench-results.XXXXXX)
trap 'rm -rf "$RESULTS_DIR"' EXIT

# One build up front (every script runs the same build, which is then a no-op).
echo "building (release)…" >&2
scripts/bench/build.sh

failed=()
for s in "${SELECTED[@]}"; do
  echo "=== $s ($(date -u +%H:%M:%S)) ===" >&2
  start=$SECONDS
  if "scripts/bench/$s.sh" > "$LOG_DIR/$s.log" 2>&1; then
    echo "    done in $((SECONDS - start)) s; log: $LOG_DIR/$s.log" >&2
  else
    echo "    FAILED after $((SECONDS - start)) s; last lines of $LOG_DIR/$s.log:" >&2
    tail -n 15 "$LOG_DIR/$s.log" | sed 's/^/    /' >&2
    failed+=("$s")
  fi
done

{
  echo "# sec-tracker benchmarks"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ); $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes');" \
    "$(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(free -g | awk '/^Mem/ {print $2}') GiB;" \
    "kernel $(uname -r)$([ "${QUICK:-0}" = 1 ] && echo '; QUICK=1 smoke run: the figures mean nothing')"
  echo
  echo "| benchmark | sec-tracker | peer | note |"
  echo "|---|---|---|---|"
  for s in "${SELECTED[@]}"; do
    if [[ " ${failed[*]} " == *" $s "* ]]; then
      echo "| $s | FAILED | | see $LOG_DIR/$s.log |"
    elif [ -s "$RESULTS_DIR/$s.result" ]; then
      awk -F'|' '$1 == "RESULT" {printf "| %s | %s | %s | %s |\n", $2, $3, $4, $5}' "$RESULTS_DIR/$s.result"
    else
      echo "| $s | no RESULT lines | | see $LOG_DIR/$s.log |"
    fi
  done
} | tee "$OUT"
echo >&2
echo "table written to $OUT; logs in $LOG_DIR" >&2
[ ${#failed[@]} = 0 ] || { echo "failed: ${failed[*]}" >&2; exit 1; }
