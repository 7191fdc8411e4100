#!/usr/bin/env bash
# A real test of the release artifacts (scripts/release.sh) on the oldest system CI can build:
#   * every binary in the tarball and the .deb asks for glibc 2.17 at most (objdump -T), where the
#     plain `cargo build --release` of this machine asks for more;
#   * the checksums hold, and the tarball has what its install.sh needs;
#   * in a Debian 11 (bullseye, glibc 2.31) root file system: the plain build's sec-trackerctl
#     fails to start ("GLIBC_2.3x' not found", what operators of Debian 11 and Ubuntu 20.04 saw),
#     the artifacts' binaries start, `sec-trackerctl snapshot --json` prints this machine's
#     snapshot, the tarball's install.sh installs and uninstalls, and the .deb installs with
#     dpkg -i (its dependencies met by bullseye), runs `sec-tracker -local -oneshot -json`, and
#     purges;
#   * the .rpm: what rpm -qlp lists, modes and owners, gzip payload, requirements (glibc 2.17 at
#     most), the SELinux module inside it (semodule_unpackage, its file contexts), and its
#     scriptlets run for real by rpm --root in the Debian 11 root file system: install (user,
#     config's group and mode, API key, state, the seed's name), erase;
#   * lintian on the .deb: no error or warning but the ones its overrides explain;
#   * the aarch64 artifacts: AArch64 code asking for glibc 2.17 at most, running under qemu-user
#     (--version, snapshot --json, config-check of a good and a bad config), the arm64 .deb's
#     control fields and contents, the aarch64 .rpm's architecture and file list.
# Prints one `ok` / `FAIL` line per check, then `N passed, M failed`; exits non-zero on a failure.
#
#   sudo scripts/test-release.sh [--dist DIR]   (default: dist/ in cargo's target directory,
#                                                made by scripts/release.sh when missing)
#   sudo scripts/test-release.sh --rootfs-only  (only builds the Debian 11 root file system: CI
#                                                starts it while it compiles)
# Env:   BULLSEYE=/var/tmp/sec-tracker-bullseye-rootfs (built once with debootstrap, then reused)
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
DIST=""
ROOTFS_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dist) DIST=${2:?--dist needs a directory}; shift 2 ;;
    --rootfs-only) ROOTFS_ONLY=1; shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-release.sh: unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "test-release.sh: run as root" >&2; exit 2; }
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
BULLSEYE=${BULLSEYE:-/var/tmp/sec-tracker-bullseye-rootfs}
# Debian 11's root file system, made once (.complete says debootstrap finished).
build_bullseye() {
  [ -x "$BULLSEYE/usr/bin/dpkg" ] && [ -e "$BULLSEYE/.complete" ] && return 0
  local log
  log=$(mktemp /tmp/sec-tracker-debootstrap-bullseye.XXXXXX)
  rm -rf "$BULLSEYE"
  mkdir -p "$BULLSEYE"
  echo "building $BULLSEYE (debootstrap bullseye) ..."
  if ! debootstrap --variant=minbase --include=adduser,passwd bullseye "$BULLSEYE" http://deb.debian.org/debian \
    >"$log" 2>&1; then
    tail -n 20 "$log"; rm -rf "$BULLSEYE" "$log"; return 1
  fi
  rm -f "$log"
  touch "$BULLSEYE/.complete"
}
if [ "$ROOTFS_ONLY" = 1 ]; then
  command -v debootstrap >/dev/null || { echo "test-release.sh: debootstrap is missing (apt-get install debootstrap)" >&2; exit 2; }
  build_bullseye; exit
fi
for t in debootstrap objdump readelf unshare chroot rpm rpm2cpio cpio semodule_unpackage lintian qemu-aarch64; do
  command -v $t >/dev/null || { echo "test-release.sh: $t is missing (apt-get install debootstrap binutils util-linux rpm cpio semodule-utils lintian qemu-user libc6-arm64-cross)" >&2; exit 2; }
