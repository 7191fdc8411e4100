#!/usr/bin/env bash
# Soak test of server mode: release collectord → release shipperd → a local HTTPS management
# server, for DURATION seconds under a mixed load, with shipperd killed (-9) every
# SHIPPER_KILL_EVERY s and the server stopped and restarted (same port, same CA) every
# SERVER_RESTART_EVERY s, down SERVER_DOWN s each time. Load, each item with a unique tag:
#   processes    load-gen exec: `sh -c 'sleep 0.05' <tag>` PROC_RATE a second
#   files        load-gen write: a new file <tag> in a watched tree FILE_RATE a second (each
#                deleted again 100 files later, so the tree and the baseline stay small)
#   logins       a failed ssh password login for a non-existent user <tag> every AUTH_EVERY s,
#                against our own sshd on a spare port (as collectord/tests/auth.rs does) with
#                rsyslog writing /var/log/auth.log; skipped, with a notice, without sshd/sshpass/rsyslog
#   connections  a TCP connection to a local listener every CONN_EVERY s, held 2 × scan_interval
#                + 1 s so a scan must see it (tag: the client's port)
# The server is the test kit's `test-server --record`: same port and CA across restarts; it checks
# the Bearer key, gunzips, and appends each event of an accepted batch to received.tsv (batch id,
# event JSON) before answering 200.
#
# At the end the load stops, the script waits (DRAIN_TIMEOUT) until every process, file and login
# tag is at the server and `sec-trackerctl status --json` shows shipperd's queue empty, then checks
# (exit 1 if any fails):
#   delivery     every tag of every kind was delivered at least once (duplicates are counted:
#                at-least-once means a batch in flight at a kill is sent again)
#   collectord   RSS and open fds, sampled every SAMPLE_EVERY s: after a warm-up of the first 10%
#                of the run, the median of the last 5 samples ≤ 1.10 × the median of the first 5
#                after the warm-up (fds: or ≤ that + 2)
#   shipperd     the same rule within each incarnation (it is restarted every SHIPPER_KILL_EVERY
#                s), whose warm-up ends 60 s after the second server outage it lived through:
#                about 9.2–9.5 MiB of shipperd's RSS is its own executable's pages (RssFile), faulted
#                in as code paths are first used (an outage's error, retry and reconnect paths
#                among them), and its heap (RssAnon, 3–6 MiB) rises with the catch-up after an
#                outage (a backlog sent IN_FLIGHT batches at a time on a full connection pool)
#                and falls back after it; the first outage may find nothing queued. It is judged
#                from there on, across the later outages of its life; an incarnation with fewer
#                than 8 samples after its warm-up is listed, not judged. Across incarnations: the
#                last judged one's settled RSS (median after warm-up) ≤ 1.10 × the first's. A run
#                with fewer than 2 judged incarnations fails: each needs 2 server outages, 60 s
#                and 8 samples (so DURATION well above 2 × SHIPPER_KILL_EVERY, or shorter kills).
#                RssAnon and RssFile are sampled too and printed beside each verdict. Its fds are
#                counted without its TCP connections to the server, which are pooled and bounded
#                on their own: at every sample at most one per batch in flight
#                (IN_FLIGHT in shipperd/src/daemon/delivery.rs) plus one for a health report; and
#                no collector gap (events collectord no longer held when shipperd came back), per
#                the health reports
# and prints a summary: events generated/delivered per kind, duplicates, kills, server restarts,
# RSS and fds first/last.
#
# Usage: sudo scripts/soak.sh
# Env:   DURATION=1800 SHIPPER_KILL_EVERY=600 SERVER_RESTART_EVERY=120 SERVER_DOWN=10
#        PROC_RATE=20 FILE_RATE=20 AUTH_EVERY=5 CONN_EVERY=1 SAMPLE_EVERY=10 DRAIN_TIMEOUT=300
#        KEEP=1 (keep the work directory: logs, samples, what the server received)
# Needs: root, jq, python3; for logins sshd, sshpass, rsyslogd (.ci/run installs them).
set -euo pipefail
DURATION=${DURATION:-1800}
KILL_EVERY=${SHIPPER_KILL_EVERY:-600}
RESTART_EVERY=${SERVER_RESTART_EVERY:-120}
SERVER_DOWN=${SERVER_DOWN:-10}
PROC_RATE=${PROC_RATE:-20}
FILE_RATE=${FILE_RATE:-20}
AUTH_EVERY=${AUTH_EVERY:-5}
CONN_EVERY=${CONN_EVERY:-1}
SAMPLE_EVERY=${SAMPLE_EVERY:-10}
DRAIN_TIMEOUT=${DRAIN_TIMEOUT:-300}
SCAN_INTERVAL=5
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (collectord's monitors need it)"; exit 1; }
for t in jq python3; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
export PATH="$PATH:/usr/sbin:/sbin"

. scripts/bench/lib.sh
bench_setup soak
W=$WORK
WAIT_LOG_DIR=$W
TAG=s$$
T0=$SECONDS
RSYSLOG_STARTED=""
SHIP_PID="" SRV_PID="" COLL_PID=""
cleanup() {
  if [ -n "$RSYSLOG_STARTED" ]; then kill "$RSYSLOG_STARTED" 2>/dev/null || true; fi
  bench_cleanup
}
trap cleanup EXIT
log() { echo "[$(date -u +%H:%M:%S) +$((SECONDS - T0))s] $*"; }
alive() { kill -0 "$1" 2>/dev/null; }
tcp_open() { (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
status_json() { "$BIN/sec-trackerctl" --socket "$W/c.sock" --shipper-socket "$W/s.sock" status --json 2>/dev/null || true; }
subscribed() { [ "$(status_json | jq -r '.shipper.collector_connected')" = true ]; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- the management server: the test kit's server double, recording what it accepts before it
# answers (in $W/server: received.tsv, batches.tsv, health.jsonl); its CA and certificate are made
# at the first start and kept across restarts.
API_KEY=soak-key-$RANDOM$RANDOM
SRV_PORT=$(free_port)
start_server() {
  "$BIN/test-server" "$W/server" --port "$SRV_PORT" --api-key "$API_KEY" --record > /dev/null 2>> "$W/server.log" &
  SRV_PID=$!
  wait_for "the server on port $SRV_PORT" 30 tcp_open "$SRV_PORT"
}

# ---- collectord and shipperd: the installed defaults plus this server, a scratch tree, 10s reports.
mkdir -p "$W/tree"
jq --arg url "https://localhost:$SRV_PORT" --arg key "$API_KEY" --arg ca "$W/server/ca.pem" --arg state "$W/cstate" \
   --arg tree "$W/tree" --arg scan "${SCAN_INTERVAL}s" '
    .server.url = $url | .server.api_key = $key | .server.ca_file = $ca
  | .agent.id = "soak" | .agent.state_dir = $state | .agent.report_interval = "10s"
  | .monitoring.watch_paths += [$tree] | .monitoring.scan_interval = $scan' scripts/deb/config.json > "$W/config.json"
SHIP_INC=0
start_shipper() {
  SHIP_INC=$((SHIP_INC + 1))
  "$BIN/shipperd" --config "$W/config.json" --collector-socket "$W/c.sock" --socket "$W/s.sock" \
    --state-dir "$W/sstate" --allow-root > /dev/null 2>> "$W/shipperd.log" &
  SHIP_PID=$!
  wait_for "shipperd (incarnation $SHIP_INC) to subscribe" 60 subscribed
}

# ---- logins: our own sshd (machine host keys, PAM, syslog) and rsyslog writing auth.log.
AUTH=1 AUTH_WHY=""
for t in sshd sshpass ssh rsyslogd logger; do
  command -v $t >/dev/null || { AUTH=0; AUTH_WHY="missing $t"; }
done
if [ $AUTH = 1 ] && ! pgrep -x rsyslogd >/dev/null; then
  rsyslogd -i "$W/rsyslogd.pid"
  wait_for "rsyslogd's pid file" 10 test -s "$W/rsyslogd.pid"
  RSYSLOG_STARTED=$(cat "$W/rsyslogd.pid")
  log "started rsyslogd (pid $RSYSLOG_STARTED; stopped at the end)"
fi
if [ $AUTH = 1 ]; then
  marker="sec-tracker soak $TAG: rsyslog up"
  auth_log_up() { logger -p auth.info "$marker"; grep -qF "$marker" /var/log/auth.log 2>/dev/null; }
  deadline=$((SECONDS + 20))
  until auth_log_up; do
    [ $SECONDS -ge $deadline ] && { AUTH=0; AUTH_WHY="rsyslog does not write /var/log/auth.log"; break; }
    sleep 0.2
  done
fi
if [ $AUTH = 1 ]; then
  mkdir -p /run/sshd
  [ -e /etc/ssh/ssh_host_ed25519_key ] || ssh-keygen -A
  SSH_PORT=$(free_port)
  printf 'Port %s\nListenAddress 127.0.0.1\nHostKey /etc/ssh/ssh_host_ed25519_key\nUsePAM yes\nPasswordAuthentication yes\nKbdInteractiveAuthentication no\nPermitRootLogin no\nPidFile none\nSyslogFacility AUTH\nLogLevel INFO\nMaxAuthTries 10\nMaxStartups 50\n' \
    "$SSH_PORT" > "$W/sshd_config"
  "$(command -v sshd)" -D -f "$W/sshd_config" 2>> "$W/sshd.log" &
  wait_for "sshd on port $SSH_PORT" 20 tcp_open "$SSH_PORT"
fi
[ $AUTH = 1 ] || log "logins: SKIPPED ($AUTH_WHY)"

# ---- connections: a listener and a client opening one connection every CONN_EVERY s.
cat > "$W/conn.py" <<'PY'
import socket, sys, threading, time
duration, every, hold, log = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), open(sys.argv[4], "w")
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 0)); lst.listen(128)
log.write("listener %d\n" % lst.getsockname()[1]); log.flush()
def serve(c):
    while c.recv(1024):
        pass
    c.close()
def accept():
    while True:
        c, _ = lst.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
start, held, i = time.monotonic(), [], 0
while True:
    now = time.monotonic()
    for s, until in [h for h in held if h[1] <= now]:
        s.close()
    held = [h for h in held if h[1] > now]
    due = start + i * every
    if due >= start + duration:
        break
    if due > now:
        time.sleep(min(due - now, 0.2))
        continue
    s = socket.create_connection(("127.0.0.1", lst.getsockname()[1]))
    held.append((s, now + hold))
    log.write("client %d\n" % s.getsockname()[1]); log.flush()
    i += 1
for s, until in held:
    time.sleep(max(0, until - time.monotonic()))
    s.close()
PY

# auth_loop: a failed password login for a new non-existent user every AUTH_EVERY s.
auth_loop() {
  local i=0 start=$SECONDS
  while [ $((SECONDS - start)) -lt "$DURATION" ]; do
    local user="${TAG}u$i"
    echo "$user" >> "$W/tags.auth"
    timeout 60 sshpass -p not-the-password ssh -p "$SSH_PORT" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
      -o LogLevel=ERROR -o PreferredAuthentications=password -o PubkeyAuthentication=no -o NumberOfPasswordPrompts=1 \
      "$user@127.0.0.1" true > /dev/null 2>&1 &
    i=$((i + 1))
    while [ $((SECONDS - start)) -lt $((i * AUTH_EVERY)) ]; do sleep 0.2; done
  done
  wait
}

# sample: one line of "t collectord_rss_kb collectord_fds shipperd_incarnation shipperd_rss_kb
# shipperd_fds shipperd_tcp shipperd_anon_kb shipperd_file_kb": shipperd_tcp is how many of its fds
# are TCP sockets (its connections to the server, pooled by reqwest: one per batch in flight plus
# one for a health report).
sample() {
  local t=$((SECONDS - T0)) crss cfd srss=- sfd=- stcp=- sanon=- sfile=-
  crss=$(status_kib "$COLL_PID" VmRSS)
  cfd=$(find "/proc/$COLL_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
  if alive "$SHIP_PID"; then
    srss=$(status_kib "$SHIP_PID" VmRSS 2>/dev/null || echo -)
    sanon=$(status_kib "$SHIP_PID" RssAnon 2>/dev/null || echo -)
    sfile=$(status_kib "$SHIP_PID" RssFile 2>/dev/null || echo -)
    sfd=$(find "/proc/$SHIP_PID/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    stcp=$({ find "/proc/$SHIP_PID/fd" -mindepth 1 -maxdepth 1 -lname 'socket:*' -printf '%l\n' 2>/dev/null | tr -dc '0-9\n'
             echo --; awk 'FNR > 1 {print $10}' /proc/net/tcp /proc/net/tcp6; } |
           awk '$0 == "--" {tcp = 1; next} !tcp {mine[$0] = 1; next} $0 in mine {n++} END {print n + 0}')
  fi
  echo "$t $crss $cfd $SHIP_INC ${srss:--} $sfd $stcp ${sanon:--} ${sfile:--}" >> "$W/samples"
}

# ---- start everything.
T0=$SECONDS
start_server
"$BIN/collectord" --config "$W/config.json" --socket "$W/c.sock" > /dev/null 2> "$W/collectord.log" &
COLL_PID=$!
wait_for "collectord's socket" 30 test -S "$W/c.sock"
wait_for "collectord's file baseline" 120 grep -q "file monitor: inotify" "$W/collectord.log"
start_shipper
log "collectord $COLL_PID, shipperd $SHIP_PID, server :$SRV_PORT ($SRV_PID); load for ${DURATION}s:" \
  "$PROC_RATE proc/s, $FILE_RATE files/s, $([ $AUTH = 1 ] && echo "a failed ssh login every ${AUTH_EVERY}s" || echo "no logins"), a connection every ${CONN_EVERY}s;" \
  "shipperd kill -9 every ${KILL_EVERY}s, server restart every ${RESTART_EVERY}s (down ${SERVER_DOWN}s)"
T0=$SECONDS
LOAD_PIDS=()
"$BIN/load-gen" exec "$PROC_RATE" "$DURATION" --tag "${TAG}p" --log "$W/tags.proc" -- sh -c 'sleep 0.05' \
  > /dev/null 2> "$W/load-proc.log" &
LOAD_PIDS+=($!)
"$BIN/load-gen" write "$W/tree/load" "$FILE_RATE" "$DURATION" --tag "${TAG}f" --log "$W/tags.file" --keep 100 \
  > /dev/null 2> "$W/load-file.log" &
LOAD_PIDS+=($!)
python3 "$W/conn.py" "$DURATION" "$CONN_EVERY" $((2 * SCAN_INTERVAL + 1)) "$W/tags.conn" 2> "$W/conn.log" &
LOAD_PIDS+=($!)
if [ $AUTH = 1 ]; then auth_loop 2> "$W/auth.log" & LOAD_PIDS+=($!); fi

# ---- the run: kills, restarts and samples on schedule, once a second.
kills=0 restarts=0
next_kill=$KILL_EVERY next_restart=$RESTART_EVERY next_sample=0 server_back=""
while [ $((SECONDS - T0)) -lt "$DURATION" ]; do
  t=$((SECONDS - T0))
  alive "$COLL_PID" || { log "collectord died"; tail -n 20 "$W/collectord.log"; exit 1; }
  if [ "$t" -ge "$next_sample" ]; then sample; next_sample=$((next_sample + SAMPLE_EVERY)); fi
  if [ "$t" -ge "$next_kill" ]; then
    kill -9 "$SHIP_PID"; { wait "$SHIP_PID" || true; } 2>/dev/null
    kills=$((kills + 1)); log "kill -9 shipperd ($kills)"
    start_shipper
    next_kill=$((next_kill + KILL_EVERY))
  fi
  if [ "$t" -ge "$next_restart" ] && [ -z "$server_back" ]; then
    kill "$SRV_PID"; { wait "$SRV_PID" || true; } 2>/dev/null
    restarts=$((restarts + 1)); log "server stopped ($restarts), back in ${SERVER_DOWN}s"
    server_back=$((t + SERVER_DOWN))
    next_restart=$((next_restart + RESTART_EVERY))
  fi
  if [ -n "$server_back" ] && [ "$t" -ge "$server_back" ]; then
    start_server; server_back=""; log "server up again"
    echo $((SECONDS - T0)) >> "$W/server-up"
  fi
  alive "$SHIP_PID" || { log "shipperd died unasked"; tail -n 20 "$W/shipperd.log"; exit 1; }
  sleep 1
done
[ -z "$server_back" ] || { start_server; log "server up again"; }
log "load done; waiting for the load generators to finish"
deadline=$((SECONDS + 90))
for p in "${LOAD_PIDS[@]}"; do
  while alive "$p"; do
    [ $SECONDS -lt $deadline ] || { log "a load generator did not finish"; exit 1; }
    sleep 0.2
  done
done
load_end=$SECONDS
sample

# ---- drain: every greppable tag at the server, and nothing left in shipperd's queue from before
# the end of the load (the queue is seldom exactly empty: the machine's own activity, this very
# polling included, keeps adding events that wait up to report_interval for a batch). Deadline.
missing_tags() {
  local n=0 kind
  for kind in proc file auth; do
    [ -s "$W/tags.$kind" ] || continue
    n=$((n + $(grep -oE "${TAG}[pfu][0-9-]+" "$W/server/received.tsv" 2>/dev/null | sort -u | comm -23 <(sort -u "$W/tags.$kind") - | wc -l)))
  done
  echo $n
}
log "draining (up to ${DRAIN_TIMEOUT}s)"
deadline=$((SECONDS + DRAIN_TIMEOUT))
drained=0
while :; do
  depth="?" oldest="?"
  read -r depth oldest < <(status_json | jq -r '"\(.shipper.queue_depth // "?") \(.shipper.oldest_queued_age_seconds // "?")"') || true
  missing=$(missing_tags)
  since=$((SECONDS - load_end))
  # Connections close up to 2 scans after the load: give the network monitor time to report them.
  if [ "$missing" = 0 ] && [ $since -ge $((3 * SCAN_INTERVAL)) ] &&
     { [ "$depth" = 0 ] || awk -v a="$oldest" -v s="$since" 'BEGIN {exit !(a + 0 < s - 1)}'; }; then
    drained=1; break
  fi
  [ $SECONDS -lt $deadline ] || { log "drain deadline: queue depth $depth, oldest ${oldest}s, $missing tags not at the server"; break; }
  sleep 3
done
sample
status_json > "$W/status-end.json"
if [ $drained = 1 ]; then log "drained after $((SECONDS - load_end))s (queue depth $depth, oldest queued ${oldest}s old)"; fi

# ---- checks and summary.
# shipperd's batches in flight, read from its source: the bound on its connections to the server.
IN_FLIGHT=$(sed -n 's/^pub\((super)\)\{0,1\} const IN_FLIGHT: usize = \([0-9]*\);$/\2/p' shipperd/src/daemon/delivery.rs)
python3 - "$W" "$TAG" "$DURATION" "$kills" "$restarts" "$AUTH" "$AUTH_WHY" "$drained" "${IN_FLIGHT:?not found in delivery.rs}" <<'PY'
import json, os, re, statistics, sys
w, tag, duration, kills, restarts, auth_on, auth_why = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6] == "1", sys.argv[7]
in_flight = int(sys.argv[9])
failed = [] if sys.argv[8] == "1" else ["shipperd's queue still held events from before the end of the load at the drain deadline"]
def read_tags(name):
    p = os.path.join(w, "tags." + name)
    return [l.strip() for l in open(p)] if os.path.exists(p) else []
