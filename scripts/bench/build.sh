#!/usr/bin/env bash
# Builds what the benchmarks and the soak run: the release daemons and CLI exactly as installed
# (`cargo build --release --locked --bins`, the command of install.sh and .ci/run: no test code in
# them, so their memory figures are the shipped binaries'), and the test kit's binaries (the
# synthetic collector, the load generators, the management-server double). Two commands, because
# one would unify the test kit's dependency features into the products' build.
# The test kit goes first: the last build leaves target/release/{collectord,shipperd,sec-trackerctl}.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q --locked -p sec-tracker-testkit --bins
cargo build --release -q --locked -p collectord -p shipperd -p sec-trackerctl --bins
