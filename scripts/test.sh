#!/usr/bin/env bash
# README command 2 (and what CI runs): install build deps, fetch the pinned
# test assets (SmolLM2-135M GGUF, news corpus, Wikipedia fragment, Python manual,
# news HTML, spam emails, seed pairs, the Python `datasets` library), check the layout invariants
# (scripts/check-layout.sh, and its self-test on planted violations), run all tests.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
scripts/fetch-assets.sh test-model corpus seeds news-html junk minilm mtbench hf-datasets moto >/dev/null
scripts/check-layout.sh
scripts/check-layout.sh --self-test
cargo test --release --locked --workspace "$@"
