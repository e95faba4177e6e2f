#!/usr/bin/env bash
# Fuzz the corpus readers and the HTML / wikitext paths with cargo-fuzz
# (libFuzzer + AddressSanitizer; needs a nightly toolchain).
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#   CI runs a short pass (20 s per target); for a long run, e.g.
#   scripts/fuzz.sh 3600 html   — crashes land in fuzz/artifacts/<target>/.
# Targets: warc html wikitext wiki_xml jsonl (fuzz/fuzz_targets/).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(warc html wikitext wiki_xml jsonl)
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "[fuzz] no nightly toolchain (rustup toolchain install nightly): fuzzing skipped" >&2
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --version 0.13.2 --locked
cd fuzz
cargo +nightly fuzz build -O >&2
for t in "${targets[@]}"; do
  echo "[fuzz] $t for ${secs}s" >&2
  cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | grep -E "^Done|ERROR|SUMMARY" >&2
done
