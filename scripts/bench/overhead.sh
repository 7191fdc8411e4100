#!/usr/bin/env bash
# Overhead of the agent as installed: release collectord and shipperd with the installed
# defaults (scripts/deb/config.json: every monitor on, watch_paths /etc /usr/bin /var/log plus a
# scratch tree, batch_size 100, report_interval 60s), shipping over real TLS to
# test-server --stats (scripts/testkit: the management-server double, which counts what arrives and
# keeps nothing: management_server.rs keeps and re-copies every batch it received every 0.5 s,
# which on a 2-core machine would bill its growing cost to the figures here).
#
# Three phases, each with freshly started daemons, measured over SECONDS_PER_PHASE once both are
# up (collectord's file baseline built, shipperd subscribed) and SETTLE s have passed:
#   idle    nothing but the machine's own activity
#   exec    load-gen (scripts/testkit) starting `/bin/true <tag>` EXEC_RATE times a second
#           (deadline-paced; each is an exec and an exit event)
#   write   load-gen creating and writing WRITE_RATE files a second in the watched scratch tree
#           (each a created event with a SHA-256)
#   auditd  the peer on the exec phase's load: Debian's auditd (`auditd -n`, its packaged
#           auditd.conf but for the log: in the phase's directory, rotated only past 4 GiB so
#           that the records can be counted) with one rule, `-a always,exit -F arch=b64 -S execve`, and no sec-tracker
#           daemon running; its CPU is auditd's plus the kernel's kauditd thread's, which formats
#           every record (the figure laurel's performance data quotes is auditd's alone). Skipped,
#           with a row saying so, when auditd is not installed (apt-get install auditd). The audit
#           rules and enabled flag found before are put back after.
# Per daemon: CPU in % of one core ((utime + stime) from /proc/<pid>/stat over the phase / wall
# time), RSS at the end of the phase (VmRSS) and its peak (VmHWM). Also the load's achieved rate,
# the events the server received during the phase and shipperd's queue depth at the end (a
# shipperd that keeps up ends near 0 plus one unfilled batch). Per-run rows, then medians, then
# `RESULT|benchmark|sec-tracker|peer|note` lines (for run-all.sh; into $RESULTS_DIR if set).
#
# Usage: sudo scripts/bench/overhead.sh
# Env:   RUNS=5 SECONDS_PER_PHASE=60 SETTLE=5 EXEC_RATE=1000 WRITE_RATE=1000 KEEP=1 (keep the logs)
# Needs: root (the process connector), jq; auditd for the peer phase.
set -euo pipefail
RUNS=${RUNS:-5}
SECS=${SECONDS_PER_PHASE:-60}
SETTLE=${SETTLE:-5}
EXEC_RATE=${EXEC_RATE:-1000}
WRITE_RATE=${WRITE_RATE:-1000}
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "run as root (the process connector needs CAP_NET_ADMIN)"; exit 1; }
command -v jq >/dev/null || { echo "missing jq: apt-get install jq"; exit 1; }

. scripts/bench/lib.sh
bench_setup bench-overhead
status_json() { "$BIN/sec-trackerctl" --socket "$D/c.sock" --shipper-socket "$D/s.sock" status --json 2>/dev/null; }
shipper_subscribed() { [ "$(status_json | jq -r '.shipper.collector_connected')" = true ]; }
baseline_built() { grep -q "file monitor: inotify" "$D/collectord.log" 2>/dev/null; }
delivered() { tail -n 1 "$D/server.jsonl" 2>/dev/null | jq -r '.total_payloads // 0' 2>/dev/null || echo 0; }

