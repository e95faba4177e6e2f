#!/usr/bin/env bash
# The learned document filter (FineWeb-Edu's recipe) measured on documents it
# was not trained on, with the demo model as the rating LLM
# (Qwen2.5-Coder-0.5B-Instruct, embedded llama.cpp, 2 threads):
#  1. the doc-rubric preset rates the 300 news stories of the demo corpus and
#     120 sections of the Python manual (every tenth of the 641 that
#     `prepare -s segment.mode='"headings"'` keeps, plus 56 more spread over
#     the rest);
#  2. the filter is trained on news stories 41–300 (a quarter held out by id
#     hash) and its agreement with the LLM is reported on the held-out
#     stories, on stories 1–40 (the demo's documents) and on the manual;
#  3. its effect on what the method keeps: the demo run's and the Python
#     run's documents (DEMO_RUN, PY_RUN: finished run folders of the full
#     method on those documents) scored by the filter, curation kept share
#     and pairs passing the checks with and without it (scripts/doc_filter_effect.py).
# Results in BENCHMARKS.md "Learned document filter". Every step resumes.
#   scripts/bench-doc-filter.sh [OUT] [DEMO_RUN] [PY_RUN]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results/doc-filter}"; DEMO="${2:-}"; PYRUN="${3:-}"
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
scripts/fetch-assets.sh corpus minilm >/dev/null
B=./target/release/backforth
M="$CACHE/models/all-MiniLM-L6-v2"
export BACKFORTH_LOG=warn
mkdir -p "$OUT"
rate=(run --quiet --preset doc-rubric --model "$MODEL" -s model.context=3072 -s model.batch_size=4
  -s input.min_chars=200 -s input.max_chars=6000)
$B "${rate[@]}" --input "$CACHE/corpus/gensim/lee_background.cor" --out "$OUT/news"
[ -f "$OUT/pydoc/candidates.jsonl" ] || $B prepare --quiet \
  --input "$CACHE/corpus/python3.11-doc/html/library" --out "$OUT/pydoc" -s segment.mode='"headings"'
python3 - "$OUT/pydoc/candidates.jsonl" "$OUT/pydoc-sample.jsonl" <<'PY'
import json, sys
c = [json.loads(l) for l in open(sys.argv[1])]
tenth = c[5::10]  # the sections of the hand-labelled Python set (pydoc-real-labels.jsonl)
ids = {r["id"] for r in tenth}
rest = [r for r in c if r["id"] not in ids and 200 <= len(r["text"]) <= 6000]
extra = rest[::len(rest) // 56][:56]
with open(sys.argv[2], "w") as f:
    for r in tenth + extra:
        f.write(json.dumps(r) + "\n")
PY
$B "${rate[@]}" --input "$OUT/pydoc-sample.jsonl" --out "$OUT/python"
head -n 40 "$OUT/news/stages/doc_rubric.jsonl" > "$OUT/news-1-40.jsonl"
tail -n +41 "$OUT/news/stages/doc_rubric.jsonl" > "$OUT/news-41-300.jsonl"
$B checks train-filter --labels "$OUT/news-41-300.jsonl" --eval "$OUT/news-1-40.jsonl" \
  --eval "$OUT/python/stages/doc_rubric.jsonl" --embedding-model "$M" --threads 2 \
  --out "$OUT/filter" | tee "$OUT/train-filter.txt"
for r in "$DEMO" "$PYRUN"; do
  [ -n "$r" ] || continue
  name=$(basename "$r")
  $B prepare --quiet --input "$r/documents.jsonl" --out "$OUT/scored-$name" --threads 2 \
    -s doc_filter.model="\"$OUT/filter/doc_filter.json\"" -s doc_filter.embedding_model="\"$M\"" \
    -s doc_filter.min_probability=0.0
  python3 scripts/doc_filter_effect.py "$r" "$OUT/scored-$name/candidates.jsonl" 4 "$OUT/$([ "$r" = "$DEMO" ] && echo news || echo python)/stages/doc_rubric.jsonl" | tee "$OUT/effect-$name.md"
done
