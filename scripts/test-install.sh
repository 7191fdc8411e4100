#!/usr/bin/env bash
# A real test of scripts/install.sh and scripts/uninstall.sh on this machine (run as root; it
# installs, starts, inspects and removes sec-tracker, and leaves the machine as it found it, also
# on failure). Prints one `ok` / `FAIL` (or `skip`) line per check and ends with
# `N passed, M failed`; exits non-zero when a check failed.
#
#   scripts/test-install.sh [--bin-dir DIR]    (DIR is passed to install.sh)
#
# It refuses to run where sec-tracker is already installed. State that local mode left in
# /var/lib/sec-tracker is kept aside and put back at the end. A pre-existing group sec-tracker (CI
# creates one for the cargo tests) is allowed: uninstall.sh removes it, and it is re-created with
# its old gid at the end.
set -uo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
INSTALL=$REPO/scripts/install.sh
UNINSTALL=$REPO/scripts/uninstall.sh
INSTALL_ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) INSTALL_ARGS+=(--bin-dir "${2:?--bin-dir needs a directory}"); shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-install.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "test-install.sh: run as root" >&2; exit 2; }
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

BIN=/usr/local/bin
CTL=$BIN/sec-trackerctl
CONFIG=/etc/sec-tracker/config.json
API_KEY=/etc/sec-tracker/api-key
RUN=/run/sec-tracker
SRUN=/run/sec-tracker-shipper
PIDS=/run/sec-tracker-install
STATE=/var/lib/sec-tracker
LOGS=/var/log/sec-tracker
UNITS=(/etc/systemd/system/sec-tracker-collectord.service /etc/systemd/system/sec-tracker-shipperd.service)
PROFILES=(/etc/apparmor.d/usr.local.bin.collectord /etc/apparmor.d/usr.local.bin.shipperd /etc/apparmor.d/usr.local.bin.sec-trackerctl)
MANS=(/usr/local/share/man/man1/sec-trackerctl.1 /usr/local/share/man/man1/sec-trackerctl-watch.1
      /usr/local/share/man/man8/collectord.8 /usr/local/share/man/man8/shipperd.8)
COMPLETIONS=(/usr/local/share/bash-completion/completions/sec-trackerctl
             /usr/local/share/zsh/site-functions/_sec-trackerctl
             /usr/local/share/fish/vendor_completions.d/sec-trackerctl.fish)
OUTSIDER=st-outsider

for p in $BIN/collectord $BIN/shipperd $CTL /etc/sec-tracker "${UNITS[@]}"; do
  if [ -e "$p" ]; then echo "test-install.sh: $p exists: sec-tracker is installed here; refusing to test over it" >&2; exit 2; fi
done
if getent passwd sec-tracker >/dev/null; then
  echo "test-install.sh: user sec-tracker exists: sec-tracker is installed here; refusing" >&2; exit 2
fi

passed=0
failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
skip() { echo "skip $*"; }
# check DESCRIPTION COMMAND...
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
quiet() { "$@" >/dev/null 2>&1; }
# eq DESCRIPTION ACTUAL EXPECTED
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi; }

# Local mode (`sudo sec-trackerctl watch` with no daemons) keeps its file baseline and auth log
# positions under $STATE without anything being installed: that state is renamed aside (same
# file system) while the test installs and purges, and put back at the end. Before the EXIT trap,
# so that a failed rename exits without purging anything.
STATE_SAVED=
if [ -e "$STATE" ]; then
  mv -T "$STATE" "$STATE.test-install.$$" || { echo "test-install.sh: cannot move $STATE aside" >&2; exit 2; }
  STATE_SAVED=$STATE.test-install.$$
fi
WORK=$(mktemp -d /tmp/sec-tracker-test-install.XXXXXX)
chmod 755 "$WORK"
GROUP_BEFORE=$(getent group sec-tracker | cut -d: -f3)
GROUP_MEMBERS=$(getent group sec-tracker | cut -d: -f4)
OUTSIDER_CREATED=0
DAEMON_PIDS=()
FINISHED=0

