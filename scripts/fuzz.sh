#!/usr/bin/env bash
# Runs every cargo-fuzz target of collectord for N seconds each; exits non-zero if any crashes
# (the crashing input is left in collectord/fuzz/artifacts/<target>/).
#
# Usage: scripts/fuzz.sh [seconds=30]
# Env:   FUZZ_DEV=1 builds the targets without optimisation (cargo fuzz --dev, debug assertions
#        on): 4 minutes instead of over 20 on 2 cores, and a tenth of the executions a second:
#        CI's choice for its short runs, not for the long ones.
# Needs: the stable toolchain only: RUSTC_BOOTSTRAP=1 unlocks the nightly flags cargo-fuzz uses.
set -euo pipefail
SECS=${1:-30}
BUILD_FLAGS=()
[ "${FUZZ_DEV:-0}" = 1 ] && BUILD_FLAGS=(--dev)
cd "$(dirname "$0")/../collectord/fuzz"
export RUSTC_BOOTSTRAP=1

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# The fuzz crate is its own workspace with its own Cargo.lock: like CI's --locked builds, refuse
# to run on a stale one (after a dependency of collectord or sec-tracker-proto changed).
if ! cargo metadata --locked --format-version 1 >/dev/null; then
    echo "collectord/fuzz/Cargo.lock is out of date: run 'cargo metadata --format-version 1 >/dev/null'" \
         "in collectord/fuzz to update it, and commit it" >&2
    exit 1
fi
# Build every target once up front, so that a build error is reported as one, not as a crash.
cargo fuzz build "${BUILD_FLAGS[@]}"

failed=()
for t in $(cargo fuzz list); do
    # New inputs go to corpus/<t> (git-ignored); seeds/<t> (committed) is read if present.
    mkdir -p "corpus/$t"
    dirs=("corpus/$t")
    [ -d "seeds/$t" ] && dirs+=("seeds/$t")
    echo "== $t: ${SECS}s"
    cargo fuzz run "${BUILD_FLAGS[@]}" "$t" "${dirs[@]}" -- -max_total_time="$SECS" -rss_limit_mb=2048 \
        || failed+=("$t")
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]} (see collectord/fuzz/artifacts/)" >&2
    exit 1
fi
echo "all targets ran ${SECS}s without a crash"
