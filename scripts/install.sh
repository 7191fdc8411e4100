#!/usr/bin/env bash
# Installs sec-tracker on this machine (run as root):
#
#   scripts/install.sh [--bin-dir DIR] [--start]
#
#   --bin-dir DIR  take collectord, shipperd and sec-trackerctl from DIR (default: bin/ in an
#                  unpacked release tarball; in a checkout, release/ in cargo's target directory,
#                  ./target or $CARGO_TARGET_DIR, built with `cargo build --release` when one is
#                  missing)
#   --start        without systemd as PID 1: start the daemons in the background (collectord as
#                  root keeping only its capability set, shipperd as user sec-tracker with none),
#                  logging to /var/log/sec-tracker/{collectord,shipperd}.log. Under systemd the
#                  units are enabled and started whatever this flag says.
#
# What it does, each step printing what it changed or "unchanged" (a second run changes nothing):
#   * binaries into /usr/local/bin (and the seed's name, sec-tracker → sec-trackerctl), the README
#     into /usr/local/share/doc/sec-tracker, man pages into /usr/local/share/man (sec-trackerctl(1)
#     and a page per subcommand, collectord(8), shipperd(8)), completions for bash, zsh and fish;
#   * system group and user sec-tracker (no login shell, no home);
#   * /etc/sec-tracker/config.json (0640 root:sec-tracker) from a default template, only when there
#     is none: an existing config is never overwritten; /etc/sec-tracker/api-key (0600, the
#     shipper's: the readers' group can read the config, never the key), created empty;
#   * /var/lib/sec-tracker/collectord (0700 root) and /var/lib/sec-tracker/shipperd (0700
#     sec-tracker): collectord's baseline and shipperd's queue;
#   * the systemd units into /etc/systemd/system; when systemd is PID 1: daemon-reload, enable, start
#     (shipperd only once server.url is set in the config);
#   * the AppArmor profiles into /etc/apparmor.d, loaded (apparmor_parser -r) where AppArmor is
#     enabled in the kernel, else only copied, and said so.
# scripts/uninstall.sh undoes it.
set -euo pipefail
umask 022

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN_DIR=""
START=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) BIN_DIR=${2:?--bin-dir needs a directory}; shift 2 ;;
    --bin-dir=*) BIN_DIR=${1#*=}; shift ;;
    --start) START=1; shift ;;
    -h|--help) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root" >&2; exit 1; }
# cargo reads a relative CARGO_TARGET_DIR from the directory it runs in: make it the caller's.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  case "$CARGO_TARGET_DIR" in /*) ;; *) export CARGO_TARGET_DIR=$PWD/$CARGO_TARGET_DIR ;; esac
fi
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

PREFIX=/usr/local/bin
BINARIES=(collectord shipperd sec-trackerctl)
USER_NAME=sec-tracker
CONF_DIR=/etc/sec-tracker
CONFIG=$CONF_DIR/config.json
API_KEY=$CONF_DIR/api-key
STATE=/var/lib/sec-tracker
# Each daemon's own runtime directory, as the units' RuntimeDirectory=: collectord's root-owned,
# shipperd's its user's, both group sec-tracker (the readers may reach the sockets, not add names).
RUN=/run/sec-tracker
SHIPPER_RUN=/run/sec-tracker-shipper
# The pid files of --start: root's alone, so nobody can plant a link for root to write through.
PIDS=/run/sec-tracker-install
LOGS=/var/log/sec-tracker
UNIT_DIR=/etc/systemd/system
UNITS=(sec-tracker-collectord.service sec-tracker-shipperd.service)
AA_DIR=/etc/apparmor.d
PROFILES=(usr.local.bin.collectord usr.local.bin.shipperd usr.local.bin.sec-trackerctl)
DOC_DIR=/usr/local/share/doc/sec-tracker
MAN_DIR=/usr/local/share/man
BASH_COMPLETIONS=/usr/local/share/bash-completion/completions
ZSH_COMPLETIONS=/usr/local/share/zsh/site-functions
FISH_COMPLETIONS=/usr/local/share/fish/vendor_completions.d
# collectord's start set, as the unit's CapabilityBoundingSet: it keeps the first five and drops
# chown and setpcap itself once its socket exists.
COLLECTORD_BOUNDING=-all,+net_admin,+sys_nice,+sys_ptrace,+dac_read_search,+sys_admin,+chown,+setpcap

