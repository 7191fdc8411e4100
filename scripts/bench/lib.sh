# shellcheck shell=bash
# Helpers shared by the benchmark scripts and scripts/soak.sh. Sourced, not run: the sourcing
# script is in the repository's root directory and runs with `set -euo pipefail`.

# bench_setup NAME: builds what the benchmarks run and sets BIN (the release binaries, the test
# kit's among them), HZ (clock ticks a second) and WORK (a fresh directory under /tmp). On exit
# the background jobs are stopped and WORK is removed, unless KEEP=1.
bench_setup() {
  echo "building (release)…" >&2
  scripts/bench/build.sh
  # shellcheck disable=SC2034 # BIN and HZ are for the sourcing script
  BIN=$PWD/target/release
  # shellcheck disable=SC2034
  HZ=$(getconf CLK_TCK)
  WORK=$(mktemp -d "/tmp/sec-tracker-$1.XXXXXX")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}
bench_cleanup() {
  stop_jobs
  if [ "${KEEP:-0}" = 1 ]; then echo "work directory kept: $WORK" >&2; else rm -rf "$WORK"; fi
}

# stop_jobs: stops this shell's background jobs and reaps them.
stop_jobs() {
  local pids
  mapfile -t pids < <(jobs -p)
  if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
  wait 2>/dev/null || true
}

# wait_for WHAT TIMEOUT COMMAND...: runs COMMAND every 0.1 s until it succeeds. Exits the script
# (1, printing the tail of $WAIT_LOG_DIR/*.log) at the deadline, or as soon as a process listed in
# WATCHED_PIDS has died: waiting on a dead daemon would only end in a timeout.
WATCHED_PIDS=()
WAIT_LOG_DIR=
wait_for() {
  local what=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout)) p
  until "$@"; do
    for p in "${WATCHED_PIDS[@]}"; do
      kill -0 "$p" 2>/dev/null || { echo "a process died while waiting for $what" >&2; show_logs; exit 1; }
    done
    [ $SECONDS -ge $deadline ] && { echo "timed out waiting for $what" >&2; show_logs; exit 1; }
    sleep 0.1
  done
}
show_logs() { [ -z "$WAIT_LOG_DIR" ] || tail -n 5 "$WAIT_LOG_DIR"/*.log >&2 || true; }

# median: the median of the numbers on stdin, "-" when there are none.
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) print "-"; else print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# cpu_ticks PID: the CPU time PID has used so far (user + system), in clock ticks ($HZ a second).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# status_kib PID FIELD: a memory field of /proc/PID/status (VmRSS, VmHWM…) in KiB.
status_kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# status_mib PID FIELD: the same in MiB, one decimal.
status_mib() { awk -v k="$2:" '$1 == k {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