procs, files, users = read_tags("proc"), read_tags("file"), read_tags("auth")
conn_lines = read_tags("conn")
listener = int(conn_lines[0].split()[1]) if conn_lines else 0
clients = [int(l.split()[1]) for l in conn_lines[1:]]

found = {"process": set(), "file": set(), "auth": set(), "network": set()}
keys, dup_events, total, file_actions = set(), 0, 0, {}
pat = re.compile(re.escape(tag) + r"[pfu][0-9-]+")
for line in open(os.path.join(w, "server", "received.tsv")):
    batch, js = line.rstrip("\n").split("\t", 1)
    p = json.loads(js)
    total += 1
    key = (p.get("stream_id"), p.get("seq"))
    if key in keys:
        dup_events += 1
    keys.add(key)
    kind, d = p.get("type"), p.get("details") or {}
    # A process counts by its exec event, a file by its created event, a login by any auth event.
    if (kind == "process" and d.get("action") == "exec") or (kind == "file" and d.get("action") == "created") or kind == "auth":
        for m in pat.findall(js):
            found[kind].add(m)
    if kind == "file" and pat.search(js):
        file_actions[d.get("action")] = file_actions.get(d.get("action"), 0) + 1
    elif kind == "network":
        lp, rp = d.get("local_port"), d.get("remote_port")
        if lp == listener:
            found["network"].add(rp)
        elif rp == listener:
            found["network"].add(lp)