# phase <dir> <idle|exec|write>: prints "cpu_c rss_c hwm_c cpu_s rss_s hwm_s rate delivered depth"
phase() {
  D=$1; WAIT_LOG_DIR=$1; local kind=$2
  mkdir -p "$D/tree"
  WATCHED_PIDS=()
  "$BIN/test-server" "$D/server" --stats > "$D/server.jsonl" 2> "$D/server.log" &
  WATCHED_PIDS+=($!)
  wait_for "the server's config" 30 test -f "$D/server/config.json"
  jq --arg state "$D/cstate" --arg tree "$D/tree" --slurpfile s "$D/server/config.json" '
      .server.url = $s[0].server.url | .server.api_key = $s[0].server.api_key
    | .server.ca_file = $s[0].server.ca_file | .agent.id = "overhead-bench" | .agent.state_dir = $state
    | .monitoring.watch_paths += [$tree]' scripts/deb/config.json > "$D/config.json"
  "$BIN/collectord" --config "$D/config.json" --socket "$D/c.sock" > /dev/null 2> "$D/collectord.log" &
  local cpid=$!; WATCHED_PIDS+=("$cpid")
  wait_for "collectord's socket" 30 test -S "$D/c.sock"
  wait_for "collectord's file baseline" 120 baseline_built
  "$BIN/shipperd" --config "$D/config.json" --collector-socket "$D/c.sock" --socket "$D/s.sock" \
    --state-dir "$D/sstate" --allow-root > /dev/null 2> "$D/shipperd.log" &
  local spid=$!; WATCHED_PIDS+=("$spid")
  wait_for "shipperd to subscribe" 30 shipper_subscribed
  sleep "$SETTLE" # start-up transients (first system report, first scans) out of the window
  local n0 c0 s0 t0 t1 rate=-
  n0=$(delivered); c0=$(cpu_ticks $cpid); s0=$(cpu_ticks $spid); t0=$EPOCHREALTIME
  case $kind in
    idle) sleep "$SECS" ;;
    exec) "$BIN/load-gen" exec "$EXEC_RATE" "$SECS" --tag "ovh$$" > /dev/null 2> "$D/load.log" ;;
    write) "$BIN/load-gen" write "$D/tree/load" "$WRITE_RATE" "$SECS" --tag "ovh$$" > /dev/null 2> "$D/load.log" ;;
  esac
  t1=$EPOCHREALTIME
  local c1 s1; c1=$(cpu_ticks $cpid); s1=$(cpu_ticks $spid)
  local out
  out=$(awk -v c=$((c1 - c0)) -v s=$((s1 - s0)) -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
    'BEGIN {printf "%.1f %.1f", 100 * c / hz / (t1 - t0), 100 * s / hz / (t1 - t0)}')
  [ "$kind" = idle ] || rate=$(grep -o '([0-9]*/s)' "$D/load.log" | tr -dc 0-9)
  local depth; depth=$(status_json | jq -r '.shipper.queue_depth // "-"')
  # The server prints its count once a second: take it a second later, for the window's end.
  sleep 1.1
  local n1; n1=$(delivered)
  echo "${out% *} $(status_mib $cpid VmRSS) $(status_mib $cpid VmHWM) ${out#* } $(status_mib $spid VmRSS) $(status_mib $spid VmHWM) ${rate:--} $((n1 - n0)) $depth"
  stop_jobs
}