done
TARGET_DIR=$(cd "$REPO" && cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$DIST" ]; then
  DIST=$TARGET_DIR/dist
  [ -f "$DIST/SHA256SUMS" ] || "$REPO/scripts/release.sh" >/dev/null || { echo "test-release.sh: release.sh failed" >&2; exit 2; }
fi
TARBALL=$(ls "$DIST"/sec-tracker-*-x86_64-linux-gnu.tar.gz 2>/dev/null | head -n 1)
DEB=$(ls "$DIST"/sec-tracker_*_amd64.deb 2>/dev/null | head -n 1)
RPM=$(ls "$DIST"/sec-tracker-*.x86_64.rpm 2>/dev/null | head -n 1)
[ -f "$TARBALL" ] && [ -f "$DEB" ] && [ -f "$RPM" ] || { echo "test-release.sh: no tarball, .deb or .rpm in $DIST" >&2; exit 2; }
# The plain build, to show what the artifacts fix (built by .ci/run and install.sh).
HOST_CTL=$TARGET_DIR/release/sec-trackerctl

WORK=$(mktemp -d /tmp/sec-tracker-test-release.XXXXXX)
passed=0 failed=0
ok() { echo "ok   $*"; passed=$((passed + 1)); }
bad() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
eq() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi; }
finish() {
  rm -rf "$WORK" "$BULLSEYE/opt/st"
  if [ -d "$BULLSEYE/var/lib/rpm" ] && rpm --root "$BULLSEYE" -q sec-tracker >/dev/null 2>&1; then
    rpm --root "$BULLSEYE" -e --nodeps sec-tracker >/dev/null 2>&1
  fi
  rm -rf "$BULLSEYE/var/lib/rpm" "$BULLSEYE/usr/lib/sysimage/rpm"
  if [ -d "$BULLSEYE/etc" ]; then
    chroot "$BULLSEYE" sh -c 'userdel sec-tracker; groupdel sec-tracker; rm -rf /etc/sec-tracker /var/lib/sec-tracker' >/dev/null 2>&1
  fi
  if [ -d "$BULLSEYE/var/lib/dpkg" ] && chroot "$BULLSEYE" dpkg -s sec-tracker >/dev/null 2>&1; then
    in_bullseye dpkg --purge sec-tracker >/dev/null 2>&1
  fi
  echo "$passed passed, $failed failed"
  [ "$failed" = 0 ]
}
trap 'finish; exit $?' EXIT

# The newest glibc symbol version a binary asks for ("none" for a static one).
newest_glibc() {
  objdump -T "$1" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1 | grep . || echo none
}
at_most() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | tail -n 1)" = "$2" ]; }

# ---- the artifacts themselves ------------------------------------------------------------------
check "SHA256SUMS holds" sh -c "cd '$DIST' && sha256sum --quiet -c SHA256SUMS"
tar -xzf "$TARBALL" -C "$WORK"
PKG=$(ls -d "$WORK"/sec-tracker-*/ | head -n 1)
PKG=${PKG%/}
for f in bin/collectord bin/shipperd bin/sec-trackerctl scripts/install.sh scripts/uninstall.sh \
         scripts/deb/config.json systemd/sec-tracker-collectord.service \
         systemd/sec-tracker-shipperd.service apparmor/usr.local.bin.collectord README.md; do
  check "tarball has $f" test -s "$PKG/$f"
done
mkdir -p "$WORK/deb"
dpkg-deb -x "$DEB" "$WORK/deb"
for b in collectord shipperd sec-trackerctl; do
  need=$(newest_glibc "$PKG/bin/$b")
  check "tarball's $b needs glibc 2.17 at most (GLIBC_$need)" at_most "$need" 2.17
  need=$(newest_glibc "$WORK/deb/usr/local/bin/$b")
  check ".deb's $b needs glibc 2.17 at most (GLIBC_$need)" at_most "$need" 2.17
done
if [ -x "$HOST_CTL" ]; then
  need=$(newest_glibc "$HOST_CTL")
  echo "     (the plain cargo build's sec-trackerctl needs GLIBC_$need)"
fi
depends=$(dpkg-deb -f "$DEB" Depends)
check ".deb's libc6 dependency is at most 2.17 ($depends)" \
  sh -c "v=\$(printf '%s' '$depends' | grep -o 'libc6 (>= [0-9.]*' | grep -o '[0-9.]*\$'); [ -n \"\$v\" ] && [ \"\$(printf '%s\n2.17\n' \"\$v\" | sort -V | tail -n 1)\" = 2.17 ]"

