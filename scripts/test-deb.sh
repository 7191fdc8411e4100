#!/usr/bin/env bash
# A real test of the .deb on this machine (run as root; sec-tracker must not be installed):
# dpkg -i, what it put where (binaries, the seed's name, man pages, completions, user, config,
# key and state modes), a second dpkg -i over an edited config (kept, nothing else changed), then
# dpkg --purge and nothing of it left. Without systemd as PID 1 the units are installed, not
# started (the units themselves are tested by scripts/test-systemd.sh).
# Prints one `ok` / `FAIL` line per check, then `N passed, M failed`; exits non-zero on a failure.
#
#   scripts/test-deb.sh [--deb FILE]    (default: build it with scripts/build-deb.sh)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DEB=""
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) DEB=${2:?--deb needs a file}; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-deb.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "test-deb.sh: run as root" >&2; exit 2; }
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

BIN=/usr/local/bin
CONFIG=/etc/sec-tracker/config.json
API_KEY=/etc/sec-tracker/api-key
STATE=/var/lib/sec-tracker
for p in $BIN/collectord $BIN/shipperd $BIN/sec-trackerctl /etc/sec-tracker; do
  if [ -e "$p" ]; then echo "test-deb.sh: $p exists: sec-tracker is installed here; refusing" >&2; exit 2; fi
done
if getent passwd sec-tracker >/dev/null; then
  echo "test-deb.sh: user sec-tracker exists: sec-tracker is installed here; refusing" >&2; exit 2
fi
if [ -z "$DEB" ]; then
  DEB=$("$REPO/scripts/build-deb.sh" | tail -n 1) || { echo "test-deb.sh: build-deb.sh failed" >&2; exit 2; }
fi
[ -f "$DEB" ] || { echo "test-deb.sh: no .deb at $DEB" >&2; exit 2; }

