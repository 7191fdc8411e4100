#!/usr/bin/env bash
# Exec storm benchmark: N short-lived processes (`/bin/true <tag>-<i>`), spawned as fast as the
# machine allows, watched at the same time, on the same storm, by
#   sec-tracker   collectord (process connector) → `sec-trackerctl watch --json`
#   forkstat      and forkstat -r (real-time priority): the process connector, no /proc reading
#   bpftrace      tracepoint:syscalls:sys_enter_execve printing the pid and join(args->argv): the
#                 argv comes from the exec call itself, so it cannot miss a command line, only
#                 lose events when its perf buffer overflows
#   poll 5 s      poll-collector (scripts/testkit): lists /proc every 5 s (a naive agent)
# Reports, per run and as medians:
#   captured  exec events seen for the storm's pids / pids spawned
#   cmdline   events whose command line names the process's unique argument / pids spawned
# and collectord's peak RSS (VmHWM) and CPU seconds per 1,000 execs.
#
# Usage: sudo scripts/bench/exec-storm.sh [count=5000] [runs=5] [parallel=8]
#        (or env COUNT, RUNS, PARALLEL; RESULTS_DIR: also write the median rows there)
# Needs: root, forkstat, jq; bpftrace optional (apt-get install forkstat jq bpftrace): without
# it, or where it cannot attach (no tracefs, no BPF), its columns say n/a and why.
# The last lines are the medians as `RESULT|benchmark|sec-tracker|peer|note` (for run-all.sh).
set -euo pipefail
COUNT=${1:-${COUNT:-5000}}
RUNS=${2:-${RUNS:-5}}
PARALLEL=${3:-${PARALLEL:-8}}
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the process connector needs CAP_NET_ADMIN)"; exit 1; }
for t in forkstat jq; do command -v $t >/dev/null || { echo "missing $t: apt-get install forkstat jq"; exit 1; }; done

. scripts/bench/lib.sh
bench_setup bench-exec-storm
echo '{"monitoring": {"file_monitor": false, "auth_monitor": false, "network_monitor": false}}' > "$WORK/config.json"

# bpftrace: usable when it can attach to the execve tracepoint (tracefs mounted, BPF allowed).
BPF_WHY=""
if ! command -v bpftrace >/dev/null; then
  BPF_WHY="bpftrace not installed (apt-get install bpftrace)"
else
  if [ ! -d /sys/kernel/tracing/events ] && [ ! -d /sys/kernel/debug/tracing/events ]; then
    mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
  fi
  # An unsettable RLIMIT_MEMLOCK is reported as an ERROR but harmless on kernels ≥ 5.11.
  if ! out=$(timeout 60 bpftrace -e 'tracepoint:syscalls:sys_enter_execve { } BEGIN { printf("bpf-ok\n"); exit(); }' 2>&1) ||
     ! grep -q bpf-ok <<< "$out"; then
    BPF_WHY="bpftrace cannot attach here: $(grep -v RLIMIT_MEMLOCK <<< "$out" | grep -m1 -i error || echo "${out:0:120}")"
  fi
fi
[ -z "$BPF_WHY" ] || echo "bpftrace: n/a: $BPF_WHY"
# One printf per exec (pid) and the joined argv; counted independently like forkstat's output.
BPF_PROG='tracepoint:syscalls:sys_enter_execve { printf("exec %d ", pid); join(args->argv); }'

# Spawns `true <marker>` until the marker shows in every output file: readiness and drain
# without guessing a sleep.
await_marker() {
  local marker=$1; shift
  local deadline=$((SECONDS + 90))
  while :; do
    /bin/true "$marker"
    local all=1
    for f in "$@"; do grep -q -- "$marker" "$f" 2>/dev/null || all=0; done
    [ $all = 1 ] && return 0
    [ $SECONDS -ge $deadline ] && { echo "timed out waiting for $marker in $*" >&2; return 1; }
    sleep 0.05
  done
}
# Waits (deadline 30 s) until the poller has finished N scans.
await_scans() {
  local n=$1 f=$2 deadline=$((SECONDS + 30))
  until [ "$(grep -c '^scan ' "$f" 2>/dev/null || true)" -ge "$n" ]; do
    [ $SECONDS -ge $deadline ] && { echo "timed out waiting for the poller's scan $n" >&2; return 1; }
    sleep 0.1
  done
}

