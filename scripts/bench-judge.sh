#!/usr/bin/env bash
# Benchmark (not a test): can the judge tell a right answer from a wrong one?
# From the first N news stories of gensim's lee_background.cor (N=30 by
# default), each instruction asks about its story; the "model" answer is an
# extract of that story, the "baseline" answer an extract of another story.
# A judge that reads should prefer the model nearly always. `eval` runs twice
# with the same judge (default: the demo model): with verdict probabilities
# (--top-logprobs 10) and with discrete verdicts only (--top-logprobs 0).
# Usage: scripts/bench-judge.sh [N] [MODEL.gguf]. Figures in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
C="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$C"
N="${1:-30}"
MODEL="${2:-$(scripts/fetch-assets.sh demo-model | tail -1)}"
scripts/fetch-assets.sh corpus >/dev/null
cargo build --release --locked -p backforth-cli
T="$C/tmp/bench-judge"; mkdir -p "$T"
python3 - "$C/corpus/gensim/lee_background.cor" "$T" "$N" <<'PY'
import json, re, sys
corpus, out, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
docs = [l.strip() for l in open(corpus) if len(re.split(r"(?<=[.!?])\s+", l.strip())) >= 4]
def extract(d):
    return " ".join(re.split(r"(?<=[.!?])\s+", d)[:3])
def instruction(d):
    first = re.split(r"(?<=[.!?])\s+", d)[0]
    words = sorted({w for w in re.findall(r"[A-Za-z][A-Za-z-]{4,}", first)}, key=lambda w: (-len(w), w))[:2]
    return f"Summarise the news about {' and '.join(words)}."
model, base = [], []
for i in range(n):
    d, other = docs[i], docs[(i + len(docs) // 2) % len(docs)]
    ins = instruction(d)
    model.append({"instruction": ins, "output": extract(d), "generator": "right-story"})
    base.append({"instruction": ins, "output": extract(other), "generator": "other-story"})
json.dump(model, open(f"{out}/right.json", "w"), indent=1)
json.dump(base, open(f"{out}/other.json", "w"), indent=1)
PY
for k in 10 0; do
  rm -rf "$T/eval-$k"
  ./target/release/backforth eval --config configs/demo.toml --model "$MODEL" --quiet \
    --model-outputs "$T/right.json" --baseline-outputs "$T/other.json" --out "$T/eval-$k" --top-logprobs "$k" 2>&1 | grep -E "^eval:|^warning" || true
done
