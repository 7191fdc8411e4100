#!/usr/bin/env bash
# Builds the release artifacts into dist/ under cargo's target directory (./target, or
# CARGO_TARGET_DIR), for x86_64 and aarch64:
#
#   scripts/release.sh [--skip-build]
#
#   sec-tracker-<version>-<arch>-linux-gnu.tar.gz   the three binaries (bin/) with install.sh,
#                                                   uninstall.sh, the units, the AppArmor profiles
#                                                   and the README: sudo ./scripts/install.sh
#   sec-tracker_<version>-1_{amd64,arm64}.deb       the same binaries as a Debian package
#   sec-tracker-<version>-1.{x86_64,aarch64}.rpm    and as an rpm, with the SELinux module
#                                                   (apparmor/selinux/) compiled for semodule -i
#   SHA256SUMS
#
# The binaries are linked against glibc 2.17 (cargo-zigbuild, targets <arch>-unknown-linux-gnu.2.17),
# so they run on every system the agent supports: Debian 9+, Ubuntu 18.04+, RHEL/CentOS 7+, on
# either architecture. A plain `cargo build --release` links against this machine's glibc (2.34
# and later symbols), which Debian 11 and Ubuntu 20.04 do not have. The script refuses artifacts
# that need more than 2.17. --skip-build packages what the last build left.
# RELEASE_TARGETS="x86_64-unknown-linux-gnu" limits it to some of the targets.
#
# Needs cargo-zigbuild and zig (cargo install cargo-zigbuild --locked; pip install ziglang),
# the aarch64 standard library (rustup target add aarch64-unknown-linux-gnu), cargo-deb and
# cargo-generate-rpm (cargo install cargo-deb cargo-generate-rpm --locked), the SELinux policy
# headers and tools (apt-get install selinux-policy-dev checkpolicy semodule-utils), and for
# aarch64 its strip and qemu-user to render the man pages (apt-get install
# binutils-aarch64-linux-gnu qemu-user libc6-arm64-cross).
# Prints the artifacts' paths, one per line, last.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BUILD=1
case "${1:-}" in
  --skip-build) BUILD=0 ;;
  "") ;;
  -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "release.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

read -r -a TRIPLES <<<"${RELEASE_TARGETS:-x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu}"
GLIBC=2.17
BINARIES=(collectord shipperd sec-trackerctl)
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
VERSION=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "sec-trackerctl"))')
DIST=$TARGET_DIR/dist

for t in cargo-deb cargo-generate-rpm readelf; do
  command -v $t >/dev/null || { echo "release.sh: $t is missing: cargo install $t --locked (readelf: apt-get install binutils)" >&2; exit 1; }
done
[ -f /usr/share/selinux/devel/Makefile ] || {
  echo "release.sh: the SELinux policy headers are missing: apt-get install selinux-policy-dev checkpolicy semodule-utils" >&2
  exit 1
}
if [ "$BUILD" = 1 ]; then
  command -v cargo-zigbuild >/dev/null || {
    echo "release.sh: cargo-zigbuild is missing: cargo install cargo-zigbuild --locked" >&2; exit 1; }
  command -v zig >/dev/null || python3 -m ziglang version >/dev/null 2>&1 || {
    echo "release.sh: zig is missing: pip install ziglang" >&2; exit 1; }
  for TRIPLE in "${TRIPLES[@]}"; do
    echo "release.sh: cargo zigbuild --release --target $TRIPLE.$GLIBC ..." >&2
    cargo zigbuild --release --locked --target "$TRIPLE.$GLIBC" \
      -p collectord -p shipperd -p sec-trackerctl --bins >&2
  done
fi

# The newest glibc symbol version a binary asks for ("none" for a static one). readelf reads any
# architecture's ELF.
newest_glibc() {
  readelf --dyn-syms -W "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1 | grep . || echo none
}
# This machine's strip for x86_64, binutils-aarch64-linux-gnu's for aarch64.
strip_for() {
  case "$1" in
    "$(uname -m)"-*) echo strip ;;
    *) echo "${1%%-*}-linux-gnu-strip" ;;
  esac
}

