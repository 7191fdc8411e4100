#!/usr/bin/env bash
# Memory in the number of watched files: collectord with only its file monitor, watching one tree
# of MANY_FILES small files (200,000 by default: the default `monitoring.max_files`; the config
# here raises the bound a little so that the directories do not push files out) in 1,000
# directories. Per run, two starts:
#   cold  no stored baseline: every file stat'ed and hashed
#   warm  a restart over the stored baseline: only changed metadata re-hashed (none here)
# Each start reports the time to the monitor's "file monitor: inotify …" line (the baseline built
# and every directory watched), collectord's RSS once it is built and its peak (VmHWM). In the same
# run, `inotifywait -m -r` (inotify-tools) watches the same tree: its RSS and the time to "Watches
# established." are the floor of any inotify watcher, which keeps a name per directory and no
# baseline.
#
# Usage: sudo scripts/bench/many-files.sh
# Env:   MANY_FILES=200000 (the number of files; not FILES, which run-all.sh's QUICK=1 sets small
#        for file-monitor.sh) RUNS=3 KEEP=1 (keep the tree and the logs); RESULTS_DIR (run-all.sh)
# Needs: root (the tree under /var/tmp is cheap to make as anyone, but fanotify needs
#        CAP_SYS_ADMIN), inotify-tools, python3.
# The last lines are the medians as `RESULT|benchmark|sec-tracker|peer|note` (for run-all.sh).
set -euo pipefail
FILES=${MANY_FILES:-200000}
RUNS=${RUNS:-3}
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root"; exit 1; }
for t in inotifywait python3; do command -v $t >/dev/null || { echo "missing $t: apt-get install inotify-tools python3"; exit 1; }; done
. scripts/bench/lib.sh
bench_setup bench-many-files

# The tree, made once: FILES files of 16–80 bytes, 1,000 directories of FILES/1000 files each
# (named like a package's files: short, shared prefixes).
tree="$WORK/tree"
python3 - "$tree" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
dirs = 1000
for d in range(dirs):
    os.makedirs(os.path.join(root, "pkg%03d" % (d // 100), "sub%03d" % d), exist_ok=True)
for i in range(n):
    d = i % dirs
    with open(os.path.join(root, "pkg%03d" % (d // 100), "sub%03d" % d, "file-%06d.conf" % i), "wb") as f:
        f.write(b"setting_%d = %s\n" % (i, b"x" * (i % 64)))
PY
# Raise the watch limit if it is below what the tree needs (both watchers need a watch per directory).
need=$((1000 + 1000 / 100 + 10))
[ "$(cat /proc/sys/fs/inotify/max_user_watches)" -ge $need ] || echo $need > /proc/sys/fs/inotify/max_user_watches

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
built() { grep -q "file monitor: inotify" "$1" 2>/dev/null; }

# start <state dir> <log>: starts collectord, waits for its baseline, writes "ms rss_mib hwm_mib"
# to $WORK/row (no subshell: wait_for must be able to end the script).
start() {
  local state=$1 log=$2 cfg="$WORK/config.json"
  cat > "$cfg" <<CFG
{"agent": {"state_dir": "$state"}, "monitoring": {"process_monitor": false, "auth_monitor": false,
 "network_monitor": false, "system_info": false, "watch_paths": ["$tree"], "max_files": $((FILES + 10000))}}
CFG
  local t0 p
  t0=$(now_ms)
  "$BIN"/collectord --config "$cfg" --socket "$WORK/c.sock" 2> "$log" &
  p=$!
  WATCHED_PIDS=("$p")
  wait_for "collectord's baseline" 600 built "$log"
  local t1; t1=$(now_ms)
  # RSS once the scan's transients are freed (the allocator returns them within moments).
  sleep 2
  echo "$((t1 - t0)) $(status_mib $p VmRSS) $(status_mib $p VmHWM)" > "$WORK/row"
  kill "$p"; wait "$p" 2>/dev/null || true
  WATCHED_PIDS=()
}

# inotify_peer: inotifywait -m -r on the tree; writes "ms rss_mib" to $WORK/row.
inotify_peer() {
  local t0 p out="$WORK/inotifywait.err"
  t0=$(now_ms)
  inotifywait -m -r -e close_write "$tree" > /dev/null 2> "$out" &
  p=$!
  # It says "Watches established." on stderr once every directory is watched (not with -q).
  wait_for "inotifywait's watches" 600 grep -q "Watches established" "$out"
  local t1; t1=$(now_ms)
  echo "$((t1 - t0)) $(status_mib $p VmRSS)" > "$WORK/row"
  kill "$p"; wait "$p" 2>/dev/null || true
}

printf "%-4s %-30s %-30s %-20s\n" run "cold: ms / RSS / peak MiB" "warm: ms / RSS / peak MiB" "inotifywait: ms / RSS"
for run in $(seq 1 "$RUNS"); do
  state="$WORK/state$run"
  start "$state" "$WORK/cold$run.log"; read -r cms crss chwm < "$WORK/row"
  files=$(grep -o '[0-9]* files in the baseline' "$WORK/cold$run.log" | grep -o '^[0-9]*' || echo "?")
  start "$state" "$WORK/warm$run.log"; read -r wms wrss whwm < "$WORK/row"
  inotify_peer; read -r ims irss < "$WORK/row"
  printf "%-4s %-30s %-30s %-20s\n" "$run" "$cms / $crss / $chwm" "$wms / $wrss / $whwm" "$ims / $irss"
  echo "$cms $crss $chwm $wms $wrss $whwm $ims $irss $files" >> "$WORK/results"
done
col() { awk -v c="$1" '{print $c}' "$WORK/results" | median; }
secs() { awk -v ms="$1" 'BEGIN {printf "%.1f s", ms / 1000}'; }
files=$(awk '{print $9}' "$WORK/results" | tail -n 1)
echo
echo "median of $RUNS runs, $files files in the baseline:"
echo "cold start $(secs "$(col 1)"), RSS $(col 2) MiB (peak $(col 3)); warm start $(secs "$(col 4)"), RSS $(col 5) MiB (peak $(col 6))"
echo "inotifywait -m -r: $(secs "$(col 7)"), RSS $(col 8) MiB"
echo
{
  echo "RESULT|$files files watched: collectord RSS / peak, cold start|$(col 2) / $(col 3) MiB, $(secs "$(col 1)")|inotifywait -m -r: $(col 8) MiB, $(secs "$(col 7)")|goal ≤ 12 MiB; every file stat'ed and hashed; median of $RUNS"
  echo "RESULT|$files files watched: collectord RSS / peak, warm start|$(col 5) / $(col 6) MiB, $(secs "$(col 4)")|-|a restart over the stored baseline re-hashes nothing unchanged; median of $RUNS"
} | tee "${RESULTS_DIR:-$WORK}/many-files.result"