# The peer phase: auditd with an execve rule on the same exec load.
# phase_auditd <dir>: prints "cpu_auditd cpu_kauditd rss_auditd hwm_auditd rate records lost"
# (records: the rule's SYSCALL records in the log; lost: records the kernel dropped meanwhile)
phase_auditd() {
  D=$1; WAIT_LOG_DIR=$1
  mkdir -p "$D"
  WATCHED_PIDS=()
  local log=$D/audit/audit.log
  mkdir -p "$D/audit"
  sed -e "s|^log_file = .*|log_file = $log|; s|^max_log_file = .*|max_log_file = 4096|" \
    /etc/audit/auditd.conf > "$D/audit/auditd.conf"
  chmod 0640 "$D/audit/auditd.conf"
  /sbin/auditd -n -c "$D/audit" > "$D/auditd.log" 2>&1 &
  local apid=$!; WATCHED_PIDS+=("$apid")
  auditd_registered() { [ "$(/sbin/auditctl -s | awk '$1 == "pid" {print $2}')" = "$apid" ]; }
  wait_for "auditd to register" 30 auditd_registered
  /sbin/auditctl -D > /dev/null
  # The backlog Debian's audit.rules sets (the kernel's default of 64 loses records at this rate).
  /sbin/auditctl -b 8192 > /dev/null
  /sbin/auditctl -a always,exit -F arch=b64 -S execve -k sec-tracker-bench > /dev/null
  sleep "$SETTLE"
  local kpid lines0 lines1 a0 k0 a1 k1 t0 t1
  kpid=$(pgrep -x kauditd | head -n 1)
  lines0=$(grep -c 'key="sec-tracker-bench"' "$log" || true)
  local lost0; lost0=$(/sbin/auditctl -s | awk '$1 == "lost" {print $2}')
  a0=$(cpu_ticks "$apid"); k0=$(cpu_ticks "$kpid"); t0=$EPOCHREALTIME
  "$BIN/load-gen" exec "$EXEC_RATE" "$SECS" --tag "ovh$$" > /dev/null 2> "$D/load.log"
  t1=$EPOCHREALTIME; a1=$(cpu_ticks "$apid"); k1=$(cpu_ticks "$kpid")
  sleep 1.1
  lines1=$(grep -c 'key="sec-tracker-bench"' "$log" || true)
  local lost1; lost1=$(/sbin/auditctl -s | awk '$1 == "lost" {print $2}')
  local rate; rate=$(grep -o '([0-9]*/s)' "$D/load.log" | tr -dc 0-9)
  awk -v a=$((a1 - a0)) -v k=$((k1 - k0)) -v hz="$HZ" -v t0="$t0" -v t1="$t1" \
    'BEGIN {printf "%.1f %.1f ", 100 * a / hz / (t1 - t0), 100 * k / hz / (t1 - t0)}'
  echo "$(status_mib "$apid" VmRSS) $(status_mib "$apid" VmHWM) ${rate:--} $((lines1 - lines0)) $((lost1 - lost0))"
  /sbin/auditctl -D > /dev/null
  kill "$apid"; wait "$apid" 2>/dev/null || true
  WATCHED_PIDS=()
}
AUDITD=0
if [ -x /sbin/auditd ] && [ -x /sbin/auditctl ] && [ -f /etc/audit/auditd.conf ]; then
  if pgrep -x auditd > /dev/null; then
    echo "auditd is already running: the peer phase is skipped (stop it to measure it here)" >&2
  else
    AUDITD=1
    # What to put back: the rules and the enabled flag as found (auditctl -l prints rules in the
    # form auditctl -a takes).
    /sbin/auditctl -l > "$WORK/audit.rules" 2>/dev/null || true
    AUDIT_ENABLED=$(/sbin/auditctl -s | awk '$1 == "enabled" {print $2}')
    AUDIT_BACKLOG=$(/sbin/auditctl -s | awk '$1 == "backlog_limit" {print $2}')
    restore_audit() {
      /sbin/auditctl -D > /dev/null 2>&1 || true
      { grep -v '^No rules' "$WORK/audit.rules" || true; } | while read -r rule; do
        # shellcheck disable=SC2086 # a rule is several arguments
        /sbin/auditctl $rule > /dev/null 2>&1 || true
      done
      /sbin/auditctl -e "${AUDIT_ENABLED:-0}" > /dev/null 2>&1 || true
      /sbin/auditctl -b "${AUDIT_BACKLOG:-64}" > /dev/null 2>&1 || true
    }
    trap 'stop_jobs; restore_audit; bench_cleanup' EXIT
  fi
fi

