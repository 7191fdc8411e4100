#!/usr/bin/env bash
# Builds the sec-tracker .deb with cargo-deb (metadata: [package.metadata.deb] in ctl/Cargo.toml;
# maintainer scripts and the default config in scripts/deb/):
#
#   scripts/build-deb.sh [--rebuild | --target TRIPLE]
#
# Uses release/{collectord,shipperd,sec-trackerctl} in cargo's target directory (./target, or
# CARGO_TARGET_DIR), building them first when one is missing (or always with --rebuild), and
# generates the man pages and completions with that sec-trackerctl. With --target, packages the
# binaries already built for TRIPLE (TRIPLE/release/; scripts/release.sh builds them against
# glibc 2.17 and calls this). Needs cargo-deb: cargo install cargo-deb --locked. Prints the path
# of the .deb (<target>/debian/ or <target>/TRIPLE/debian/, sec-tracker_<version>-1_<arch>.deb)
# on its last line.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
REBUILD=0
TRIPLE=""
case "${1:-}" in
  --rebuild) REBUILD=1 ;;
  --target) TRIPLE=${2:?--target needs a target triple} ;;
  "") ;;
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "build-deb.sh: unknown argument: $1 (see --help)" >&2; exit 2 ;;
esac

command -v cargo-deb >/dev/null || {
  echo "build-deb.sh: cargo-deb is missing: cargo install cargo-deb --locked" >&2
  exit 1
}
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
RELEASE=$TARGET_DIR/${TRIPLE:+$TRIPLE/}release
missing=$REBUILD
for b in collectord shipperd sec-trackerctl; do
  [ -x "$RELEASE/$b" ] || missing=1
done
if [ "$missing" = 1 ] && [ -n "$TRIPLE" ]; then
  echo "build-deb.sh: no binaries in $RELEASE: build them first (scripts/release.sh)" >&2
  exit 1
elif [ "$missing" = 1 ]; then
  echo "build-deb.sh: cargo build --release ..." >&2
  cargo build --release --locked -p collectord -p shipperd -p sec-trackerctl --bins >&2
fi
# Man pages and completions from the sec-trackerctl being packaged (the assets under
# target/release/package-docs in ctl/Cargo.toml). Another architecture's binary runs under
# qemu-user (qemu-aarch64 with the cross libc in /usr/aarch64-linux-gnu) when this machine
# cannot run it itself: the pages are the same on every architecture.
DOCS=$RELEASE/package-docs
rm -rf "$DOCS"
mkdir -p "$DOCS/completions"
CTL=("$RELEASE/sec-trackerctl")
arch=${TRIPLE%%-*}
if [ -n "$TRIPLE" ] && [ "$arch" != "$(uname -m)" ]; then
  command -v "qemu-$arch" >/dev/null || {
    echo "build-deb.sh: $TRIPLE's sec-trackerctl needs qemu-$arch to render the man pages: apt-get install qemu-user" >&2
    exit 1
  }
  CTL=("qemu-$arch" -L "/usr/$arch-linux-gnu" "$RELEASE/sec-trackerctl")
fi
"${CTL[@]}" manpages "$DOCS/man" >/dev/null
# gzipped as Debian wants them, without a timestamp so that a rebuild gives the same bytes.
gzip -9n "$DOCS"/man/man*/*
"${CTL[@]}" completions bash >"$DOCS/completions/sec-trackerctl"
"${CTL[@]}" completions zsh >"$DOCS/completions/_sec-trackerctl"
"${CTL[@]}" completions fish >"$DOCS/completions/sec-trackerctl.fish"
# --no-build: the three binaries come from the workspace build above, not only ctl's.
# cargo-deb prints the paths of the .deb and the .ddeb (debug symbols) it wrote on stdout.
# With --target, cargo-deb reads the assets' target/release/ as target/TRIPLE/release/.
# And the glibc217 variant states the dependency those binaries have (see ctl/Cargo.toml).
out=$(cargo deb -p sec-trackerctl --no-build ${TRIPLE:+--target "$TRIPLE" --variant glibc217})
deb=$(printf "%s\n" "$out" | grep "\.deb$" | tail -n 1)
# The stripped line tables: sec-tracker-dbgsym_*.ddeb beside it (install it to debug backtraces).
printf "%s\n" "$out" | grep "\.ddeb$" | sed "s/^/debug symbols: /" >&2 || true
[ -f "$deb" ] || { echo "build-deb.sh: cargo deb wrote no .deb (got: $deb)" >&2; exit 1; }
echo "$deb"