printf "%-4s %-7s %-16s %-16s %-16s %-16s %-16s %-9s %-8s\n" run rate/s "sec-tracker" "forkstat" "forkstat -r" \
  "bpftrace" "poll 5s" "peak RSS" "CPU s/1k"
printf "%-4s %-7s %-16s %-16s %-16s %-16s %-16s\n" "" "" capt/cmdl capt/cmdl capt/cmdl capt/cmdl capt/cmdl
for run in $(seq 1 "$RUNS"); do
  d="$WORK/run$run"; mkdir -p "$d"
  tag="storm$$r${run}x"
  "$BIN"/collectord --config "$WORK/config.json" --socket "$d/c.sock" 2> "$d/collectord.log" &
  cpid=$!
  for _ in $(seq 200); do [ -S "$d/c.sock" ] && break; sleep 0.05; done
  "$BIN"/sec-trackerctl --socket "$d/c.sock" watch --json --type process > "$d/ours.jsonl" &
  forkstat -e exec > "$d/fs.txt" 2>/dev/null &
  forkstat -r -e exec > "$d/fsr.txt" 2>/dev/null &
  "$BIN"/poll-collector 5 > "$d/poll.txt" &
  outs=("$d/ours.jsonl" "$d/fs.txt" "$d/fsr.txt")
  if [ -z "$BPF_WHY" ]; then
    bpftrace -B line -e "$BPF_PROG" > "$d/bpf.txt" 2> "$d/bpf.log" &
    outs+=("$d/bpf.txt")
  fi
  await_marker "ready-$tag" "${outs[@]}"
  await_scans 1 "$d/poll.txt"
  before=$(cpu_ticks $cpid)
  "$BIN"/exec-storm "$COUNT" "$tag" "$d/pids" "$PARALLEL" 2> "$d/storm.txt"
  await_marker "done-$tag" "${outs[@]}"
  after=$(cpu_ticks $cpid)
  peak_kb=$(status_kib $cpid VmHWM)
  # Every storm process is gone by now; one more scan is all the poller could add.
  await_scans $(($(grep -c '^scan ' "$d/poll.txt") + 1)) "$d/poll.txt"
  stop_jobs

  rate=$(grep -o '([0-9]*/s)' "$d/storm.txt" | tr -dc 0-9)
  pct() { awk -v a="$1" -v b="$COUNT" 'BEGIN {printf "%.1f", 100*a/b}'; }
  # captured: distinct storm pids in a list of pids; cmdline: distinct tags in a file.
  capt() { { grep -Fxf "$d/pids" || true; } | sort -u | wc -l; }
  tags() { { grep -o -- "$tag-[0-9]*" "$1" || true; } | sort -u | wc -l; }
  ours_capt=$(jq -r 'select(.details.action=="exec") | .details.pid' "$d/ours.jsonl" | capt)
  ours_cmd=$(jq -r 'select(.details.action=="exec") | .details.cmdline' "$d/ours.jsonl" | { grep -o -- "$tag-[0-9]*\$" || true; } | sort -u | wc -l)
  fs_capt=$(awk '$2=="exec" {print $3}' "$d/fs.txt" | capt); fs_cmd=$(tags "$d/fs.txt")
  fsr_capt=$(awk '$2=="exec" {print $3}' "$d/fsr.txt" | capt); fsr_cmd=$(tags "$d/fsr.txt")
  poll_capt=$(awk '$1=="exec" {print $2}' "$d/poll.txt" | capt); poll_cmd=$(tags "$d/poll.txt")
  if [ -z "$BPF_WHY" ]; then
    bpf_capt=$({ grep -o 'exec [0-9]*' "$d/bpf.txt" || true; } | awk '{print $2}' | capt); bpf_cmd=$(tags "$d/bpf.txt")
    bpf_lost=$({ grep -ho 'Lost [0-9]* events' "$d/bpf.txt" "$d/bpf.log" || true; } | awk '{s += $2} END {print s + 0}')
    bpf="$(pct "$bpf_capt")% / $(pct "$bpf_cmd")%"; bpfn="$(pct "$bpf_capt") $(pct "$bpf_cmd")"
  else
    bpf="n/a"; bpfn="- -"; bpf_lost=0
  fi
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$COUNT" 'BEGIN {printf "%.3f", t/hz/(n/1000)}')
  rss=$(awk -v k="$peak_kb" 'BEGIN {printf "%.1f", k/1024}')
  printf "%-4s %-7s %-16s %-16s %-16s %-16s %-16s %-9s %-8s\n" "$run" "$rate" "$(pct "$ours_capt")% / $(pct "$ours_cmd")%" \
    "$(pct "$fs_capt")% / $(pct "$fs_cmd")%" "$(pct "$fsr_capt")% / $(pct "$fsr_cmd")%" "$bpf" \
    "$(pct "$poll_capt")% / $(pct "$poll_cmd")%" "${rss} MiB" "$cpu"
  [ "$bpf_lost" = 0 ] || echo "     (bpftrace lost $bpf_lost events: perf buffer overflow)"
  echo "$(pct "$ours_capt") $(pct "$ours_cmd") $(pct "$fs_capt") $(pct "$fs_cmd") $(pct "$fsr_capt") $(pct "$fsr_cmd")" \
    "$rss $cpu $rate $bpfn $(pct "$poll_capt") $(pct "$poll_cmd")" >> "$WORK/results"