PHASES=(idle exec write)
printf "%-4s %-6s %-8s | %-6s %-9s %-9s | %-6s %-9s %-9s | %-9s %s\n" run phase load/s "coll %" "RSS MiB" "peak MiB" \
  "ship %" "RSS MiB" "peak MiB" delivered "queue at end"
for run in $(seq 1 "$RUNS"); do
  for ph in "${PHASES[@]}"; do
    phase "$WORK/run$run-$ph" "$ph" > "$WORK/row"
    read -r cc cr ch sc sr sh rate n depth < "$WORK/row"
    printf "%-4s %-6s %-8s | %-6s %-9s %-9s | %-6s %-9s %-9s | %-9s %s\n" "$run" "$ph" "$rate" "$cc" "$cr" "$ch" \
      "$sc" "$sr" "$sh" "$n" "$depth"
    echo "$ph $cc $cr $ch $sc $sr $sh $rate $n" >> "$WORK/results"
  done
  if [ "$AUDITD" = 1 ]; then
    phase_auditd "$WORK/run$run-auditd" > "$WORK/row"
    read -r ac kc ar ah rate records lost < "$WORK/row"
    printf "%-4s %-6s %-8s | auditd %s%% + kauditd %s%%, auditd RSS %s / %s MiB, %s execve records, %s lost\n" \
      "$run" auditd "$rate" "$ac" "$kc" "$ar" "$ah" "$records" "$lost"
    echo "auditd $ac $kc $ar $ah $rate $records $lost" >> "$WORK/results"
  fi
done

col() { awk -v p="$1" -v c="$2" '$1 == p && $c != "-" {print $c}' "$WORK/results" | median; }
echo
echo "median of $RUNS runs, ${SECS} s per phase; CPU in % of one core; $(nproc) CPUs, $(uname -r)"
echo
echo "| phase | collectord CPU | RSS / peak | shipperd CPU | RSS / peak | load achieved |"
echo "|---|---|---|---|---|---|"
for ph in "${PHASES[@]}"; do
  echo "| $ph | $(col "$ph" 2)% | $(col "$ph" 3) / $(col "$ph" 4) MiB | $(col "$ph" 5)% | $(col "$ph" 6) / $(col "$ph" 7) MiB | $(col "$ph" 8)/s |"
done
echo
{
  for ph in "${PHASES[@]}"; do
    case $ph in
      idle) what="idle" ;;
      exec) what="$EXEC_RATE exec/s (achieved $(col exec 8)/s)" ;;
      write) what="$WRITE_RATE file writes/s (achieved $(col write 8)/s)" ;;
    esac
    note="CPU % of one core; RSS at the end / peak; ${SECS} s, median of $RUNS"
    echo "RESULT|overhead, $what: collectord|$(col "$ph" 2)% CPU, $(col "$ph" 3) / $(col "$ph" 4) MiB|-|$note"
    echo "RESULT|overhead, $what: shipperd|$(col "$ph" 5)% CPU, $(col "$ph" 6) / $(col "$ph" 7) MiB|-|$note; $(col "$ph" 9) events delivered"
  done
  both=$(awk '$1 == "exec" {print $2 + $5}' "$WORK/results" | median)
  if [ "$AUDITD" = 1 ]; then
    peer="auditd + execve rule: $(col auditd 2)% (auditd) + $(col auditd 3)% (kauditd) CPU, $(col auditd 4) MiB"
    peer_note="auditd alone on the same load (achieved $(col auditd 6)/s, $(col auditd 7) execve records logged, $(col auditd 8) lost); median of $RUNS"
  else
    peer="auditd: not measured (not installed, or already running)"; peer_note="-"
  fi
  echo "RESULT|overhead, $EXEC_RATE exec/s: collectord + shipperd (shipping over TLS)|$(col exec 2)% + $(col exec 5)% = ${both}% CPU|$peer|$peer_note"

} | tee "${RESULTS_DIR:-$WORK}/overhead.result"