finish() {
  [ "$FINISHED" = 1 ] && return
  FINISHED=1
  # Whatever is left: the daemons this test started (by pid), the installation, the outsider.
  for pid in "${DAEMON_PIDS[@]}"; do
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      $BIN/collectord* | $BIN/shipperd*) kill -KILL "$pid" 2>/dev/null ;;
    esac
  done
  if [ -e $BIN/collectord ] || [ -e /etc/sec-tracker ] || [ -e $STATE ] || getent passwd sec-tracker >/dev/null; then
    "$UNINSTALL" --purge >/dev/null 2>&1 || echo "cleanup: uninstall.sh --purge failed" >&2
  fi
  [ "$OUTSIDER_CREATED" = 1 ] && userdel "$OUTSIDER" 2>/dev/null
  [ "${MEMBER_CREATED:-0}" = 1 ] && userdel st-reader 2>/dev/null
  if [ -n "$STATE_SAVED" ] && ! { [ ! -e "$STATE" ] && mv -T "$STATE_SAVED" "$STATE"; }; then
    echo "cleanup: could not put local mode's state back in $STATE; it is kept in $STATE_SAVED" >&2
  fi
  if [ -n "$GROUP_BEFORE" ] && ! getent group sec-tracker >/dev/null; then
    groupadd --system -g "$GROUP_BEFORE" sec-tracker 2>/dev/null || groupadd --system sec-tracker
    [ -n "$GROUP_MEMBERS" ] && gpasswd -M "$GROUP_MEMBERS" sec-tracker >/dev/null
  fi
  rm -rf "$WORK"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
trap 'finish; exit $?' EXIT
trap 'bad "interrupted"; exit 1' INT TERM