receptions = {}
for line in open(os.path.join(w, "server", "batches.tsv")):
    b = line.split("\t")[0]
    receptions[b] = receptions.get(b, 0) + 1
resent = sum(1 for n in receptions.values() if n > 1)

print()
print("== soak summary: %ss, shipperd killed %s times, server restarted %s times ==" % (duration, kills, restarts))
print("%-12s %10s %10s %8s" % ("kind", "generated", "delivered", "missing"))
def row(kind, gen, got, strict=True, why=""):
    missing = [g for g in gen if g not in got]
    print("%-12s %10d %10d %8d %s" % (kind, len(gen), len(gen) - len(missing), len(missing), why))
    if missing and strict:
        failed.append("%s: %d of %d never delivered, e.g. %s" % (kind, len(missing), len(gen), missing[:3]))
row("processes", procs, found["process"])
row("files", files, found["file"], why="(tagged file events by action: %s)" % ", ".join("%s %d" % kv for kv in sorted(file_actions.items())))
if auth_on:
    row("logins", users, found["auth"])
else:
    print("%-12s %10s %10s %8s (skipped: %s)" % ("logins", "-", "-", "-", auth_why))
row("connections", clients, found["network"])
print("events at the server: %d in %d batches; distinct events %d, duplicates %d; batches received more than once %d" % (
    total, sum(receptions.values()), len(keys), dup_events, resent))

