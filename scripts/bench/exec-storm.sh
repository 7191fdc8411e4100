#!/usr/bin/env bash
# Exec storm benchmark: N short-lived processes, each with a unique argument, spawned as fast as
# the machine allows while `sec-trackerctl watch --json` reads from collectord, and forkstat and
# forkstat -r (real-time priority) watch the same storm. Reports, per run and as medians:
#   captured  exec events seen for the storm's pids / pids spawned
#   cmdline   events whose command line names the process's unique argument / pids spawned
# and collectord's peak RSS (VmHWM) and CPU seconds per 1,000 execs.
#
# Usage: sudo scripts/bench-exec-storm.sh [count=3000] [runs=5] [parallel=8]
# Needs: root, forkstat, jq (apt-get install forkstat jq).
set -euo pipefail
COUNT=${1:-3000}
RUNS=${2:-5}
PARALLEL=${3:-8}
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (the process connector needs CAP_NET_ADMIN)"; exit 1; }
for t in forkstat jq; do command -v $t >/dev/null || { echo "missing $t: apt-get install forkstat jq"; exit 1; }; done

cargo build --release -q -p collectord -p sec-trackerctl --bins --example exec_storm
BIN=target/release
WORK=$(mktemp -d /tmp/sec-tracker-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
echo '{"monitoring": {"file_monitor": false, "auth_monitor": false, "network_monitor": false}}' > "$WORK/config.json"

# Spawns `true <marker>` until the marker shows in every output file: readiness and drain
# without guessing a sleep.
await_marker() {
  local marker=$1; shift
  local deadline=$((SECONDS + 60))
  while :; do
    /bin/true "$marker"
    local all=1
    for f in "$@"; do grep -q -- "$marker" "$f" 2>/dev/null || all=0; done
    [ $all = 1 ] && return 0
    [ $SECONDS -ge $deadline ] && { echo "timed out waiting for $marker in $*" >&2; return 1; }
    sleep 0.05
  done
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

printf "%-4s %-7s %-22s %-22s %-22s %-10s %-10s\n" run rate/s "sec-tracker capt/cmdl" "forkstat capt/cmdl" "forkstat -r capt/cmdl" "peak RSS" "CPU s/1k"
HZ=$(getconf CLK_TCK)
for run in $(seq 1 "$RUNS"); do
  d="$WORK/run$run"; mkdir -p "$d"
  tag="storm$$r${run}x"
  $BIN/collectord --config "$WORK/config.json" --socket "$d/c.sock" 2> "$d/collectord.log" &
  cpid=$!
  for _ in $(seq 200); do [ -S "$d/c.sock" ] && break; sleep 0.05; done
  $BIN/sec-trackerctl --socket "$d/c.sock" watch --json --type process > "$d/ours.jsonl" &
  forkstat -e exec > "$d/fs.txt" 2>/dev/null &
  forkstat -r -e exec > "$d/fsr.txt" 2>/dev/null &
  await_marker "ready-$tag" "$d/ours.jsonl" "$d/fs.txt" "$d/fsr.txt"
  before=$(cpu_ticks $cpid)
  $BIN/examples/exec_storm "$COUNT" "$tag" "$d/pids" "$PARALLEL" 2> "$d/storm.txt"
  await_marker "done-$tag" "$d/ours.jsonl" "$d/fs.txt" "$d/fsr.txt"
  after=$(cpu_ticks $cpid)
  peak_kb=$(awk '/VmHWM/ {print $2}' /proc/$cpid/status)
  kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true

  rate=$(grep -o '([0-9]*/s)' "$d/storm.txt" | tr -dc 0-9)
  ours_capt=$(jq -r 'select(.details.action=="exec") | .details.pid' "$d/ours.jsonl" | grep -Fxf "$d/pids" | sort -u | wc -l)
  ours_cmd=$(jq -r 'select(.details.action=="exec") | .details.cmdline' "$d/ours.jsonl" | grep -o -- "$tag-[0-9]*\$" | sort -u | wc -l)
  fs_capt=$(awk '$2=="exec" {print $3}' "$d/fs.txt" | grep -Fxf "$d/pids" | sort -u | wc -l)
  fs_cmd=$(grep -o -- "$tag-[0-9]*" "$d/fs.txt" | sort -u | wc -l)
  fsr_capt=$(awk '$2=="exec" {print $3}' "$d/fsr.txt" | grep -Fxf "$d/pids" | sort -u | wc -l)
  fsr_cmd=$(grep -o -- "$tag-[0-9]*" "$d/fsr.txt" | sort -u | wc -l)
  pct() { awk -v a="$1" -v b="$COUNT" 'BEGIN {printf "%.1f", 100*a/b}'; }
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="$COUNT" 'BEGIN {printf "%.3f", t/hz/(n/1000)}')
  rss=$(awk -v k="$peak_kb" 'BEGIN {printf "%.1f", k/1024}')
  printf "%-4s %-7s %-22s %-22s %-22s %-10s %-10s\n" "$run" "$rate" "$(pct $ours_capt)% / $(pct $ours_cmd)%" \
    "$(pct $fs_capt)% / $(pct $fs_cmd)%" "$(pct $fsr_capt)% / $(pct $fsr_cmd)%" "${rss} MiB" "$cpu"
  echo "$(pct $ours_capt) $(pct $ours_cmd) $(pct $fs_capt) $(pct $fs_cmd) $(pct $fsr_capt) $(pct $fsr_cmd) $rss $cpu $rate" >> "$WORK/results"
done
echo
echo "median of $RUNS runs, $COUNT execs each:"
col() { awk -v c="$1" '{print $c}' "$WORK/results" | median; }
echo "| | exec captured | full cmdline |"
echo "|---|---|---|"
echo "| sec-tracker (collectord + sec-trackerctl watch --json) | $(col 1)% | $(col 2)% |"
echo "| forkstat | $(col 3)% | $(col 4)% |"
echo "| forkstat -r | $(col 5)% | $(col 6)% |"
echo
echo "storm rate $(col 9)/s; collectord peak RSS $(col 7) MiB; CPU $(col 8) s per 1,000 execs"