# ---- Debian 11 (bullseye, glibc 2.31) ----------------------------------------------------------
build_bullseye || exit 2
# A command in the chroot with its own /proc, /sys and /dev, gone with the mount namespace.
in_bullseye() {
  unshare --mount --fork sh -c '
    root=$1; shift
    mount -t proc proc "$root/proc" && mount --rbind /sys "$root/sys" && mount --rbind /dev "$root/dev" || exit 125
    exec chroot "$root" "$@"' sh "$BULLSEYE" "$@"
}
eq "the chroot is Debian 11" "$(cut -d. -f1 "$BULLSEYE/etc/debian_version")" 11
glibc=$(in_bullseye /usr/bin/ldd --version 2>/dev/null | head -n 1 | grep -o '[0-9][0-9.]*$')
eq "its glibc is 2.31" "$glibc" 2.31
mkdir -p "$BULLSEYE/opt/st"
if [ -x "$HOST_CTL" ]; then
  cp "$HOST_CTL" "$BULLSEYE/opt/st/plain-sec-trackerctl"
  out=$(in_bullseye /opt/st/plain-sec-trackerctl --version 2>&1); rc=$?
  check "the plain build's sec-trackerctl fails there: ${out%%$'\n'*}" \
    sh -c "[ $rc -ne 0 ] && printf '%s' \"\$1\" | grep -q \"version \\\`GLIBC_2\\.[0-9]*' not found\"" sh "$out"
fi
cp -a "$PKG" "$BULLSEYE/opt/st/pkg"
for b in collectord shipperd sec-trackerctl; do
  out=$(in_bullseye /opt/st/pkg/bin/$b --version 2>&1)
  check "the artifact's $b --version runs there ($out)" sh -c "printf '%s' \"\$1\" | grep -q '^$b [0-9]'" sh "$out"
done
in_bullseye /opt/st/pkg/bin/sec-trackerctl snapshot --json >"$WORK/snapshot.json" 2>"$WORK/snapshot.err"
check "snapshot --json runs there" test -s "$WORK/snapshot.json"
check "the snapshot is JSON: this host, Debian 11's os-release, CPUs, memory, uptime" python3 - "$WORK/snapshot.json" <<'EOF'
import json, os, sys
s = json.load(open(sys.argv[1]))
assert s["hostname"] == os.uname().nodename, s["hostname"]
assert "bullseye" in s["os_release"], s["os_release"]
assert s["cpu_info"]["cores"] == os.cpu_count(), s["cpu_info"]
assert s["memory_info"]["total"] > 0 and s["uptime_seconds"] > 0, s
EOF
out=$(in_bullseye /opt/st/pkg/bin/sec-trackerctl config-check --config /opt/st/pkg/scripts/deb/config.json 2>&1)
check "config-check of the packaged config runs there" sh -c "printf '%s' \"\$1\" | grep -q '^/opt/st/pkg/scripts/deb/config.json: valid\$'" sh "$out"