systemd_is_init() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }
daemon_pid() {
  if systemd_is_init; then
    local p; p=$(systemctl show -P MainPID "sec-tracker-$1.service" 2>/dev/null); [ "${p:-0}" != 0 ] && echo "$p"
  else
    cat "$PIDS/$1.pid" 2>/dev/null
  fi
}
status_field() { awk -v k="$2:" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status" 2>/dev/null; }
CAP_NAMES=(chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap linux_immutable
  net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner sys_module sys_rawio sys_chroot
  sys_ptrace sys_pacct sys_admin sys_boot sys_nice sys_resource sys_time sys_tty_config mknod lease
  audit_write audit_control setfcap mac_override mac_admin syslog wake_alarm block_suspend audit_read
  perfmon bpf checkpoint_restore)
decode_caps() {
  local v=$((16#$1)) i names=()
  for i in "${!CAP_NAMES[@]}"; do if (( (v >> i) & 1 )); then names+=("${CAP_NAMES[i]}"); fi; done
  if [ ${#names[@]} = 0 ]; then echo none; else echo "${names[*]}"; fi
}
# cap_check PID SET EXPECTED_HEX
cap_check() {
  local got; got=$(status_field "$1" "$2")
  if [ "$got" = "$3" ]; then ok "$4 $2 = $3 ($(decode_caps "$3"))"
  else bad "$4 $2 = ${got:-?} ($(decode_caps "${got:-0}")), expected $3 ($(decode_caps "$3"))"; fi
}
as_user() { local u=$1; shift; (cd / && setpriv --reuid="$u" --regid="$u" --init-groups "$@"); }
# The installed state that a second install.sh must leave exactly as it is.
snapshot() {
  local p
  for p in $BIN/collectord $BIN/shipperd $CTL /usr/local/share/doc/sec-tracker/README.md /etc/sec-tracker \
           $CONFIG $API_KEY $STATE $STATE/collectord $STATE/shipperd $RUN $SRUN $PIDS $LOGS "${UNITS[@]}" "${PROFILES[@]}" \
           "${MANS[@]}" "${COMPLETIONS[@]}"; do
    if [ -e "$p" ]; then
      stat -c '%n %F %a %U %G %i' "$p"
      if [ -f "$p" ]; then sha256sum "$p"; fi
    else
      echo "$p absent"
    fi
  done
  getent passwd sec-tracker; getent group sec-tracker
  echo "collectord pid $(daemon_pid collectord)"; echo "shipperd pid $(daemon_pid shipperd)"
}

echo "== install (no --start)"
out=$("$INSTALL" "${INSTALL_ARGS[@]}" 2>&1); rc=$?
printf '%s\n' "$out" >"$WORK/first-install.out"
printf '%s\n' "$out" | sed 's/^/   | /'
eq "install.sh exits 0" "$rc" 0
[ "$rc" = 0 ] || exit 1
eq "config created 0640 root:sec-tracker" "$(stat -c '%a %U %G' $CONFIG 2>&1)" "640 root sec-tracker"
eq "/etc/sec-tracker is 0750 root:sec-tracker" "$(stat -c '%a %U %G' /etc/sec-tracker 2>&1)" "750 root sec-tracker"
eq "the API key file is the shipper's alone, 0600" "$(stat -c '%a %U %G' $API_KEY 2>&1)" "600 sec-tracker sec-tracker"
check "the config holds no API key" sh -c "! grep -q '\"api_key\"' $CONFIG"
check "the default config is valid (config-check)" quiet $CTL config-check --config $CONFIG

echo "== point shipperd at a (closed) local server; the config file is edited in place, the key written to its file"
new=$(sed -e 's|"url": ""|"url": "http://127.0.0.1:9"|' -e 's|"enable_tls": true|"enable_tls": false|' $CONFIG)
printf '%s\n' "$new" >$CONFIG
printf 'st-test-key\n' >$API_KEY
check "edited config is valid and names the server" sh -c "$CTL config-check --config $CONFIG | grep -q 127.0.0.1:9"

echo "== install --start (with SEC_TRACKER_API_KEY in the environment: it must reach shipperd only)"
out=$(SEC_TRACKER_API_KEY=st-env-key-x "$INSTALL" "${INSTALL_ARGS[@]}" --start 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
eq "install.sh --start exits 0" "$rc" 0
check "the edited config was not overwritten" grep -q 127.0.0.1:9 $CONFIG

echo "== user"
IFS=: read -r _ _ ST_UID ST_GID _ ST_HOME ST_SHELL <<<"$(getent passwd sec-tracker)"
check "user sec-tracker exists" test -n "${ST_UID:-}"
check "sec-tracker is a system user (uid $ST_UID < 1000), not root" test "${ST_UID:-0}" -gt 0 -a "${ST_UID:-0}" -lt 1000
eq "its primary group is sec-tracker" "$(getent group "${ST_GID:-x}" | cut -d: -f1)" sec-tracker
check "no login shell ($ST_SHELL)" sh -c "case '$ST_SHELL' in */nologin|*/false) true;; *) false;; esac"
check "no home directory ($ST_HOME)" test ! -e "${ST_HOME:-/nonexistent}"

echo "== collectord"
cpid=""
for _ in $(seq 200); do
  cpid=$(daemon_pid collectord || true)
  [ -n "$cpid" ] && [ -S $RUN/collector.sock ] && break
  sleep 0.1
done
check "collectord runs and its socket is up (within 20 s)" test -n "$cpid" -a -S $RUN/collector.sock
if [ -n "$cpid" ]; then
  DAEMON_PIDS+=("$cpid")
  eq "collectord is $BIN/collectord" "$(readlink "/proc/$cpid/exe")" "$BIN/collectord"
  eq "collectord runs as root" "$(status_field "$cpid" Uid)" "0 0 0 0"
  # What it keeps running: DAC_READ_SEARCH=2 SYS_PTRACE=19 (NET_ADMIN, SYS_ADMIN, SYS_NICE, CHOWN and
  # SETPCAP are used at start only).
  mask=0
  for bit in 2 19; do mask=$((mask | (1 << bit))); done
  want=$(printf '%016x' "$mask")
  for set in CapEff CapPrm CapBnd; do cap_check "$cpid" "$set" "$want" collectord; done
  for set in CapInh CapAmb; do cap_check "$cpid" "$set" 0000000000000000 collectord; done
  eq "collectord has no_new_privs" "$(status_field "$cpid" NoNewPrivs)" 1
  check "collectord's environment holds no API key" sh -c "! tr '\\0' '\\n' < /proc/$cpid/environ | grep -q SEC_TRACKER_API_KEY"
fi

echo "== shipperd"
spid=""
for _ in $(seq 200); do
  spid=$(daemon_pid shipperd || true)
  [ -n "$spid" ] && [ -S $SRUN/shipper.sock ] && break
  sleep 0.1
done
check "shipperd runs and its socket is up (within 20 s)" test -n "$spid" -a -S $SRUN/shipper.sock
if [ -n "$spid" ]; then
  DAEMON_PIDS+=("$spid")
  eq "shipperd is $BIN/shipperd" "$(readlink "/proc/$spid/exe")" "$BIN/shipperd"
  eq "shipperd runs as sec-tracker (uid $ST_UID)" "$(status_field "$spid" Uid)" "$ST_UID $ST_UID $ST_UID $ST_UID"
  eq "shipperd's groups are sec-tracker only" "$(status_field "$spid" Gid) / $(status_field "$spid" Groups)" \
     "$ST_GID $ST_GID $ST_GID $ST_GID / $ST_GID"
  for set in CapEff CapPrm CapBnd CapInh CapAmb; do cap_check "$spid" "$set" 0000000000000000 shipperd; done
  eq "shipperd has no_new_privs" "$(status_field "$spid" NoNewPrivs)" 1
fi

echo "== sockets, config, state"
eq "collector.sock 0660, group sec-tracker" "$(stat -c '%a %G' $RUN/collector.sock 2>&1)" "660 sec-tracker"
eq "shipper.sock 0660, group sec-tracker" "$(stat -c '%a %G' $SRUN/shipper.sock 2>&1)" "660 sec-tracker"
eq "$RUN (collectord's) is 0750 root:sec-tracker" "$(stat -c '%a %U %G' $RUN 2>&1)" "750 root sec-tracker"
eq "$SRUN (shipperd's) is 0750 sec-tracker:sec-tracker" "$(stat -c '%a %U %G' $SRUN 2>&1)" "750 sec-tracker sec-tracker"
eq "$PIDS (pid files) is 0700 root:root" "$(stat -c '%a %U %G' $PIDS 2>&1)" "700 root root"
eq "$STATE/collectord is 0700 root" "$(stat -c '%a %U' $STATE/collectord 2>&1)" "700 root"
eq "$STATE/shipperd is 0700 sec-tracker" "$(stat -c '%a %U %G' $STATE/shipperd 2>&1)" "700 sec-tracker sec-tracker"
eq "the queue is sec-tracker's, 0600" "$(stat -c '%a %U' $STATE/shipperd/queue.db 2>&1)" "600 sec-tracker"
eq "config still 0640 root:sec-tracker" "$(stat -c '%a %U %G' $CONFIG 2>&1)" "640 root sec-tracker"

echo "== it works"
check "sec-trackerctl status (root) exits 0" quiet $CTL status
check "sec-trackerctl status as user sec-tracker (a group member) exits 0" quiet as_user sec-tracker $CTL status
tag=st-install-$$-$RANDOM
timeout 15 $CTL watch --json --type process >"$WORK/watch.json" 2>"$WORK/watch.err" &
wpid=$!
seen=0
for _ in $(seq 100); do
  sh -c "true $tag" 2>/dev/null
  if grep -q "$tag" "$WORK/watch.json" 2>/dev/null; then seen=1; break; fi
  sleep 0.1
done
kill "$wpid" 2>/dev/null; wait "$wpid" 2>/dev/null
check "collectord streams a process exec to sec-trackerctl watch" test "$seen" = 1
eq "the seed's name: sec-tracker -version" "$($BIN/sec-tracker -version 2>&1 | cut -d' ' -f1)" "sec-trackerctl"
check "the seed's form: sec-tracker -local -oneshot -json prints the snapshot" \
  sh -c "$BIN/sec-tracker -local -oneshot -json -config $CONFIG | grep -q '\"hostname\":'"

echo "== man pages and completions"
if command -v man >/dev/null; then
  # Debian links /usr/local/man to share/man, and man -w may name either.
  eq "man -w sec-trackerctl finds the installed page" "$(readlink -f "$(man -w sec-trackerctl 2>&1)")" /usr/local/share/man/man1/sec-trackerctl.1
  check "man sec-trackerctl-watch documents --json" sh -c "MANWIDTH=100 man sec-trackerctl-watch 2>/dev/null | grep -q -- '--json'"
  check "man 8 collectord documents --socket" sh -c "MANWIDTH=100 man 8 collectord 2>/dev/null | grep -q -- '--socket'"
  check "man 8 shipperd documents --allow-root" sh -c "MANWIDTH=100 man 8 shipperd 2>/dev/null | grep -q -- '--allow-root'"
else
  for m in "${MANS[@]}"; do check "installed: $m" test -s "$m"; done
fi
# What bash offers after `sec-trackerctl wat<TAB>` and `sec-trackerctl watch --js<TAB>`.
complete_bash() {
  bash -c 'source /usr/local/share/bash-completion/completions/sec-trackerctl
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    fn=$(complete -p sec-trackerctl | sed "s/.*-F \([^ ]*\).*/\1/")
    "$fn" sec-trackerctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
eq "bash completes 'sec-trackerctl wat' to watch" "$(complete_bash sec-trackerctl wat)" watch
eq "bash completes 'sec-trackerctl watch --js' to --json" "$(complete_bash sec-trackerctl watch --js)" --json
check "zsh and fish completions installed" test -s "${COMPLETIONS[1]}" -a -s "${COMPLETIONS[2]}"

echo "== a user outside the group"
if getent passwd $OUTSIDER >/dev/null; then
  skip "user $OUTSIDER already exists; using it"
else
  useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin $OUTSIDER && OUTSIDER_CREATED=1
fi
echo '{}' >"$WORK/outsider.json"; chmod 644 "$WORK/outsider.json"
out=$(as_user $OUTSIDER $CTL --config "$WORK/outsider.json" --socket $RUN/collector.sock status 2>&1); rc=$?
check "outsider: sec-trackerctl status fails (rc $rc: $(printf '%s' "$out" | head -n1))" \
  sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -qi 'permission denied\|not authorised'" _ "$out"
out=$(as_user $OUTSIDER timeout 5 $CTL --config "$WORK/outsider.json" --socket $RUN/collector.sock watch --json 2>/dev/null); rc=$?
check "outsider: sec-trackerctl watch gets no event (rc $rc)" test "$rc" -ne 0 -a -z "$out"
check "outsider: cannot read the config" sh -c "! setpriv --reuid=$OUTSIDER --regid=$OUTSIDER --init-groups cat $CONFIG >/dev/null 2>&1"
check "outsider: cannot read the queue" sh -c "! setpriv --reuid=$OUTSIDER --regid=$OUTSIDER --init-groups head -c1 $STATE/shipperd/queue.db >/dev/null 2>&1"
check "outsider: cannot list the queue directory" sh -c "! setpriv --reuid=$OUTSIDER --regid=$OUTSIDER --init-groups ls $STATE/shipperd >/dev/null 2>&1"
check "outsider: cannot reach the shipper socket" sh -c "! setpriv --reuid=$OUTSIDER --regid=$OUTSIDER --init-groups test -e $SRUN/shipper.sock"

echo "== a member of the readers' group (not the shipper)"
MEMBER=st-reader
MEMBER_CREATED=0
if ! getent passwd $MEMBER >/dev/null; then
  useradd --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin -G sec-tracker $MEMBER && MEMBER_CREATED=1
fi
check "member: sec-trackerctl status works" quiet as_user $MEMBER $CTL status
check "member: can read the config" quiet as_user $MEMBER cat $CONFIG
check "member: cannot read the API key" sh -c "! setpriv --reuid=$MEMBER --regid=$MEMBER --init-groups cat $API_KEY >/dev/null 2>&1"
check "member: cannot create a name in collectord's runtime directory" \
  sh -c "! setpriv --reuid=$MEMBER --regid=$MEMBER --init-groups sh -c ': > $RUN/planted' 2>/dev/null"
check "member: cannot plant a link where install.sh writes pid files" \
  sh -c "! setpriv --reuid=$MEMBER --regid=$MEMBER --init-groups ln -s /etc/passwd $PIDS/collectord.pid 2>/dev/null"
check "member: cannot remove shipperd's socket" \
  sh -c "! setpriv --reuid=$MEMBER --regid=$MEMBER --init-groups rm -f $SRUN/shipper.sock 2>/dev/null && test -S $SRUN/shipper.sock"
[ "$MEMBER_CREATED" = 1 ] && userdel $MEMBER 2>/dev/null

echo "== a second install changes nothing"
# Without --bin-dir it takes the binaries from cargo's target directory, which CARGO_TARGET_DIR
# moves: a copy of the same release binaries under a relative CARGO_TARGET_DIR must be the one used.
SECOND_ENV=()
if [ ${#INSTALL_ARGS[@]} = 0 ]; then
  from=$(sed -n 's/^binaries from //p' "$WORK/first-install.out")
  mkdir -p "$WORK/alt-target/release"
  cp -p "$from/collectord" "$from/shipperd" "$from/sec-trackerctl" "$WORK/alt-target/release/"
  SECOND_ENV=(CARGO_TARGET_DIR=alt-target)
fi
snapshot >"$WORK/before"
out=$(cd "$WORK" && env "${SECOND_ENV[@]}" "$INSTALL" "${INSTALL_ARGS[@]}" --start 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
snapshot >"$WORK/after"
eq "second install.sh --start exits 0" "$rc" 0
if [ ${#INSTALL_ARGS[@]} = 0 ]; then
  check "it took the binaries from \$CARGO_TARGET_DIR/release" \
    sh -c "printf '%s\n' \"\$1\" | grep -qx 'binaries from $WORK/alt-target/release'" _ "$out"
fi
check "it reports 0 changed" sh -c "printf '%s\n' \"\$1\" | grep -q 'sec-tracker install: 0 changed'" _ "$out"
if diff "$WORK/before" "$WORK/after" >"$WORK/diff"; then
  ok "installed files (content, mode, owner, inode), user, group and daemon pids are identical"
else
  bad "the second install changed: $(tr '\n' ' ' <"$WORK/diff")"
fi

echo "== static checks of what was installed"
if command -v systemd-analyze >/dev/null; then
  out=$(systemd-analyze verify "${UNITS[@]}" 2>&1); rc=$?
  check "systemd-analyze verify on both units (rc $rc${out:+: $out})" test "$rc" = 0 -a -z "$out"
  for u in "${UNITS[@]}"; do
    score=$(systemd-analyze security --offline=yes "$u" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
    echo "     $(basename "$u"): exposure ${score:-?}"
  done
  score=$(systemd-analyze security --offline=yes "${UNITS[1]}" 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  check "shipperd's exposure ${score:-?} <= 2.0" awk -v s="${score:-99}" 'BEGIN { exit !(s <= 2.0) }'
else
  skip "systemd-analyze not installed (apt-get install systemd): units not verified"
fi
if command -v apparmor_parser >/dev/null; then
  for p in "${PROFILES[@]}"; do
    apparmor_parser -Q -K "$p" >"$WORK/aa.out" 2>&1; rc=$?
    out=$(grep -v 'Cache read/write disabled' "$WORK/aa.out")
    check "apparmor_parser -Q -K $(basename "$p")${out:+: $out}" test "$rc" = 0
  done
else
  skip "apparmor_parser not installed (apt-get install apparmor): profiles not compiled"
fi

echo "== uninstall"
out=$("$UNINSTALL" 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
eq "uninstall.sh exits 0" "$rc" 0
for p in $BIN/collectord $BIN/shipperd $CTL $BIN/sec-tracker "${UNITS[@]}" "${PROFILES[@]}" $RUN $SRUN $PIDS \
         "${MANS[@]}" "${COMPLETIONS[@]}"; do
  check "removed: $p" test ! -e "$p"
done
check "user sec-tracker removed" sh -c '! getent passwd sec-tracker >/dev/null'
check "group sec-tracker removed" sh -c '! getent group sec-tracker >/dev/null'
for pid in ${cpid:-} ${spid:-}; do check "daemon pid $pid stopped" test ! -d "/proc/$pid"; done
check "config kept" test -f $CONFIG
check "queue kept" test -f $STATE/shipperd/queue.db
check "collectord's state kept" test -d $STATE/collectord

echo "== uninstall --purge"
out=$("$UNINSTALL" --purge 2>&1); rc=$?
eq "uninstall.sh --purge exits 0" "$rc" 0
for p in /etc/sec-tracker $STATE $LOGS; do check "purged: $p" test ! -e "$p"; done