done
echo
echo "median of $RUNS runs, $COUNT execs each:"
col() { awk -v c="$1" '$c != "-" {print $c}' "$WORK/results" | median; }
pair() { if [ "$(col "$1")" = - ]; then echo "n/a"; else echo "$(col "$1")% / $(col "$2")%"; fi; }
echo "| | exec captured | full cmdline |"
echo "|---|---|---|"
echo "| sec-tracker (collectord + sec-trackerctl watch --json) | $(col 1)% | $(col 2)% |"
echo "| forkstat | $(col 3)% | $(col 4)% |"
echo "| forkstat -r | $(col 5)% | $(col 6)% |"
if [ -z "$BPF_WHY" ]; then
  echo "| bpftrace sys_enter_execve, join(argv) | $(col 10)% | $(col 11)% |"
else
  echo "| bpftrace | n/a | n/a ($BPF_WHY) |"
fi
echo "| poll /proc every 5 s | $(col 12)% | $(col 13)% |"
echo
echo "storm rate $(col 9)/s; collectord peak RSS $(col 7) MiB; CPU $(col 8) s per 1,000 execs"
echo
ours="$(pair 1 2)"
note="$COUNT execs at ~$(col 9)/s, median of $RUNS"
{
  echo "RESULT|exec storm: captured / full cmdline|$ours|forkstat: $(pair 3 4)|$note"
  echo "RESULT|exec storm: captured / full cmdline|$ours|forkstat -r: $(pair 5 6)|$note"
  if [ -z "$BPF_WHY" ]; then
    echo "RESULT|exec storm: captured / full cmdline|$ours|bpftrace execve+join(argv): $(pair 10 11)|$note"
  else
    echo "RESULT|exec storm: captured / full cmdline|$ours|bpftrace: n/a|$BPF_WHY"
  fi
  echo "RESULT|exec storm: captured / full cmdline|$ours|poll /proc every 5 s: $(pair 12 13)|$note"
  echo "RESULT|exec storm: collectord peak RSS, CPU per 1,000 execs|$(col 7) MiB, $(col 8) s|-|$note"
} | tee "${RESULTS_DIR:-$WORK}/exec-storm.result"
