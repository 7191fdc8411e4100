#!/usr/bin/env bash
# Builds the release artifacts into dist/ under cargo's target directory (./target, or
# CARGO_TARGET_DIR):
#
#   scripts/release.sh [--skip-build]
#
#   sec-tracker-<version>-x86_64-linux-gnu.tar.gz   the three binaries (bin/) with install.sh,
#                                                   uninstall.sh, the units, the AppArmor profiles
#                                                   and the README: sudo ./scripts/install.sh
#   sec-tracker_<version>-1_amd64.deb               the same binaries as a Debian package
#   sec-tracker-<version>-1.x86_64.rpm              and as an rpm, with the SELinux module
#                                                   (apparmor/selinux/) compiled for semodule -i
#   SHA256SUMS
#
# The binaries are linked against glibc 2.17 (cargo-zigbuild, target x86_64-unknown-linux-gnu.2.17),
# so they run on every system the agent supports: Debian 9+, Ubuntu 18.04+, RHEL/CentOS 7+.
# A plain `cargo build --release` links against this machine's glibc (2.34 and later symbols),
# which Debian 11 and Ubuntu 20.04 do not have. The script refuses artifacts that need more than
# 2.17. --skip-build packages what the last build left.
#
# Needs cargo-zigbuild and zig (cargo install cargo-zigbuild --locked; pip install ziglang),
# cargo-deb and cargo-generate-rpm (cargo install cargo-deb cargo-generate-rpm --locked), and the
# SELinux policy headers and tools (apt-get install selinux-policy-dev checkpolicy semodule-utils).
# Prints the artifacts' paths, one per line, last.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
BUILD=1
case "${1:-}" in
  --skip-build) BUILD=0 ;;
  "") ;;
  -h|--help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "release.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

TRIPLE=x86_64-unknown-linux-gnu
GLIBC=2.17
BINARIES=(collectord shipperd sec-trackerctl)
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
VERSION=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "sec-trackerctl"))')
BUILT=$TARGET_DIR/$TRIPLE/release
DIST=$TARGET_DIR/dist

for t in cargo-deb cargo-generate-rpm; do
  command -v $t >/dev/null || { echo "release.sh: $t is missing: cargo install $t --locked" >&2; exit 1; }
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
  echo "release.sh: cargo zigbuild --release --target $TRIPLE.$GLIBC ..." >&2
  cargo zigbuild --release --locked --target "$TRIPLE.$GLIBC" \
    -p collectord -p shipperd -p sec-trackerctl --bins >&2
fi

# The newest glibc symbol version a binary asks for ("none" for a static one).
newest_glibc() {
  objdump -T "$1" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1 | grep . || echo none
}
for b in "${BINARIES[@]}"; do
  [ -x "$BUILT/$b" ] || { echo "release.sh: $BUILT/$b is missing (run without --skip-build)" >&2; exit 1; }
  need=$(newest_glibc "$BUILT/$b")
  if [ "$need" != none ] && [ "$(printf '%s\n%s\n' "$need" "$GLIBC" | sort -V | tail -n 1)" != "$GLIBC" ]; then
    echo "release.sh: $BUILT/$b needs GLIBC_$need, newer than $GLIBC: not a release artifact" >&2
    exit 1
  fi
  echo "release.sh: $b needs glibc $need at most" >&2
done

rm -rf "$DIST" "$BUILT/stripped" "$BUILT/selinux"
mkdir -p "$DIST" "$BUILT/stripped" "$BUILT/selinux"
# The binaries as shipped in the tarball and the .rpm: their line tables stripped, as cargo-deb
# strips the .deb's.
for b in "${BINARIES[@]}"; do
  strip --strip-debug -o "$BUILT/stripped/$b" "$BUILT/$b"
done
# The SELinux module: checkmodule and semodule_package through the policy headers' Makefile.
cp apparmor/selinux/sec_tracker.te apparmor/selinux/sec_tracker.fc apparmor/selinux/sec_tracker.if "$BUILT/selinux/"
make -s -C "$BUILT/selinux" -f /usr/share/selinux/devel/Makefile sec_tracker.pp >&2

# The tarball: the binaries (their line tables stripped, as in the .deb) and what install.sh reads
# from beside itself, in the layout it expects; install.sh takes bin/ when there is no Cargo.toml.
NAME=sec-tracker-$VERSION-x86_64-linux-gnu
STAGE=$DIST/$NAME
mkdir -p "$STAGE/bin" "$STAGE/scripts/deb" "$STAGE/systemd" "$STAGE/apparmor"
cp "$BUILT"/stripped/* "$STAGE/bin/"
cp scripts/install.sh scripts/uninstall.sh "$STAGE/scripts/"
cp scripts/deb/config.json "$STAGE/scripts/deb/"
cp systemd/*.service "$STAGE/systemd/"
cp apparmor/usr.local.bin.* "$STAGE/apparmor/"
cp README.md "$STAGE/"
# Same bytes for the same inputs: fixed owner, order and time (the last commit's).
MTIME=$(git log -1 --format=@%ct 2>/dev/null || echo @0)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="$MTIME" -C "$DIST" -cf - "$NAME" |
  gzip -9n >"$DIST/$NAME.tar.gz"
rm -rf "$STAGE"

# The .deb from the same binaries.
deb=$(scripts/build-deb.sh --target "$TRIPLE" | tail -n 1)
cp "$deb" "$DIST/"

# The .rpm from the same binaries; gzip, which every supported rpm reads (RHEL 7's has no zstd).
cargo generate-rpm -p ctl --target "$TRIPLE" --payload-compress gzip -o "$DIST/" >&2

(cd "$DIST" && sha256sum -- *.tar.gz *.deb *.rpm >SHA256SUMS)
ls -1 "$DIST"/*.tar.gz "$DIST"/*.deb "$DIST"/*.rpm "$DIST/SHA256SUMS"
