#!/usr/bin/env bash
# The parsers' unit tests built for aarch64 and run under qemu-user: the auth-log parsers (and
# their golden files), the wtmp/btmp reader, the sock_diag and /proc/net decoders, netlink
# framing, the detection rules, and the config file, JSON and metrics of sec-tracker-proto.
# Byte order, alignment and pointer size are where a parser goes wrong on another machine.
#
#   scripts/test-aarch64.sh
#
# Needs the aarch64 standard library (rustup target add aarch64-unknown-linux-gnu), a cross
# linker and C compiler (SQLite is C) and the cross libc (apt-get install gcc-aarch64-linux-gnu
# libc6-dev-arm64-cross), and qemu-user. Builds into cargo's target directory
# (target/aarch64-unknown-linux-gnu/debug).
set -euo pipefail
cd "$(dirname "$0")/.."
TRIPLE=aarch64-unknown-linux-gnu
for t in aarch64-linux-gnu-gcc qemu-aarch64; do
  command -v $t >/dev/null || { echo "test-aarch64.sh: $t is missing: apt-get install gcc-aarch64-linux-gnu qemu-user" >&2; exit 2; }
done
rustc --print sysroot | xargs -I{} test -d {}/lib/rustlib/$TRIPLE || {
  echo "test-aarch64.sh: no standard library for $TRIPLE: rustup target add $TRIPLE" >&2; exit 2; }
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# The test binaries must be what they claim: check one is an aarch64 ELF before trusting a pass.
cargo test --locked --target $TRIPLE -p sec-tracker-proto --lib -- --quiet
cargo test --locked --target $TRIPLE -p collectord --lib -- --quiet \
  monitors::auth::parse monitors::auth::utmp monitors::network::diag::tests \
  monitors::network::procnet netlink::tests rules::tests
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
bin=$(ls -t "$TARGET_DIR"/$TRIPLE/debug/deps/collectord-* | grep -v '\.d$' | head -n 1)
machine=$(readelf -h "$bin" | sed -n 's/^ *Machine: *//p')
[ "$machine" = AArch64 ] || { echo "test-aarch64.sh: $bin is $machine, not AArch64" >&2; exit 1; }
echo "test-aarch64.sh: the parsers' tests passed as $machine code under $(qemu-aarch64 --version | head -n 1)"
