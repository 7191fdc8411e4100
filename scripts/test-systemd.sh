#!/usr/bin/env bash
# The units under a real systemd: a Debian root file system booted with systemd as PID 1 in a
# systemd-nspawn container, this checkout's release binaries installed in it by scripts/install.sh
# (systemd path: units enabled and started), then checked as an operator would:
#   readiness (Type=notify), each daemon's capabilities and user, each daemon's own runtime
#   directory and socket (owner, group, mode), a member of the readers' group reading both across
#   restarts of either unit, events delivered to a management server, nothing warned at start or
#   stop, and the attacks that involve the units (a member cannot add a name where the sockets live
#   or where the pid files would be, nor read the API key).
# Prints one `ok` / `FAIL` line per check, then `N passed, M failed`; exits non-zero on a failure.
#
# Usage: sudo scripts/test-systemd.sh [--bin-dir DIR]
#   DIR: collectord, shipperd, sec-trackerctl and test-server (default target/release; built with
#   `cargo build --release` when missing).
#        sudo scripts/test-systemd.sh --rootfs-only   (only builds the root file system: CI starts
#   it while it compiles)
# Env:   ROOTFS=/var/tmp/sec-tracker-systemd-rootfs (built once with debootstrap, then reused)
# Needs: root, debootstrap and systemd-container (apt-get install debootstrap systemd-container).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=$REPO/target/release
ROOTFS_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a directory}; shift 2 ;;
    --rootfs-only) ROOTFS_ONLY=1; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-systemd.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "test-systemd.sh: run as root" >&2; exit 2; }
export PATH="$PATH:/usr/sbin:/sbin"
for t in debootstrap systemd-nspawn nsenter; do
  command -v $t >/dev/null || { echo "test-systemd.sh: $t is missing (apt-get install debootstrap systemd-container)" >&2; exit 2; }
done
ROOTFS=${ROOTFS:-/var/tmp/sec-tracker-systemd-rootfs}
# Debian minbase with systemd, this machine's release from its mirror, made once (the host name
# is written last: it says debootstrap finished).
build_rootfs() {
  [ -x "$ROOTFS/lib/systemd/systemd" ] && [ -s "$ROOTFS/etc/hostname" ] &&
    [ "$(cat "$ROOTFS/etc/hostname")" = st-systemd-test ] && return 0
  local mirror suite log
  mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?([[:space:]]|$)' | head -1 | tr -d '[:space:]')
  suite=$(. /etc/os-release; echo "$VERSION_CODENAME")
  log=$(mktemp /tmp/sec-tracker-debootstrap-systemd.XXXXXX)
  echo "building $ROOTFS ($suite from ${mirror:-?}) ..."
  rm -rf "$ROOTFS"
  mkdir -p "$ROOTFS"
  if ! debootstrap --variant=minbase \
    --include=systemd,systemd-sysv,dbus,libcap2-bin,procps,passwd,util-linux,iproute2,ca-certificates \
    "$suite" "$ROOTFS" "$mirror" >"$log" 2>&1; then
    tail -n 20 "$log"; rm -rf "$ROOTFS" "$log"; return 1
  fi
  rm -f "$log"
  echo st-systemd-test >"$ROOTFS/etc/hostname"
}
if [ "$ROOTFS_ONLY" = 1 ]; then build_rootfs; exit; fi
for b in collectord shipperd sec-trackerctl test-server; do
  [ -x "$BIN_DIR/$b" ] || (cd "$REPO" && cargo build --release --locked --bins -q) || exit 2
done

WORK=$(mktemp -d /tmp/sec-tracker-test-systemd.XXXXXX)
NSPAWN_PID=""
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
fails() { ! "$@" >/dev/null 2>&1; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi; }

