#!/usr/bin/env bash
# The rules' cost per event: the built-in set judging a mix of common events (medians of 7 runs
# of 200,000 matches each; collectord/benches/rules.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench -q -p collectord --bench rules 2>/dev/null
