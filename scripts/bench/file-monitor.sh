#!/usr/bin/env bash
# File monitor benchmark: N files written (create, write, close) as fast as possible in a watched
# tree, while `sec-trackerctl watch --json --type file` reads from collectord and
# `inotifywait -m -r` watches the same tree. Latency is close() → the event: for sec-tracker the
# event's own timestamp (set when collectord has stat'ed, hashed and attributed the file), for
# inotifywait the moment its line reaches a reader (its output has no sub-second time). Reports,
# per run and as medians: files reported / files written, p50 and p99 latency, collectord CPU
# seconds and peak RSS; then the time collectord takes to build its baseline of /usr/bin (cold
# and warm).
#
# Usage: sudo scripts/bench/file-monitor.sh [files=10000] [runs=5]
#        (or env FILES, RUNS; RESULTS_DIR: also write the median rows there)
# Needs: root, inotify-tools, python3 (apt-get install inotify-tools python3).
# The last lines are the medians as `RESULT|benchmark|sec-tracker|peer|note` (for run-all.sh).
set -euo pipefail
N=${1:-${FILES:-10000}}
RUNS=${2:-${RUNS:-5}}
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for t in inotifywait python3; do command -v $t >/dev/null || { echo "missing $t: apt-get install inotify-tools python3"; exit 1; }; done
. scripts/bench/lib.sh
bench_setup bench-file-monitor

STAMP='import sys,time
for l in sys.stdin:
    sys.stdout.write("%d %s" % (time.time_ns(), l)); sys.stdout.flush()'
WRITE='import os,sys,time
root, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = open(sys.argv[4], "w")
for i in range(n):
    p = os.path.join(root, "d%d" % (i % 10), "%s-%d" % (tag, i))
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, b"payload %d\n" % i)
    os.close(fd)
    out.write("%s-%d %d\n" % (tag, i, time.time_ns()))'
ANALYSE='import sys,re,statistics
closes = dict(l.split() for l in open(sys.argv[1]))
def lat(path, pat):
    seen = {}
    for line in open(path):
        t, rest = line.split(" ", 1)
        for m in re.finditer(pat, rest):
            name = m.group(1)
            if name in closes and name not in seen:
                seen[name] = (int(t) - int(closes[name])) / 1e6
    return seen
def ours_lat(path):
    import json, datetime
    seen = {}
    for line in open(path):
        v = json.loads(line)
        if v.get("type") != "file":
            continue
        name = v["details"]["path"].rsplit("/", 1)[-1]
        if name in closes and name not in seen:
            ts = v["timestamp"]
            sec = datetime.datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp()
            ns = int(sec) * 10**9 + int((ts[20:-1] + "000000000")[:9])
            seen[name] = (ns - int(closes[name])) / 1e6
    return seen
def q(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(p * len(v)))] if v else float("nan")
tag = sys.argv[4]
ours = ours_lat(sys.argv[2])
theirs = lat(sys.argv[3], r"/(%s-\d+) CLOSE_WRITE" % tag)
n = len(closes)
print("%.1f %.1f %.1f %.1f %.1f %.1f" % (100 * len(ours) / n, q(ours.values(), .5), q(ours.values(), .99),
      100 * len(theirs) / n, q(theirs.values(), .5), q(theirs.values(), .99)))'

printf "%-4s %-28s %-28s %-10s %-9s\n" run "sec-tracker seen / p50 / p99" "inotifywait seen / p50 / p99" "CPU s" "peak RSS"
for run in $(seq 1 "$RUNS"); do
  d="$WORK/run$run"; tree="$d/tree"; mkdir -p "$tree"/d{0..9}
  tag="fb$$r$run"
  cat > "$d/config.json" <<CFG
{"agent": {"state_dir": "$d/state"}, "monitoring": {"process_monitor": false, "auth_monitor": false,
 "network_monitor": false, "system_info": false, "watch_paths": ["$tree"]}}