# Health reports: collector gaps (events collectord no longer held when shipperd came back),
# queue drops, dead letters. Any non-zero value in any report fails (whether a counter starts
# again with each incarnation or not, its largest value is non-zero exactly when one happened).
gaps = dropped = dead = reports = 0
hp = os.path.join(w, "server", "health.jsonl")
for l in open(hp) if os.path.exists(hp) else []:
    m = json.loads(l).get("metrics", {})
    reports += 1
    gaps = max(gaps, m.get("collector_gaps_missed", 0))
    dropped = max(dropped, m.get("events_dropped", 0))
    dead = max(dead, m.get("events_dead_lettered", 0))
print("shipperd health (%d reports): collector gaps missed %d, queue drops %d, dead-lettered %d (largest reported)" % (reports, gaps, dropped, dead))
if reports == 0:
    failed.append("no health report reached the server")
for what, n in (("collector gaps", gaps), ("queue drops", dropped), ("dead-lettered", dead)):
    if n:
        failed.append("shipperd reported %d %s" % (n, what))

# Resources.
samples = []
for l in open(os.path.join(w, "samples")):
    t, crss, cfd, inc, srss, sfd, stcp, sanon, sfile = l.split()
    num = lambda v: None if v == "-" else int(v)
    # shipperd's fds are judged without its TCP connections, which are bounded on their own below.
    other = None if sfd == "-" else int(sfd) - int(stcp)
    samples.append((int(t), int(crss), int(cfd), int(inc), num(srss), other, num(stcp), num(sanon), num(sfile)))