changed=0
same=0
report() { printf '%-58s %s\n' "$1" "$2"; }
did() { changed=$((changed + 1)); report "$1" "$2"; }
kept() { same=$((same + 1)); report "$1" "${2:-unchanged}"; }

systemd_is_init() { [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; }
apparmor_enabled() {
  [ "$(cat /sys/module/apparmor/parameters/enabled 2>/dev/null)" = Y ] && command -v apparmor_parser >/dev/null
}

# put_file SRC DEST MODE OWNER GROUP: installs when the content differs, fixes mode/owner.
# Sets PUT_CHANGED=1 when anything changed.
put_file() {
  local src=$1 dest=$2 mode=$3 owner=$4 group=$5
  PUT_CHANGED=0
  if [ -f "$dest" ] && cmp -s "$src" "$dest"; then
    if [ "$(stat -c '%a %U %G' "$dest")" = "$mode $owner $group" ]; then
      kept "$dest"
    else
      chown "$owner:$group" "$dest"; chmod "$mode" "$dest"
      did "$dest" "mode/owner set to $mode $owner:$group"; PUT_CHANGED=1
    fi
    return 0
  fi
  local what=installed
  [ -e "$dest" ] && what=updated
  mkdir -p "$(dirname "$dest")"
  # A new file renamed over the old one: a running binary is replaced, never written into.
  install -m "$mode" -o "$owner" -g "$group" "$src" "$dest.new-$$"
  mv -f "$dest.new-$$" "$dest"
  did "$dest" "$what"; PUT_CHANGED=1
}

# ensure_dir PATH MODE OWNER GROUP
ensure_dir() {
  local dir=$1 mode=$2 owner=$3 group=$4
  if [ ! -d "$dir" ]; then
    mkdir -p "$dir"; chown "$owner:$group" "$dir"; chmod "$mode" "$dir"
    did "$dir/" "created ($mode $owner:$group)"
  elif [ "$(stat -c '%a %U %G' "$dir")" != "$mode $owner $group" ]; then
    chown "$owner:$group" "$dir"; chmod "$mode" "$dir"
    did "$dir/" "mode/owner set to $mode $owner:$group"
  else
    kept "$dir/"
  fi
}

echo "sec-tracker install ($( [ "$START" = 1 ] && echo "--start" || echo "no --start"))"

# --- binaries -------------------------------------------------------------------------------
# An unpacked release tarball (scripts/release.sh) has its binaries in bin/ and no Cargo.toml.
if [ -z "$BIN_DIR" ] && [ ! -e "$REPO/Cargo.toml" ] && [ -x "$REPO/bin/collectord" ]; then
  BIN_DIR=$REPO/bin
fi
if [ -z "$BIN_DIR" ]; then
  # Where cargo puts this checkout's builds: ./target unless CARGO_TARGET_DIR (or a cargo config's
  # build.target-dir) says otherwise; cargo metadata knows all of them.
  TARGET_DIR=""
  if command -v cargo >/dev/null; then
    TARGET_DIR=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps 2>/dev/null |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p') || TARGET_DIR=""
  fi
  [ -n "$TARGET_DIR" ] || TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
  BIN_DIR=$TARGET_DIR/release
  missing=0
  for b in "${BINARIES[@]}"; do [ -x "$BIN_DIR/$b" ] || missing=1; done
  if [ "$missing" = 1 ]; then
    command -v cargo >/dev/null || {
      echo "install.sh: no release binaries in $BIN_DIR and no cargo in PATH: build them first" \
           "(cargo build --release) or pass --bin-dir DIR" >&2
      exit 1
    }
    echo "building release binaries (cargo build --release) ..."
    (cd "$REPO" && cargo build --release --locked -p collectord -p shipperd -p sec-trackerctl --bins)
  fi
fi
for b in "${BINARIES[@]}"; do
  [ -x "$BIN_DIR/$b" ] || { echo "install.sh: $BIN_DIR/$b is missing or not executable" >&2; exit 1; }
done
echo "binaries from $BIN_DIR"
BINARIES_CHANGED=0
for b in "${BINARIES[@]}"; do
  put_file "$BIN_DIR/$b" "$PREFIX/$b" 755 root root
  if [ "$PUT_CHANGED" = 1 ] && [ "$b" != sec-trackerctl ]; then BINARIES_CHANGED=1; fi
done
# The seed's name for the CLI: `sec-tracker -local -json` keeps working (sec-trackerctl takes the
# seed's single-dash forms).
if [ "$(readlink "$PREFIX/sec-tracker" 2>/dev/null)" = sec-trackerctl ]; then
  kept "$PREFIX/sec-tracker"
else
  ln -sfn sec-trackerctl "$PREFIX/sec-tracker"
  did "$PREFIX/sec-tracker" "→ sec-trackerctl"
fi
put_file "$REPO/README.md" "$DOC_DIR/README.md" 644 root root
# Shell completions and man pages, generated from the same clap definitions as --help by the
# sec-trackerctl being installed (run from BIN_DIR: the installed one may be confined by its
# AppArmor profile, which has no business writing here).
GEN=$(mktemp -d /tmp/sec-tracker-install.XXXXXX)
for sh in bash zsh fish; do "$BIN_DIR/sec-trackerctl" completions "$sh" >"$GEN/$sh"; done
"$BIN_DIR/sec-trackerctl" manpages "$GEN/man" >/dev/null
put_file "$GEN/bash" "$BASH_COMPLETIONS/sec-trackerctl" 644 root root
put_file "$GEN/zsh" "$ZSH_COMPLETIONS/_sec-trackerctl" 644 root root
put_file "$GEN/fish" "$FISH_COMPLETIONS/sec-trackerctl.fish" 644 root root
for page in "$GEN"/man/man*/*; do
  section=$(basename "$(dirname "$page")")
  put_file "$page" "$MAN_DIR/$section/$(basename "$page")" 644 root root
done
rm -rf "$GEN"

# --- user and group -------------------------------------------------------------------------
if getent group "$USER_NAME" >/dev/null; then
  kept "group $USER_NAME"
else
  groupadd --system "$USER_NAME"
  did "group $USER_NAME" "created (gid $(getent group "$USER_NAME" | cut -d: -f3))"
fi
NOLOGIN=$(command -v nologin || echo /usr/sbin/nologin)
if getent passwd "$USER_NAME" >/dev/null; then
  kept "user $USER_NAME"
else
  useradd --system --gid "$USER_NAME" --no-create-home --home-dir /nonexistent \
          --shell "$NOLOGIN" --comment "sec-tracker shipper" "$USER_NAME"
  did "user $USER_NAME" "created (uid $(id -u "$USER_NAME"), no login shell, no home)"
fi

# --- config ---------------------------------------------------------------------------------
ensure_dir "$CONF_DIR" 750 root "$USER_NAME"
if [ -e "$CONFIG" ]; then
  # Never overwritten. A config whose group no longer exists (user removed and re-created) is
  # given back to the group, or shipperd could not read it.
  if ! getent group "$(stat -c %g "$CONFIG")" >/dev/null; then
    chgrp "$USER_NAME" "$CONFIG"
    did "$CONFIG" "kept; group set to $USER_NAME (was an orphaned gid)"
  else
    kept "$CONFIG" "kept (exists; not overwritten)"
  fi
  perm=$(stat -c '%a %U %G' "$CONFIG")
  [ "$perm" = "640 root $USER_NAME" ] ||
    echo "  warning: $CONFIG is $perm, expected 640 root $USER_NAME (shipperd and the readers' group must read it)"
else
  tmp=$(mktemp "$CONF_DIR/.config.json.XXXXXX")
  cp "$REPO/scripts/deb/config.json" "$tmp"
  chown "root:$USER_NAME" "$tmp"; chmod 640 "$tmp"
  mv "$tmp" "$CONFIG"
  did "$CONFIG" "created from the default template (640 root:$USER_NAME); set server.url"
fi
# The API key: the shipper's alone (0600 sec-tracker), never in the config, which every member of
# the readers' group can read. Created empty; never overwritten.
if [ -e "$API_KEY" ]; then
  perm=$(stat -c '%a %U' "$API_KEY")
  if [ "$perm" = "600 $USER_NAME" ]; then kept "$API_KEY" "kept (exists; not overwritten)"; else
    chown "$USER_NAME:$USER_NAME" "$API_KEY"; chmod 600 "$API_KEY"
    did "$API_KEY" "kept; mode/owner set to 600 $USER_NAME (was $perm)"
  fi
else
  install -m 600 -o "$USER_NAME" -g "$USER_NAME" /dev/null "$API_KEY"
  did "$API_KEY" "created empty (600 $USER_NAME): write the server's API key into it"
fi
if grep -q '"api_key"[[:space:]]*:[[:space:]]*"[^"]' "$CONFIG"; then
  echo "  warning: $CONFIG holds server.api_key, and every member of group $USER_NAME can read it:" \
       "move the key to $API_KEY and remove it from the config"
fi
if ! check=$("$PREFIX/sec-trackerctl" config-check --config "$CONFIG" 2>&1); then
  echo "  warning: $CONFIG is not valid:"; printf '%s\n' "$check" | sed 's/^/    /'
fi
# shipperd has somewhere to send only once server.url is set (else it exits 64 at start).
SERVER_SET=0
if printf '%s\n' "$check" | grep -E '^[[:space:]]*server:' | grep -qv '(none'; then SERVER_SET=1; fi

# --- state ----------------------------------------------------------------------------------
ensure_dir "$STATE" 755 root root
ensure_dir "$STATE/collectord" 700 root "$USER_NAME"
if [ -d "$STATE/shipperd" ] && [ -n "$(find "$STATE/shipperd" \( ! -user "$USER_NAME" -o ! -group "$USER_NAME" \) -print -quit)" ]; then
  # Kept from an earlier install whose user had another uid: the queue must stay readable.
  find "$STATE/shipperd" -xdev -exec chown -h "$USER_NAME:$USER_NAME" {} +
  did "$STATE/shipperd/" "queue files given to $USER_NAME"
fi
ensure_dir "$STATE/shipperd" 700 "$USER_NAME" "$USER_NAME"

# --- systemd units --------------------------------------------------------------------------
UNITS_CHANGED=0
for u in "${UNITS[@]}"; do
  put_file "$REPO/systemd/$u" "$UNIT_DIR/$u" 644 root root
  if [ "$PUT_CHANGED" = 1 ]; then UNITS_CHANGED=1; fi
done

# --- AppArmor -------------------------------------------------------------------------------
if [ -d "$AA_DIR" ]; then
  if apparmor_enabled; then aa_on=1; else aa_on=0; fi
  for p in "${PROFILES[@]}"; do
    put_file "$REPO/apparmor/$p" "$AA_DIR/$p" 644 root root
    name=$(sed -n 's/^profile \([^ ]*\) .*/\1/p' "$AA_DIR/$p")
    if [ "$aa_on" = 1 ]; then
      if [ "$PUT_CHANGED" = 1 ] || ! grep -q "^$name " /sys/kernel/security/apparmor/profiles 2>/dev/null; then
        apparmor_parser -r "$AA_DIR/$p"
        did "AppArmor profile $name" "loaded (enforce)"
      else
        kept "AppArmor profile $name" "unchanged (loaded)"
      fi
    fi
  done
  [ "$aa_on" = 1 ] || report "AppArmor profiles" "copied, not loaded: AppArmor is not enabled in this kernel"
else
  report "AppArmor profiles" "skipped: AppArmor is not installed ($AA_DIR missing)"
fi

# --- services -------------------------------------------------------------------------------
if systemd_is_init; then
  if [ "$UNITS_CHANGED" = 1 ]; then systemctl daemon-reload; did "systemd" "daemon-reload"; fi
  for u in "${UNITS[@]}"; do
    if systemctl is-enabled -q "$u" 2>/dev/null; then kept "$u enabled"; else
      systemctl enable -q "$u"; did "$u" "enabled"; fi
    if [ "$u" = sec-tracker-shipperd.service ] && [ "$SERVER_SET" = 0 ]; then
      report "$u" "not started: set server.url in $CONFIG, then: systemctl start $u"
      continue
    fi
    if systemctl is-active -q "$u"; then
      if [ "$BINARIES_CHANGED" = 1 ] || [ "$UNITS_CHANGED" = 1 ]; then
        systemctl restart "$u"; did "$u" "restarted (new binary or unit)"
      else
        kept "$u running"
      fi
    else
      systemctl start "$u"; did "$u" "started"
    fi
  done
else
  LAUNCH_ENV=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8)
  for v in LOG_LEVEL RUST_LOG; do
    if [ -n "${!v:-}" ]; then LAUNCH_ENV+=("$v=${!v}"); fi
  done
  # The API key goes to the shipper only: collectord never sees it.
  SHIPPER_ENV=("${LAUNCH_ENV[@]}")
  if [ -n "${SEC_TRACKER_API_KEY:-}" ]; then SHIPPER_ENV+=("SEC_TRACKER_API_KEY=$SEC_TRACKER_API_KEY"); fi

  # The pid in $RUN/NAME.pid when that process is still our installed binary (or the binary it
  # was before an update: "(deleted)").
  running_pid() {
    local pid exe
    pid=$(cat "$PIDS/$1.pid" 2>/dev/null) || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    case "$exe" in "$PREFIX/$1" | "$PREFIX/$1 (deleted)") echo "$pid" ;; *) return 1 ;; esac
  }
  stop_daemon() {
    local pid
    pid=$(running_pid "$1") || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 150); do [ -d "/proc/$pid" ] || break; sleep 0.1; done
    if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
    rm -f "$PIDS/$1.pid"
  }
  # wait_ready NAME PID CHECK...: until CHECK succeeds, for 20 s, while PID lives.
  wait_ready() {
    local name=$1 pid=$2; shift 2
    for _ in $(seq 200); do
      "$@" >/dev/null 2>&1 && return 0
      [ -d "/proc/$pid" ] || { echo "install.sh: $name exited at start; its log:" >&2; tail -n 20 "$LOGS/$name.log" >&2; return 1; }
      sleep 0.1
    done
    echo "install.sh: $name not ready after 20 s; its log: $LOGS/$name.log" >&2
    return 1
  }
  start_collectord() {
    (
      umask 077; cd /
      exec setsid setpriv --no-new-privs --inh-caps=-all --ambient-caps=-all \
        --bounding-set="$COLLECTORD_BOUNDING" \
        "${LAUNCH_ENV[@]}" "$PREFIX/collectord" --config "$CONFIG" --socket "$RUN/collector.sock" \
        </dev/null >>"$LOGS/collectord.log" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$PIDS/collectord.pid"
    wait_ready collectord "$pid" "$PREFIX/sec-trackerctl" --config "$CONFIG" --socket "$RUN/collector.sock" status
  }
  start_shipperd() {
    (
      umask 077; cd /
      exec setsid setpriv --reuid="$USER_NAME" --regid="$USER_NAME" --init-groups --no-new-privs \
        --inh-caps=-all --ambient-caps=-all --bounding-set=-all \
        "${SHIPPER_ENV[@]}" "$PREFIX/shipperd" --config "$CONFIG" \
        --collector-socket "$RUN/collector.sock" --socket "$SHIPPER_RUN/shipper.sock" --state-dir "$STATE" \
        </dev/null >>"$LOGS/shipperd.log" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$PIDS/shipperd.pid"
    wait_ready shipperd "$pid" test -S "$SHIPPER_RUN/shipper.sock"
  }

  if [ "$START" = 1 ]; then
    ensure_dir "$RUN" 750 root "$USER_NAME"
    ensure_dir "$SHIPPER_RUN" 750 "$USER_NAME" "$USER_NAME"
    ensure_dir "$PIDS" 700 root root
    ensure_dir "$LOGS" 750 root root
    for d in collectord shipperd; do
      if [ "$d" = shipperd ] && [ "$SERVER_SET" = 0 ]; then
        report "shipperd" "not started: set server.url in $CONFIG, then run install.sh --start again"
        continue
      fi
      if pid=$(running_pid "$d"); then
        if [ "$BINARIES_CHANGED" = 1 ] || [ "$(readlink "/proc/$pid/exe")" != "$PREFIX/$d" ]; then
          stop_daemon "$d"; "start_$d"
          did "$d" "restarted with the new binary (pid $(cat "$PIDS/$d.pid"), log $LOGS/$d.log)"
        else
          kept "$d" "unchanged (running, pid $pid)"
        fi
      else
        "start_$d"
        did "$d" "started (pid $(cat "$PIDS/$d.pid"), log $LOGS/$d.log)"
      fi
    done
  else
    report "services" "not started: systemd is not PID 1 here; run install.sh --start to start"
    echo "  them in the background (or run collectord as root and shipperd via"
    echo "  setpriv --reuid=$USER_NAME --regid=$USER_NAME --init-groups --bounding-set=-all $PREFIX/shipperd)"
  fi
fi

echo "sec-tracker install: $changed changed, $same unchanged"