CFG
  "$BIN"/collectord --config "$d/config.json" --socket "$d/c.sock" 2> "$d/collectord.log" &
  cpid=$!
  for _ in $(seq 200); do grep -q "file monitor: inotify" "$d/collectord.log" 2>/dev/null && [ -S "$d/c.sock" ] && break; sleep 0.05; done
  "$BIN"/sec-trackerctl --socket "$d/c.sock" watch --json --type file > "$d/ours.txt" &
  inotifywait -q -m -r -e close_write --format '%w%f %e' "$tree" | python3 -u -c "$STAMP" > "$d/theirs.txt" &
  # Ready when both report a probe file.
  for i in $(seq 400); do
    echo x > "$tree/ready-$i"
    grep -q "ready-" "$d/ours.txt" 2>/dev/null && grep -q "ready-" "$d/theirs.txt" 2>/dev/null && break
    sleep 0.05
  done
  before=$(cpu_ticks $cpid)
  python3 -c "$WRITE" "$tree" "$N" "$tag" "$d/closes.txt"
  # Drained when both report a final probe.
  for i in $(seq 600); do
    echo x > "$tree/done-$i"
    grep -q "done-" "$d/ours.txt" && grep -q "done-" "$d/theirs.txt" && break
    sleep 0.1
  done
  # …and until our output stops growing (a rescan after an overflow reports in path order).
  prev=-1; while [ "$(wc -l < "$d/ours.txt")" != "$prev" ]; do prev=$(wc -l < "$d/ours.txt"); sleep 1; done
  after=$(cpu_ticks $cpid)
  gaps=$(grep -c '"type":"gap"' "$d/ours.txt" || true)
  overflows=$(grep -c "inotify queue overflowed" "$d/collectord.log" || true)
  [ "$gaps$overflows" = "00" ] || echo "run $run: $gaps gap lines, $overflows inotify overflows"
  rss=$(status_mib $cpid VmHWM)
  stop_jobs
  read -r ours_pct ours50 ours99 th_pct th50 th99 < <(python3 -c "$ANALYSE" "$d/closes.txt" "$d/ours.txt" "$d/theirs.txt" "$tag")
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" 'BEGIN {printf "%.2f", t/hz}')
  printf "%-4s %-28s %-28s %-10s %-9s\n" "$run" "$ours_pct% / ${ours50}ms / ${ours99}ms" "$th_pct% / ${th50}ms / ${th99}ms" "$cpu" "${rss} MiB"
  echo "$ours_pct $ours50 $ours99 $th_pct $th50 $th99 $cpu $rss" >> "$WORK/results"
done
col() { awk -v c="$1" '{print $c}' "$WORK/results" | median; }
echo
echo "median of $RUNS runs, $N files each:"
echo "| | files reported | p50 latency | p99 latency |"
echo "|---|---|---|---|"
echo "| sec-tracker (collectord → sec-trackerctl watch --json) | $(col 1)% | $(col 2) ms | $(col 3) ms |"
echo "| inotifywait -m -r | $(col 4)% | $(col 5) ms | $(col 6) ms |"
echo "collectord CPU $(col 7) s for $N files (hashing included); peak RSS $(col 8) MiB"

# Baseline of /usr/bin: cold (no stored baseline: every file hashed) and warm (restart: only
# changed metadata re-hashed).
b="$WORK/usrbin"; mkdir -p "$b"
cat > "$b/config.json" <<CFG
{"agent": {"state_dir": "$b/state"}, "monitoring": {"process_monitor": false, "auth_monitor": false,
 "network_monitor": false, "system_info": false, "watch_paths": ["/usr/bin"]}}
CFG
for phase in cold warm; do
  "$BIN"/collectord --config "$b/config.json" --socket "$b/c.sock" 2> "$b/$phase.log" &
  p=$!
  for _ in $(seq 1200); do grep -q "file monitor: inotify" "$b/$phase.log" && break; sleep 0.05; done
  kill $p; wait $p 2>/dev/null || true
  line=$(grep -o 'file monitor: .*' "$b/$phase.log" || echo "file monitor: no baseline line in the log")
  echo "/usr/bin baseline ($phase): $line"
  echo "$line" > "$b/$phase.line"
done

echo
note="$N files, median of $RUNS"
{
  echo "RESULT|file writes: reported, p50 / p99 close→event|$(col 1)%, $(col 2) / $(col 3) ms|inotifywait -m -r: $(col 4)%, $(col 5) / $(col 6) ms|$note"
  echo "RESULT|file writes: collectord CPU, peak RSS|$(col 7) s, $(col 8) MiB|-|$note (SHA-256 included)"
  built() { grep -o 'built in [0-9.]*s' "$b/$1.line" | grep -o '[0-9.]*s' || echo "?"; }
  files=$(grep -o '[0-9]* files in the baseline' "$b/cold.line" | grep -o '^[0-9]*' || echo "?")
  echo "RESULT|/usr/bin baseline ($files files): cold / warm start|$(built cold) / $(built warm)|-|cold hashes every file; a restart re-hashes only changes"
} | tee "${RESULTS_DIR:-$WORK}/file-monitor.result"