def judge(name, series, rss_i, fd_i, parts=""):
    k = min(5, len(series) // 2)
    if k < 2:
        print("%s: %d samples after warm-up: too few to judge" % (name, len(series)))
        return
    med = lambda xs: statistics.median(xs)
    r0, r1 = med([s[rss_i] for s in series[:k]]), med([s[rss_i] for s in series[-k:]])
    f0, f1 = med([s[fd_i] for s in series[:k]]), med([s[fd_i] for s in series[-k:]])
    ok_r, ok_f = r1 <= 1.10 * r0, f1 <= max(1.10 * f0, f0 + 2)
    print("%s: RSS %.1f → %.1f MiB (%+.1f%%) %s; fds %g → %g %s  [median of first/last %d samples after warm-up]%s" % (
        name, r0 / 1024, r1 / 1024, 100 * (r1 - r0) / r0, "ok" if ok_r else "GROWS", f0, f1, "ok" if ok_f else "GROWS", k, parts))
    if not ok_r:
        failed.append("%s RSS grew %.1f → %.1f MiB" % (name, r0 / 1024, r1 / 1024))
    if not ok_f:
        failed.append("%s fds grew %g → %g" % (name, f0, f1))
warm = duration / 10
coll = [s for s in samples if s[0] >= warm]
print("collectord: RSS first/last sample %.1f / %.1f MiB, fds %d / %d" % (samples[0][1] / 1024, samples[-1][1] / 1024, samples[0][2], samples[-1][2]))
judge("collectord", coll, 1, 2)
incs = sorted(set(s[3] for s in samples if s[4] is not None))
ship = [s for s in samples if s[4] is not None]
if ship:
    print("shipperd: %d incarnations; RSS first/last sample %.1f / %.1f MiB, fds other than TCP %d / %d" % (
        len(incs), ship[0][4] / 1024, ship[-1][4] / 1024, ship[0][5], ship[-1][5]))
    # Connections to the server: pooled, at most one per batch in flight and one for health. A
    # socket left in CLOSE_WAIT after a server restart would still count here.
    bound = in_flight + 1
    most = max(s[6] for s in ship)
    print("shipperd: TCP connections at most %d at any sample (bound: %d batches in flight + 1 health report = %d) %s" % (
        most, in_flight, bound, "ok" if most <= bound else "GROWS"))
    if most > bound:
        failed.append("shipperd held %d TCP connections (bound %d)" % (most, bound))
# Each incarnation is judged after its warm-up: 60 s past the second server return in its life.
up = os.path.join(w, "server-up")
returns = [int(l) for l in open(up)] if os.path.exists(up) else []
short, settled = [], []
for inc in incs:
    ss = [s for s in ship if s[3] == inc]
    start, end = ss[0][0], ss[-1][0]
    back = [r for r in returns if start <= r <= end]
    after = [s for s in ss if len(back) >= 2 and s[0] >= back[1] + 60]
    if len(after) >= 8:
        def mib(i, xs):
            vs = [s[i] for s in xs if s[i] is not None]
            return "%.1f" % (statistics.median(vs) / 1024) if vs else "-"
        k = min(5, len(after) // 2)
        judge("shipperd #%d" % inc, after, 4, 5, "; of it anon %s → %s, file %s → %s MiB" % (
            mib(7, after[:k]), mib(7, after[-k:]), mib(8, after[:k]), mib(8, after[-k:])))
        settled.append((inc, statistics.median(s[4] for s in after)))
    else:
        short.append("#%d (%ds, %s, peak %.1f MiB)" % (inc, end - start,
            "%d samples after warm-up" % len(after) if len(back) >= 2 else "%d server outages" % len(back), max(s[4] for s in ss) / 1024))
if short:
    print("shipperd incarnations not judged (< 8 samples after warm-up): " + ", ".join(short))
if len(settled) >= 2:
    (i0, r0), (i1, r1) = settled[0], settled[-1]
    ok = r1 <= 1.10 * r0
    print("shipperd across incarnations: settled RSS #%d %.1f MiB → #%d %.1f MiB (%+.1f%%) %s  [median after warm-up]" % (
        i0, r0 / 1024, i1, r1 / 1024, 100 * (r1 - r0) / r0, "ok" if ok else "GROWS"))
    if not ok:
        failed.append("shipperd's settled RSS grew across incarnations %.1f → %.1f MiB" % (r0 / 1024, r1 / 1024))
else:
    failed.append("fewer than 2 shipperd incarnations could be judged (each needs 2 server outages + 60 s + 8 samples: lengthen DURATION or shorten SHIPPER_KILL_EVERY)")

print()
if failed:
    print("FAILED:")
    for f in failed:
        print("  - " + f)
    sys.exit(1)
print("all checks passed")
PY
