#!/usr/bin/env bash
# Embedded-backend throughput vs llama.cpp's own llama-batched-bench, same
# GGUF, threads, batch sizes, prompt/generation lengths, in one run.
# Usage: scripts/bench.sh [MODEL.gguf] ; env THREADS (default: nproc), NPL (1,4,8,16), PP (128), TG (128)
# Writes bench-results/<timestamp>/{backforth,llama-batched-bench}.txt and prints both tables.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
MODEL="${1:-$(scripts/fetch-assets.sh demo-model | tail -1)}"
THREADS="${THREADS:-$(nproc)}"; NPL="${NPL:-1,4,8,16}"; PP="${PP:-128}"; TG="${TG:-128}"
PEER=$(scripts/build-llama-tool.sh llama-batched-bench | tail -1)
cargo build --release --locked -p backforth-cli >&2
OUT="bench-results/$(date -u +%Y%m%dT%H%M%SZ)"; mkdir -p "$OUT"
MAXB=$(echo "$NPL" | tr , '\n' | sort -n | tail -1)
CTX_SEQ=$(( ( (PP + TG + 16 + 255) / 256 ) * 256 ))
echo "== backforth bench engine (model $(basename "$MODEL"), threads $THREADS)"
./target/release/backforth bench engine --model "$MODEL" --threads "$THREADS" --batch-sizes "$NPL" \
  --prompt-tokens "$PP" --gen-tokens "$TG" --n-batch 512 --json "$OUT/backforth.json" | tee "$OUT/backforth.txt"
echo "== llama-batched-bench (same llama.cpp family, same settings)"
"$PEER" -m "$MODEL" -t "$THREADS" -c $((CTX_SEQ * MAXB)) -b 512 -ub 512 -npp "$PP" -ntg "$TG" -npl "$NPL" 2>/dev/null | tee "$OUT/llama-batched-bench.txt"
echo "results in $OUT"
