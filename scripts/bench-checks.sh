#!/usr/bin/env bash
# The learned grounding checker measured (BENCHMARKS.md, "Learned grounding
# checker"): train it on two corpora (gensim's Lee news stories, the Python
# 3.11 manual's library pages cut at headings by `backforth prepare`), choose
# its thresholds on the built news set, then report every detector with
# those thresholds on the sets they were not chosen on: the 117 hand-labelled
# news outputs, the 108 hand-labelled Python-manual outputs, and the
# near-document sets of both corpora, and 59 instructions the demo model
# wrote for news stories 101-160, labelled after the checks were written. Last, the cost beside the verify stage
# on the same pairs (the demo model, the same cores).
#
#   scripts/bench-checks.sh [OUT]        (default OUT=bench-results/checks)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
OUT="${1:-bench-results/checks}"
mkdir -p "$OUT"
scripts/fetch-assets.sh corpus minilm seeds demo-model >/dev/null
cargo build --release --locked -p backforth-cli
B=./target/release/backforth
M="$CACHE/models/all-MiniLM-L6-v2"
LEE="$CACHE/corpus/gensim/lee_background.cor"
export BACKFORTH_LOG=warn

# the Python manual's library pages, segmented at headings (the labels' corpus)
[ -f "$OUT/pydoc/candidates.jsonl" ] || $B prepare --quiet \
  --input "$CACHE/corpus/python3.11-doc/html/library" --out "$OUT/pydoc" -s segment.mode='"headings"'
PY="$OUT/pydoc/candidates.jsonl"

# one checker per corpus, trained on the corpus alone (resumable)
$B checks train --quiet --input "$LEE" --out "$OUT/model-lee" --embedding-model "$M"
$B checks train --quiet --input "$PY" --out "$OUT/model-pydoc" --embedding-model "$M"

common=(--quiet --no-verify -s checks.embedding_model="\"$M\"")
lee=(-s checks.grounding_model="\"$OUT/model-lee/grounding.json\"")
py=(-s checks.grounding_model="\"$OUT/model-pydoc/grounding.json\"")

echo "== thresholds chosen on the built news set"
$B bench checks "${common[@]}" "${lee[@]}" --choose-thresholds --out "$OUT/lee-built" | tee "$OUT/lee-built.md"
T=$(grep -o -- '-s checks.min_sentence_support=[0-9.]* -s checks.min_instruction_relevance=[0-9.]*' "$OUT/lee-built.md")
# shellcheck disable=SC2206
T=($T)
echo "== with those thresholds (${T[*]}): news, near-document set"
$B bench checks "${common[@]}" "${lee[@]}" "${T[@]}" --near --out "$OUT/lee-near" | tee "$OUT/lee-near.md"
echo "== news, 117 hand-labelled real outputs"
$B bench checks "${common[@]}" "${lee[@]}" "${T[@]}" --labels crates/method/tests/data/lee-real-labels.jsonl --out "$OUT/lee-real" | tee "$OUT/lee-real.md"
echo "== news, 59 held-out instructions (stories 101-160, labelled before any check ran on them)"
$B bench checks "${common[@]}" "${lee[@]}" "${T[@]}" --labels crates/method/tests/data/lee-heldout-instruction-labels.jsonl --out "$OUT/lee-heldout" | tee "$OUT/lee-heldout.md"
echo "== Python manual, 108 hand-labelled real outputs"
$B bench checks "${common[@]}" "${py[@]}" "${T[@]}" --corpus "$PY" --labels crates/method/tests/data/pydoc-real-labels.jsonl --out "$OUT/pydoc-real" | tee "$OUT/pydoc-real.md"
echo "== Python manual, near-document set"
$B bench checks "${common[@]}" "${py[@]}" "${T[@]}" --corpus "$PY" --near --out "$OUT/pydoc-near" | tee "$OUT/pydoc-near.md"
echo "== cost: the verify stage (demo model) and the learned checker on the same 40 pairs"
$B bench checks --quiet -s checks.embedding_model="\"$M\"" "${lee[@]}" "${T[@]}" --n 40 \
  --model "$CACHE/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" --batch-size 4 -s model.context=3072 \
  --out "$OUT/cost" | tee "$OUT/cost.md"