# The tarball's install.sh as an operator runs it: from the unpacked directory, no arguments.
out=$(in_bullseye /opt/st/pkg/scripts/install.sh 2>&1); rc=$?
eq "the tarball's install.sh exits 0 there" "$rc" 0
[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -n 15
check "install.sh took the tarball's binaries" sh -c "printf '%s' \"\$1\" | grep -q '^binaries from /opt/st/pkg/bin\$'" sh "$out"
check "installed sec-trackerctl is the artifact" cmp -s "$PKG/bin/sec-trackerctl" "$BULLSEYE/usr/local/bin/sec-trackerctl"
out=$(in_bullseye /usr/local/bin/sec-tracker -local -oneshot -json 2>&1)
check "installed sec-tracker -local -oneshot -json prints JSON there" sh -c "printf '%s' \"\$1\" | python3 -c 'import json,sys; json.load(sys.stdin)'" sh "$out"
out=$(in_bullseye /opt/st/pkg/scripts/uninstall.sh --purge 2>&1); rc=$?
eq "the tarball's uninstall.sh --purge exits 0 there" "$rc" 0
check "nothing left in /usr/local/bin" sh -c "! ls '$BULLSEYE'/usr/local/bin/{collectord,shipperd,sec-trackerctl,sec-tracker} 2>/dev/null | grep -q ."

# The .deb with dpkg, as on a Debian 11 host.
cp "$DEB" "$BULLSEYE/opt/st/"
out=$(in_bullseye dpkg -i "/opt/st/$(basename "$DEB")" 2>&1); rc=$?
eq "dpkg -i of the .deb exits 0 there" "$rc" 0
[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -n 15
eq "dpkg says it is installed" "$(chroot "$BULLSEYE" dpkg-query -W -f '${Status}' sec-tracker 2>&1)" "install ok installed"
out=$(in_bullseye /usr/local/bin/sec-tracker -local -oneshot -json 2>&1)
check "packaged sec-tracker -local -oneshot -json prints JSON there" sh -c "printf '%s' \"\$1\" | python3 -c 'import json,sys; json.load(sys.stdin)'" sh "$out"
eq "the package made user sec-tracker" "$(chroot "$BULLSEYE" getent passwd sec-tracker | cut -d: -f7)" /usr/sbin/nologin
out=$(in_bullseye dpkg --purge sec-tracker 2>&1); rc=$?
eq "dpkg --purge exits 0 there" "$rc" 0
check "the purge left no binaries or config" sh -c "! ls -d '$BULLSEYE'/usr/local/bin/collectord '$BULLSEYE'/etc/sec-tracker 2>/dev/null | grep -q ."

# ---- the .rpm -----------------------------------------------------------------------------------
files=$(rpm -qlp "$RPM" 2>/dev/null)
for f in /usr/local/bin/collectord /usr/local/bin/shipperd /usr/local/bin/sec-trackerctl \
         /usr/lib/systemd/system/sec-tracker-collectord.service /usr/lib/systemd/system/sec-tracker-shipperd.service \
         /usr/share/selinux/packages/sec_tracker.pp /etc/sec-tracker/config.json \
         /usr/share/man/man1/sec-trackerctl.1.gz /usr/share/man/man8/collectord.8.gz \
         /usr/share/bash-completion/completions/sec-trackerctl /etc/apparmor.d/usr.local.bin.collectord; do
  check "rpm -qlp lists $f" sh -c "printf '%s\n' \"\$1\" | grep -qx '$f'" sh "$files"
done
eq "the .rpm's payload is gzip (RHEL 7's rpm reads no zstd)" "$(rpm -qp --qf '%{PAYLOADCOMPRESSOR}' "$RPM" 2>/dev/null)" gzip
eq "config.json: 0640 root:sec-tracker, %config(noreplace)" \
  "$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags}\n]' "$RPM" 2>/dev/null | grep '^/etc/sec-tracker/config.json ')" \
  "/etc/sec-tracker/config.json -rw-r----- root:sec-tracker cn"
eq "collectord in the .rpm: 0755 root:root" \
  "$(rpm -qp --qf '[%{FILENAMES} %{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME}\n]' "$RPM" 2>/dev/null | grep '^/usr/local/bin/collectord ')" \
  "/usr/local/bin/collectord -rwxr-xr-x root:root"
requires=$(rpm -qp --requires "$RPM" 2>/dev/null)
newest=$(printf '%s\n' "$requires" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
check "the .rpm requires glibc 2.17 at most (GLIBC_${newest:-none})" at_most "${newest:-0}" 2.17
scripts=$(rpm -qp --scripts "$RPM" 2>/dev/null)
for phase in preinstall postinstall preuninstall postuninstall; do
  check "the .rpm has a $phase scriptlet" sh -c "printf '%s' \"\$1\" | grep -q '^$phase scriptlet'" sh "$scripts"
done
mkdir -p "$WORK/rpm"
(cd "$WORK/rpm" && rpm2cpio "$RPM" | cpio -idm --quiet)
check "its SELinux module unpacks (semodule_unpackage)" \
  semodule_unpackage "$WORK/rpm/usr/share/selinux/packages/sec_tracker.pp" "$WORK/sec_tracker.mod" "$WORK/sec_tracker.fc"
check "the module labels collectord's binary as its entry point" \
  grep -q '^/usr/local/bin/collectord[[:space:]].*sec_tracker_collectord_exec_t' "$WORK/sec_tracker.fc"
check "the module labels shipperd's queue" \
  grep -q '^/var/lib/sec-tracker/shipperd(/\.\*)?[[:space:]].*sec_tracker_shipperd_var_lib_t' "$WORK/sec_tracker.fc"
# The scriptlets for real: rpm installs into the Debian 11 root, running them there (chrooted).
# --nodeps: that root's rpm database knows none of its own packages, glibc among them.
rm -rf "$BULLSEYE/var/lib/rpm" "$BULLSEYE/usr/lib/sysimage/rpm"
out=$(rpm --root "$BULLSEYE" -i --nodeps "$RPM" 2>&1); rc=$?
eq "rpm -i runs its scriptlets in the Debian 11 root and exits 0" "$rc" 0
[ "$rc" = 0 ] || printf '%s\n' "$out" | tail -n 15
check "%post says SELinux is not enabled there, module not loaded" sh -c "printf '%s' \"\$1\" | grep -q 'SELinux not enabled'" sh "$out"
eq "%pre made user sec-tracker (no login)" "$(chroot "$BULLSEYE" getent passwd sec-tracker | cut -d: -f7)" /sbin/nologin
eq "config.json: 0640 root:sec-tracker" "$(in_bullseye stat -c '%a %U:%G' "/etc/sec-tracker/config.json" 2>&1)" "640 root:sec-tracker"
eq "/etc/sec-tracker: 0750 root:sec-tracker" "$(in_bullseye stat -c '%a %U:%G' "/etc/sec-tracker" 2>&1)" "750 root:sec-tracker"
eq "api-key: 0600 sec-tracker" "$(in_bullseye stat -c '%a %U:%G' "/etc/sec-tracker/api-key" 2>&1)" "600 sec-tracker:sec-tracker"
eq "shipperd's state: 0700 sec-tracker" "$(in_bullseye stat -c '%a %U' "/var/lib/sec-tracker/shipperd" 2>&1)" "700 sec-tracker"
eq "collectord's state: 0700 root" "$(in_bullseye stat -c '%a %U' "/var/lib/sec-tracker/collectord" 2>&1)" "700 root"
out=$(in_bullseye /usr/local/bin/sec-tracker -local -oneshot -json 2>&1)
check "the rpm's sec-tracker -local -oneshot -json prints JSON there" sh -c "printf '%s' \"\$1\" | python3 -c 'import json,sys; json.load(sys.stdin)'" sh "$out"
out=$(rpm --root "$BULLSEYE" -e --nodeps sec-tracker 2>&1); rc=$?
eq "rpm -e exits 0" "$rc" 0
check "erase removed the binaries and the seed's name" sh -c "! ls '$BULLSEYE'/usr/local/bin/collectord '$BULLSEYE'/usr/local/bin/sec-tracker 2>/dev/null | grep -q ."
check "erase kept the queue, as the RHEL family does" test -d "$BULLSEYE/var/lib/sec-tracker/shipperd"

# ---- aarch64, under qemu-user -------------------------------------------------------------------
ARM_TARBALL=$(ls "$DIST"/sec-tracker-*-aarch64-linux-gnu.tar.gz 2>/dev/null | head -n 1)
ARM_DEB=$(ls "$DIST"/sec-tracker_*_arm64.deb 2>/dev/null | head -n 1)
ARM_RPM=$(ls "$DIST"/sec-tracker-*.aarch64.rpm 2>/dev/null | head -n 1)
check "there is an aarch64 tarball, .deb and .rpm" test -f "$ARM_TARBALL" -a -f "$ARM_DEB" -a -f "$ARM_RPM"
if [ -f "$ARM_TARBALL" ] && [ -f "$ARM_DEB" ] && [ -f "$ARM_RPM" ]; then
  mkdir -p "$WORK/arm" "$WORK/arm-deb"
  tar -xzf "$ARM_TARBALL" -C "$WORK/arm"
  ARM=$(ls -d "$WORK"/arm/sec-tracker-*/ | head -n 1)
  ARM=${ARM%/}
  QEMU=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
  for b in collectord shipperd sec-trackerctl; do
    eq "aarch64 $b is AArch64 code" "$(readelf -h "$ARM/bin/$b" | sed -n 's/^ *Machine: *//p')" AArch64
    need=$(readelf --dyn-syms -W "$ARM/bin/$b" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
    check "aarch64 $b needs glibc 2.17 at most (GLIBC_${need:-none})" at_most "${need:-0}" 2.17
    out=$("${QEMU[@]}" "$ARM/bin/$b" --version 2>&1)
    check "aarch64 $b --version runs under qemu-user ($out)" sh -c "printf '%s' \"\$1\" | grep -q '^$b [0-9]'" sh "$out"
  done
  "${QEMU[@]}" "$ARM/bin/sec-trackerctl" snapshot --json >"$WORK/arm-snapshot.json" 2>"$WORK/arm-snapshot.err"
  check "aarch64 snapshot --json under qemu-user: this host's name, CPUs, memory" python3 - "$WORK/arm-snapshot.json" <<'EOF2'
import json, os, sys
s = json.load(open(sys.argv[1]))
assert s["hostname"] == os.uname().nodename, s["hostname"]
assert s["cpu_info"]["cores"] == os.cpu_count(), s["cpu_info"]
assert s["memory_info"]["total"] > 0 and s["uptime_seconds"] > 0, s
EOF2
  out=$("${QEMU[@]}" "$ARM/bin/sec-trackerctl" config-check --config "$ARM/scripts/deb/config.json" 2>&1)
  check "aarch64 config-check of the packaged config: valid" sh -c "printf '%s' \"\$1\" | grep -q ': valid\$'" sh "$out"
  printf '{"agent": {"bufer_size": 1}, "outputs": {"syslog": {"address": "nope"}}}' >"$WORK/bad.json"
  out=$("${QEMU[@]}" "$ARM/bin/sec-trackerctl" config-check --config "$WORK/bad.json" 2>&1); rc=$?
  eq "aarch64 config-check of a bad config exits 1" "$rc" 1
  check "and names each problem's key" sh -c "printf '%s' \"\$1\" | grep -q 'agent.bufer_size: unknown key; did you mean \"buffer_size\"' && printf '%s' \"\$1\" | grep -q 'outputs.syslog.address'" sh "$out"
  eq "the arm64 .deb's architecture" "$(dpkg-deb -f "$ARM_DEB" Architecture)" arm64
  check "the arm64 .deb depends on libc6 >= 2.17 ($(dpkg-deb -f "$ARM_DEB" Depends))" \
    sh -c "dpkg-deb -f '$ARM_DEB' Depends | grep -q 'libc6 (>= 2.17)'"
  dpkg-deb -x "$ARM_DEB" "$WORK/arm-deb"
  for f in usr/local/bin/collectord usr/local/bin/shipperd usr/local/bin/sec-trackerctl \
           usr/share/man/man1/sec-trackerctl.1.gz usr/share/bash-completion/completions/sec-trackerctl; do
    check "the arm64 .deb has /$f" test -s "$WORK/arm-deb/$f"
  done
  eq "the arm64 .deb's collectord is AArch64 code" "$(readelf -h "$WORK/arm-deb/usr/local/bin/collectord" | sed -n 's/^ *Machine: *//p')" AArch64
  eq "the aarch64 .rpm's architecture" "$(rpm -qp --qf '%{ARCH}' "$ARM_RPM" 2>/dev/null)" aarch64
  files=$(rpm -qlp "$ARM_RPM" 2>/dev/null)
  for f in /usr/local/bin/collectord /usr/local/bin/sec-trackerctl /usr/share/selinux/packages/sec_tracker.pp \
           /usr/lib/systemd/system/sec-tracker-shipperd.service; do
    check "aarch64 rpm -qlp lists $f" sh -c "printf '%s\n' \"\$1\" | grep -qx '$f'" sh "$files"
  done
fi

# ---- lintian ------------------------------------------------------------------------------------
# Errors and warnings only; the package's overrides file says why each remaining tag stands.
lintian --fail-on none --suppress-tags-from-file /dev/null "$DEB" ${ARM_DEB:+"$ARM_DEB"} >"$WORK/lintian.txt" 2>&1
tags=$(grep -E '^[EW]: ' "$WORK/lintian.txt")
check "lintian: no error or warning on the .debs (amd64, arm64)" test -z "$tags"
[ -z "$tags" ] || printf '%s\n' "$tags" | head -n 20
overridden=$(lintian --fail-on none --show-overrides "$DEB" 2>/dev/null | grep -c '^O: ')
echo "     ($overridden tags overridden, each explained in scripts/deb/lintian-overrides)"