passed=0
failed=0
ok() { passed=$((passed + 1)); echo "ok    $1"; }
bad() { failed=$((failed + 1)); echo "FAIL  $1"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi; }
WORK=$(mktemp -d /tmp/sec-tracker-test-deb.XXXXXX)
# The group the cargo tests use is removed by the purge; put it back as it was found.
group_existed=0
getent group sec-tracker >/dev/null && group_existed=1
finish() {
  if dpkg -s sec-tracker >/dev/null 2>&1; then dpkg --purge sec-tracker >/dev/null 2>&1; fi
  if [ "$group_existed" = 1 ] && ! getent group sec-tracker >/dev/null; then groupadd --system sec-tracker; fi
  rm -rf "$WORK"
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
trap 'finish; exit $?' EXIT

# What a second dpkg -i must leave as it is.
snapshot() {
  local p
  for p in $BIN/collectord $BIN/shipperd $BIN/sec-trackerctl $BIN/sec-tracker /etc/sec-tracker $CONFIG \
           $API_KEY $STATE $STATE/collectord $STATE/shipperd; do
    if [ -e "$p" ]; then stat -c '%n %F %a %U %G' "$p"; else echo "$p absent"; fi
  done
  getent passwd sec-tracker; getent group sec-tracker
}

echo "== dpkg -i $(basename "$DEB")"
out=$(dpkg -i "$DEB" 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
eq "dpkg -i exits 0" "$rc" 0
eq "dpkg says it is installed" "$(dpkg-query -W -f '${Status}' sec-tracker 2>&1)" "install ok installed"
for b in collectord shipperd sec-trackerctl; do
  eq "$BIN/$b is 0755 root" "$(stat -c '%a %U' $BIN/$b 2>&1)" "755 root"
done
eq "the seed's name is a link to sec-trackerctl" "$(readlink $BIN/sec-tracker)" sec-trackerctl
eq "sec-tracker -version runs sec-trackerctl" "$($BIN/sec-tracker -version 2>&1 | cut -d' ' -f1)" sec-trackerctl
check "sec-tracker -local -oneshot -json prints the snapshot" \
  sh -c "$BIN/sec-tracker -local -oneshot -json -config $CONFIG | grep -q '\"hostname\":'"
check "user sec-tracker: system user, no login shell" \
  sh -c 'getent passwd sec-tracker | grep -q ":/usr/sbin/nologin$"'
eq "config 0640 root:sec-tracker" "$(stat -c '%a %U %G' $CONFIG 2>&1)" "640 root sec-tracker"
eq "/etc/sec-tracker 0750 root:sec-tracker" "$(stat -c '%a %U %G' /etc/sec-tracker 2>&1)" "750 root sec-tracker"
eq "the API key file is the shipper's alone, 0600" "$(stat -c '%a %U %G' $API_KEY 2>&1)" "600 sec-tracker sec-tracker"
eq "collectord's state 0700 root" "$(stat -c '%a %U' $STATE/collectord 2>&1)" "700 root"
eq "shipperd's state 0700 sec-tracker" "$(stat -c '%a %U' $STATE/shipperd 2>&1)" "700 sec-tracker"
check "the packaged config is valid (config-check)" sh -c "$BIN/sec-trackerctl config-check --config $CONFIG >/dev/null"
for u in sec-tracker-collectord.service sec-tracker-shipperd.service; do
  check "unit $u installed" test -s "/lib/systemd/system/$u"
done
if command -v man >/dev/null; then
  eq "man -w sec-trackerctl finds the packaged page" "$(man -w sec-trackerctl 2>&1)" /usr/share/man/man1/sec-trackerctl.1.gz
  check "man 8 shipperd documents --allow-root" sh -c "MANWIDTH=100 man 8 shipperd 2>/dev/null | grep -q -- '--allow-root'"
  check "man sec-trackerctl-watch documents --json" sh -c "MANWIDTH=100 man sec-trackerctl-watch 2>/dev/null | grep -q -- '--json'"
fi
complete_bash() {
  bash -c 'source /usr/share/bash-completion/completions/sec-trackerctl
    COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
    fn=$(complete -p sec-trackerctl | sed "s/.*-F \([^ ]*\).*/\1/")
    "$fn" sec-trackerctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"' _ "$@"
}
eq "bash completes 'sec-trackerctl watch --js' to --json" "$(complete_bash sec-trackerctl watch --js)" --json

echo "== the operator edits the config; dpkg -i again"
sed -i 's|"url": ""|"url": "https://127.0.0.1:9"|' $CONFIG
snapshot >"$WORK/before"
out=$(dpkg -i "$DEB" 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
snapshot >"$WORK/after"
eq "second dpkg -i exits 0" "$rc" 0
check "the edited config is kept" grep -q 127.0.0.1:9 $CONFIG
if diff "$WORK/before" "$WORK/after" >"$WORK/diff"; then
  ok "files, modes, owners, user and group unchanged"
else
  bad "the second dpkg -i changed: $(tr '\n' ' ' <"$WORK/diff")"
fi

echo "== dpkg --purge"
out=$(dpkg --purge sec-tracker 2>&1); rc=$?
printf '%s\n' "$out" | sed 's/^/   | /'
eq "dpkg --purge exits 0" "$rc" 0
for p in $BIN/collectord $BIN/shipperd $BIN/sec-trackerctl $BIN/sec-tracker /etc/sec-tracker $STATE \
         /usr/share/man/man1/sec-trackerctl.1.gz /usr/share/bash-completion/completions/sec-trackerctl \
         /lib/systemd/system/sec-tracker-collectord.service /etc/apparmor.d/usr.local.bin.collectord; do
  check "gone: $p" test ! -e "$p" -a ! -L "$p"
done
check "user sec-tracker removed" sh -c '! getent passwd sec-tracker >/dev/null'
check "dpkg no longer knows it" sh -c '! dpkg -s sec-tracker >/dev/null 2>&1'
