#!/usr/bin/env bash
# Removes what scripts/install.sh installed (run as root):
#
#   scripts/uninstall.sh [--purge]
#
# Stops the daemons (systemd units, or the ones install.sh --start launched), then removes the
# binaries, the README copy, the man pages and completions, the units, the AppArmor profiles
# (unloaded first where AppArmor is enabled), the runtime directories
# /run/sec-tracker{,-shipper,-install} and the user and group sec-tracker.
# Kept unless --purge: the config /etc/sec-tracker, the state /var/lib/sec-tracker (collectord's
# baseline, shipperd's queue of unsent events) and the logs /var/log/sec-tracker.
set -euo pipefail

PURGE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --purge) PURGE=1; shift ;;
    -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "uninstall.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "uninstall.sh: run as root" >&2; exit 1; }
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

PREFIX=/usr/local/bin
BINARIES=(collectord shipperd sec-trackerctl sec-tracker)
USER_NAME=sec-tracker
RUN_DIRS=(/run/sec-tracker /run/sec-tracker-shipper /run/sec-tracker-install)
PIDS=/run/sec-tracker-install
UNIT_DIR=/etc/systemd/system
UNITS=(sec-tracker-shipperd.service sec-tracker-collectord.service)
AA_DIR=/etc/apparmor.d
PROFILES=(usr.local.bin.collectord usr.local.bin.shipperd usr.local.bin.sec-trackerctl)
DOC_DIR=/usr/local/share/doc/sec-tracker
# What install.sh generated: man pages (and sec-trackerctl-<subcommand>.1 below) and completions.
GENERATED=(/usr/local/share/man/man1/sec-trackerctl.1 /usr/local/share/man/man8/collectord.8
           /usr/local/share/man/man8/shipperd.8 /usr/local/share/bash-completion/completions/sec-trackerctl
           /usr/local/share/zsh/site-functions/_sec-trackerctl
           /usr/local/share/fish/vendor_completions.d/sec-trackerctl.fish)

report() { printf '%-58s %s\n' "$1" "$2"; }
remove() {
  if [ -e "$1" ] || [ -L "$1" ]; then rm -rf -- "$1"; report "$1" "removed"; else report "$1" "absent"; fi
}
systemd_is_init() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }

# --- stop -----------------------------------------------------------------------------------
if systemd_is_init; then
  for u in "${UNITS[@]}"; do
    if [ -e "$UNIT_DIR/$u" ]; then
      systemctl disable --now -q "$u" 2>/dev/null || systemctl stop "$u" 2>/dev/null || true
      report "$u" "stopped and disabled"
    fi
  done
fi
# Daemons started by install.sh --start (pid files), then any other process still running one of
# the installed binaries (matched by its exact executable path, never by name).
stop_pid() {
  local pid=$1 what=$2
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
  if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  report "$what (pid $pid)" "stopped"
}
for d in shipperd collectord; do
  pid=$(cat "$PIDS/$d.pid" 2>/dev/null || true)
  if [ -n "$pid" ]; then
    case "$(readlink "/proc/$pid/exe" 2>/dev/null)" in
      "$PREFIX/$d" | "$PREFIX/$d (deleted)") stop_pid "$pid" "$d" ;;
    esac
  fi
  for exe in /proc/[0-9]*/exe; do
    target=$(readlink "$exe" 2>/dev/null) || continue
    case "$target" in
      "$PREFIX/$d" | "$PREFIX/$d (deleted)") p=${exe#/proc/}; stop_pid "${p%/exe}" "$d" ;;
    esac
  done
done

# --- files ----------------------------------------------------------------------------------
for u in "${UNITS[@]}"; do remove "$UNIT_DIR/$u"; done
if systemd_is_init; then
  systemctl daemon-reload
  systemctl reset-failed "${UNITS[@]}" 2>/dev/null || true
fi
aa_on=0
if [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] && command -v apparmor_parser >/dev/null; then
  aa_on=1
fi
for p in "${PROFILES[@]}"; do
  if [ "$aa_on" = 1 ] && [ -e "$AA_DIR/$p" ]; then
    if apparmor_parser -R "$AA_DIR/$p" 2>/dev/null; then report "AppArmor profile from $p" "unloaded"; fi
  fi
  remove "$AA_DIR/$p"
done
for b in "${BINARIES[@]}"; do remove "$PREFIX/$b"; done
remove "$DOC_DIR"
for f in "${GENERATED[@]}"; do remove "$f"; done
for f in /usr/local/share/man/man1/sec-trackerctl-*.1; do [ -e "$f" ] && remove "$f"; done
for d in "${RUN_DIRS[@]}"; do remove "$d"; done

# --- user and group -------------------------------------------------------------------------
group_existed=$(getent group "$USER_NAME" || true)
if getent passwd "$USER_NAME" >/dev/null; then
  userdel "$USER_NAME"; report "user $USER_NAME" "removed"
else
  report "user $USER_NAME" "absent"
fi
if getent group "$USER_NAME" >/dev/null; then
  groupdel "$USER_NAME"; report "group $USER_NAME" "removed"
elif [ -n "${group_existed:-}" ]; then
  report "group $USER_NAME" "removed (with the user)"
else
  report "group $USER_NAME" "absent"
fi

# --- config, state, logs --------------------------------------------------------------------
if [ "$PURGE" = 1 ]; then
  remove /etc/sec-tracker
  remove /var/lib/sec-tracker
  remove /var/log/sec-tracker
else
  for d in /etc/sec-tracker /var/lib/sec-tracker /var/log/sec-tracker; do
    if [ -e "$d" ]; then report "$d" "kept (remove with --purge)"; fi
  done
fi
echo "sec-tracker uninstalled$( [ "$PURGE" = 1 ] && echo " (purged)")"