finish() {
  if [ -n "$NSPAWN_PID" ]; then
    kill -TERM "$NSPAWN_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NSPAWN_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
trap 'finish; exit $?' EXIT

# ---- the root file system ---------------------------------------------------------------------
build_rootfs || exit 2
# What the container starts from: no sec-tracker of an earlier run.
rm -rf "$ROOTFS"/etc/sec-tracker "$ROOTFS"/var/lib/sec-tracker "$ROOTFS"/usr/local/bin/{collectord,shipperd,sec-trackerctl} \
       "$ROOTFS"/etc/systemd/system/sec-tracker-* "$ROOTFS"/etc/systemd/system/multi-user.target.wants/sec-tracker-* \
       "$ROOTFS"/var/lib/st-test-server "$ROOTFS"/var/log/journal/*
chroot "$ROOTFS" sh -c 'userdel st-reader; userdel sec-tracker; groupdel sec-tracker' >/dev/null 2>&1
mkdir -p "$WORK/bin"
cp "$BIN_DIR"/{collectord,shipperd,sec-trackerctl,test-server} "$WORK/bin/"

# ---- boot -------------------------------------------------------------------------------------
# fanotify is in nspawn's default seccomp deny list; collectord needs it.
setsid systemd-nspawn -b -D "$ROOTFS" --register=no --keep-unit --capability=all --console=pipe \
  --system-call-filter='fanotify_init fanotify_mark bpf' \
  --bind-ro="$REPO:/src" --bind-ro="$WORK/bin:/st-bin" >"$WORK/boot.log" 2>&1 </dev/null &
NSPAWN_PID=$!
leader() { pgrep -P "$NSPAWN_PID" -x systemd; }
in_c() { nsenter -t "$(leader)" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
           SYSTEMD_PAGER= "$@"; }
booted=""
for _ in $(seq 200); do
  l=$(leader 2>/dev/null) && s=$(in_c systemctl is-system-running 2>/dev/null)
  case "${s:-}" in running|degraded) booted=$s; break ;; esac
  sleep 0.1
done
check "systemd booted as PID 1 in the container (${booted:-no})" test -n "$booted"
[ -n "$booted" ] || { tail -n 20 "$WORK/boot.log"; exit 1; }

# ---- install (systemd path) -------------------------------------------------------------------
out=$(in_c /src/scripts/install.sh --bin-dir /st-bin 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
eq "install.sh exits 0 under systemd" "$rc" 0
c_pid() { in_c systemctl show -P MainPID "sec-tracker-$1.service"; }
field() { in_c awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"; }
eq "collectord is active (Type=notify: it said it was ready)" "$(in_c systemctl is-active sec-tracker-collectord)" active
cpid=$(c_pid collectord)
# DAC_READ_SEARCH (2) and SYS_PTRACE (19): the start-up capabilities are gone.
eq "collectord keeps CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE only" "$(field "$cpid" CapEff)" 0000000000080004
eq "collectord's bounding set is the same" "$(field "$cpid" CapBnd)" 0000000000080004
eq "/run/sec-tracker is collectord's: 0750 root:sec-tracker" "$(in_c stat -c '%a %U %G' /run/sec-tracker)" "750 root sec-tracker"
eq "collector.sock 0660 root:sec-tracker" "$(in_c stat -c '%a %U %G' /run/sec-tracker/collector.sock)" "660 root sec-tracker"

# ---- a management server, and shipperd pointed at it -------------------------------------------
in_c mkdir -p /var/lib/st-test-server
in_c systemd-run --quiet --unit st-test-server --property=Type=simple \
  /st-bin/test-server /var/lib/st-test-server --port 18443 --record >/dev/null
for _ in $(seq 100); do in_c test -s /var/lib/st-test-server/config.json && break; sleep 0.1; done
in_c sh -c 'chmod 0755 /var/lib/st-test-server && chmod 0644 /var/lib/st-test-server/ca.pem'
in_c sh -c "sed -i -e 's|\"url\": \"\"|\"url\": \"https://127.0.0.1:18443\", \"ca_file\": \"/var/lib/st-test-server/ca.pem\"|' \
  -e 's|\"report_interval\": \"60s\"|\"report_interval\": \"2s\"|' /etc/sec-tracker/config.json"
in_c sh -c "sed -n 's/.*\"api_key\": \"\\([^\"]*\\)\".*/\\1/p' /var/lib/st-test-server/config.json > /etc/sec-tracker/api-key"
out=$(in_c /src/scripts/install.sh --bin-dir /st-bin 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
eq "install.sh (server set) exits 0" "$rc" 0
eq "shipperd is active" "$(in_c systemctl is-active sec-tracker-shipperd)" active
spid=$(c_pid shipperd)
uid=$(in_c id -u sec-tracker)
eq "shipperd runs as sec-tracker" "$(field "$spid" Uid)" "$uid $uid $uid $uid"
eq "shipperd has no capability" "$(field "$spid" CapEff)" 0000000000000000
eq "/run/sec-tracker-shipper is shipperd's: 0750 sec-tracker:sec-tracker" \
   "$(in_c stat -c '%a %U %G' /run/sec-tracker-shipper)" "750 sec-tracker sec-tracker"
eq "/run/sec-tracker is still collectord's after shipperd started" "$(in_c stat -c '%a %U %G' /run/sec-tracker)" "750 root sec-tracker"
eq "shipper.sock 0660 sec-tracker:sec-tracker" "$(in_c stat -c '%a %U %G' /run/sec-tracker-shipper/shipper.sock)" "660 sec-tracker sec-tracker"
delivered() { in_c sh -c 'test -s /var/lib/st-test-server/received.tsv'; }
for _ in $(seq 300); do delivered && break; sleep 0.1; done
check "events reach the management server" delivered

# ---- a member of the readers' group, across restarts of either unit ----------------------------
in_c useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin -G sec-tracker st-reader
as_member() { in_c setpriv --reuid=st-reader --regid=st-reader --init-groups "$@"; }
member_status() {
  local out; out=$(as_member /usr/local/bin/sec-trackerctl status 2>&1) || return 1
  printf '%s' "$out" | grep -q '^collectord: running' && printf '%s' "$out" | grep -qE '^shipperd: (idle|sending)'
}
wait_member_status() { for _ in $(seq 100); do member_status && return 0; sleep 0.1; done; return 1; }
check "member: status shows both daemons" wait_member_status
in_c systemctl restart sec-tracker-collectord
check "member: status after collectord restarted" wait_member_status
in_c systemctl restart sec-tracker-shipperd
check "member: status after shipperd restarted" wait_member_status
check "member: cannot read the API key" fails as_member cat /etc/sec-tracker/api-key
check "member: cannot add a name in /run/sec-tracker (where collector.sock lives)" \
  fails as_member sh -c ": > /run/sec-tracker/collector.sock.x"
check "member: cannot add a name in /run/sec-tracker-shipper" \
  fails as_member sh -c ": > /run/sec-tracker-shipper/x"

# ---- a systemd host's ordinary life: services and sessions raise no CRITICAL ---------------------
received=/var/lib/st-test-server/received.tsv
before=$(in_c sh -c "wc -l < $received")
in_c systemd-run --quiet --wait -p DynamicUser=yes /bin/true
in_c systemd-run --quiet --wait -p User=st-reader /bin/true
in_c systemctl restart systemd-logind
in_c su -s /bin/sh st-reader -c true
in_c runuser -u st-reader -- /bin/true
in_c systemctl daemon-reload
marker="st-quiet-end-$$"
# (A file as the marker: the connector names processes by the host's pids, which this
# container's /proc does not show, so a process's command line cannot be read in here.)
in_c sh -c "echo end > /var/log/$marker"
for _ in $(seq 200); do in_c grep -q "$marker" "$received" && break; sleep 0.1; done
check "the day's last event reached the server" in_c grep -q "$marker" "$received"
if ! in_c grep -q "$marker" "$received"; then
  in_c /usr/local/bin/sec-trackerctl status 2>&1 | sed 's/^/   | /'
  in_c tail -n 3 "$received" | cut -c1-400 | sed 's/^/   | /'
fi
in_c tail -n "+$((before + 1))" "$received" >"$WORK/quiet.tsv"
criticals=$(grep -c '"severity":"CRITICAL"' "$WORK/quiet.tsv")
warnings_seen=$(grep -c '"severity":"WARNING"' "$WORK/quiet.tsv")
grep '"severity":"\(CRITICAL\|WARNING\)"' "$WORK/quiet.tsv" | grep -o '"message":"[^"]*"' | sed 's/^/   | /'
eq "services and sessions started under systemd raise no CRITICAL ($warnings_seen WARNING of $(wc -l < "$WORK/quiet.tsv") events)" "$criticals" 0

# ---- stop: sockets removed, nothing warned from start to stop ----------------------------------
in_c systemctl stop sec-tracker-shipperd sec-tracker-collectord
check "collector.sock removed at stop" fails in_c test -e /run/sec-tracker/collector.sock
check "shipper.sock removed at stop" fails in_c test -e /run/sec-tracker-shipper/shipper.sock
in_c journalctl --no-pager -b -o cat -u sec-tracker-collectord -u sec-tracker-shipperd >"$WORK/journal.txt" 2>&1
# The daemons log natively to the journal: priorities are real, so -p warning is the check.
warnings=$(in_c journalctl --no-pager -b -o cat -p warning -u sec-tracker-collectord -u sec-tracker-shipperd 2>&1)
check "no warning or error from either daemon, start to stop${warnings:+: $(printf '%s' "$warnings" | head -n 3 | tr '\n' '|')}" \
  test -z "$warnings"
check "the journal has their logs" grep -q "collectord stopped" "$WORK/journal.txt"
infos=$(in_c journalctl --no-pager -b -o cat -p info..info -u sec-tracker-collectord 2>&1)
check "an info line is PRIORITY=6 and carries no timestamp or level of its own" \
  sh -c "printf '%s\n' \"\$1\" | grep -qx 'collectord stopped'" _ "$infos"
eq "collectord's lines are tagged with its name (SYSLOG_IDENTIFIER)" \
  "$(in_c journalctl --no-pager -b -u sec-tracker-collectord -o cat --output-fields=SYSLOG_IDENTIFIER -g "collectord stopped" -n 1 2>&1)" \
  "collectord"

# ---- a warning reaches the journal as a warning, with its fields ---------------------------------
# The server gone, shipperd cannot deliver: `journalctl -p warning` must show why.
in_c systemctl stop st-test-server
in_c systemctl start sec-tracker-collectord sec-tracker-shipperd
in_c sh -c "echo journal > /var/log/st-journal-test-$$"
shipper_warned() { in_c journalctl --no-pager -b -o cat -p warning -u sec-tracker-shipperd | grep -q "batch not delivered"; }
for _ in $(seq 300); do shipper_warned && break; sleep 0.1; done
check "journalctl -p warning -u sec-tracker-shipperd shows the failed delivery" shipper_warned
in_c journalctl --no-pager -b -o verbose -p warning -u sec-tracker-shipperd -g "batch not delivered" -n 1 >"$WORK/warning.txt" 2>&1
sed -n 's/^ *\(PRIORITY\|SYSLOG_IDENTIFIER\|MESSAGE\|ST_[A-Z_]*\)=/   | \1=/p' "$WORK/warning.txt"
check "the warning is PRIORITY=4" grep -q "^ *PRIORITY=4$" "$WORK/warning.txt"
check "its fields are journal fields (ST_REASON, ST_ATTEMPTS)" \
  sh -c "grep -q '^ *ST_REASON=.' '$WORK/warning.txt' && grep -q '^ *ST_ATTEMPTS=[0-9]' '$WORK/warning.txt'"
check "SYSLOG_IDENTIFIER=shipperd" grep -q "^ *SYSLOG_IDENTIFIER=shipperd$" "$WORK/warning.txt"
in_c systemctl stop sec-tracker-shipperd sec-tracker-collectord