rm -rf "$DIST"
mkdir -p "$DIST"
MTIME=$(git log -1 --format=@%ct 2>/dev/null || echo @0)
for TRIPLE in "${TRIPLES[@]}"; do
  ARCH=${TRIPLE%%-*}
  BUILT=$TARGET_DIR/$TRIPLE/release
  STRIP=$(strip_for "$TRIPLE")
  command -v "$STRIP" >/dev/null || { echo "release.sh: $STRIP is missing: apt-get install binutils-$ARCH-linux-gnu" >&2; exit 1; }
  for b in "${BINARIES[@]}"; do
    [ -x "$BUILT/$b" ] || { echo "release.sh: $BUILT/$b is missing (run without --skip-build)" >&2; exit 1; }
    machine=$(readelf -h "$BUILT/$b" | sed -n 's/^ *Machine: *//p')
    case "$ARCH:$machine" in
      x86_64:*X86-64*|aarch64:AArch64) ;;
      *) echo "release.sh: $BUILT/$b is for $machine, not $ARCH" >&2; exit 1 ;;
    esac
    need=$(newest_glibc "$BUILT/$b")
    if [ "$need" != none ] && [ "$(printf '%s\n%s\n' "$need" "$GLIBC" | sort -V | tail -n 1)" != "$GLIBC" ]; then
      echo "release.sh: $BUILT/$b needs GLIBC_$need, newer than $GLIBC: not a release artifact" >&2
      exit 1
    fi
    echo "release.sh: $ARCH $b needs glibc $need at most" >&2
  done

  rm -rf "$BUILT/stripped" "$BUILT/selinux"
  mkdir -p "$BUILT/stripped" "$BUILT/selinux"
  # The binaries as shipped in the tarball and the .rpm: their line tables stripped, as cargo-deb
  # strips the .deb's.
  for b in "${BINARIES[@]}"; do
    "$STRIP" --strip-debug -o "$BUILT/stripped/$b" "$BUILT/$b"
  done
  # The SELinux module: checkmodule and semodule_package through the policy headers' Makefile.
  cp apparmor/selinux/sec_tracker.te apparmor/selinux/sec_tracker.fc apparmor/selinux/sec_tracker.if "$BUILT/selinux/"
  make -s -C "$BUILT/selinux" -f /usr/share/selinux/devel/Makefile sec_tracker.pp >&2

  # The tarball: the binaries and what install.sh reads from beside itself, in the layout it
  # expects; install.sh takes bin/ when there is no Cargo.toml.
  NAME=sec-tracker-$VERSION-$ARCH-linux-gnu
  STAGE=$DIST/$NAME
  mkdir -p "$STAGE/bin" "$STAGE/scripts/deb" "$STAGE/systemd" "$STAGE/apparmor"
  cp "$BUILT"/stripped/* "$STAGE/bin/"
  cp scripts/install.sh scripts/uninstall.sh "$STAGE/scripts/"
  cp scripts/deb/config.json "$STAGE/scripts/deb/"
  cp systemd/*.service "$STAGE/systemd/"
  cp apparmor/usr.local.bin.* "$STAGE/apparmor/"
  cp README.md "$STAGE/"
  # Same bytes for the same inputs: fixed owner, order and time (the last commit's).
  tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$MTIME" -C "$DIST" -cf - "$NAME" |
    gzip -9n >"$DIST/$NAME.tar.gz"
  rm -rf "$STAGE"

  # The .deb from the same binaries (cargo-deb names the architecture: amd64, arm64).
  deb=$(scripts/build-deb.sh --target "$TRIPLE" | tail -n 1)
  cp "$deb" "$DIST/"

  # The .rpm from the same binaries; gzip, which every supported rpm reads (RHEL 7's has no zstd).
  cargo generate-rpm -p ctl --target "$TRIPLE" --payload-compress gzip -o "$DIST/" >&2
done

(cd "$DIST" && sha256sum -- *.tar.gz *.deb *.rpm >SHA256SUMS)
ls -1 "$DIST"/*.tar.gz "$DIST"/*.deb "$DIST"/*.rpm "$DIST/SHA256SUMS"
