#!/usr/bin/env bash
# README command 1: install what is needed, fetch the pinned demo model
# (Qwen2.5-Coder-0.5B-Instruct GGUF), real documents (300 news stories from
# gensim's test data) and real seed pairs (Python FAQ), build, and run the
# whole method on a small sample with configs/demo.toml. Rerunning resumes.
# Extra arguments go to `backforth run` (e.g. --limit 50, --set key=value).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
scripts/setup.sh
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
scripts/fetch-assets.sh corpus minilm >/dev/null
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
cargo build --release --locked -p backforth-cli
OUT="${BACKFORTH_DEMO_OUT:-runs/demo}"
# The learned grounding checker, trained once on the demo corpus itself (no
# labels; seeded, resumable, about 1.5 minutes on 2 cores) and kept in the cache.
GROUNDING="$CACHE/grounding/lee_background"
./target/release/backforth checks train --quiet \
  --input "$CACHE/corpus/gensim/lee_background.cor" \
  --embedding-model "$CACHE/models/all-MiniLM-L6-v2" --out "$GROUNDING"
./target/release/backforth run --config configs/demo.toml \
  --model "$MODEL" \
  --input "$CACHE/corpus/gensim/lee_background.cor" \
  --seeds "$SEEDS" \
  --set checks.embedding_model="\"$CACHE/models/all-MiniLM-L6-v2\"" \
  --set checks.grounding_model="\"$GROUNDING/grounding.json\"" \
  --out "$OUT" "$@"
# Measure the data: rewritten vs distilled responses judged pairwise by the
# same model (both orders), distribution analyses, one HTML report.
B=./target/release/backforth
$B eval --config configs/demo.toml --model "$MODEL" --model-outputs "$OUT/dataset.jsonl" --baseline-outputs "$OUT/distilled.jsonl" --out "$OUT/eval-rewrite-vs-distill"
$B analyze --run "$OUT"
$B report --run "$OUT" --eval "$OUT/eval-rewrite-vs-distill"
echo
echo "report:                                     $OUT/report.html"
echo "dataset (instruction, rewritten response): $OUT/dataset.jsonl"
echo "curated pairs (instruction, original text): $OUT/curated.jsonl"
echo "distilled baseline:                         $OUT/distilled.jsonl"
echo "summary:                                    $OUT/summary.json"
