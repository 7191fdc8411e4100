#!/usr/bin/env bash
# Builds what the benchmarks and the soak run: the release daemons and CLI exactly as installed
# (`cargo build --release --locked --bins`, the command of install.sh and .ci/run: no test code in
# them, so their memory figures are the shipped binaries'), and the helper examples (synthetic
# collector, load generators, the benchmark HTTPS server, which needs shipperd's `testing`
# feature). Two commands, because one would unify the features and put test code in shipperd.
# The examples go first: the last build leaves target/release/{collectord,shipperd,sec-trackerctl}.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q --locked -p collectord -p shipperd --features shipperd/testing --examples
cargo build --release -q --locked -p collectord -p shipperd -p sec-trackerctl --bins
