#!/usr/bin/env bash
# Streamed vs stage-by-stage on the same documents with the demo model and
# the demo's settings (configs/demo.toml: batch 4, embedded llama.cpp, all
# cores): model time, time to the first written pair (the first line of
# stages/rewrite.jsonl, seen from outside the process, the same for both),
# tokens per second, exported pairs. One fresh run folder per mode (no
# response cache shared). Table in BENCHMARKS.md "Streaming".
#   scripts/bench-stream.sh [OUT] [N_DOCS]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results/stream}"; N="${2:-24}"
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
scripts/fetch-assets.sh corpus >/dev/null
B=./target/release/backforth
mkdir -p "$OUT"; rm -f "$OUT/times.txt"
for mode in staged streamed; do
  rm -rf "${OUT:?}/$mode"
  s=false; [ "$mode" = streamed ] && s=true
  t0=$(date +%s%N)
  $B run --quiet --config configs/demo.toml --model "$MODEL" --seeds "$SEEDS" \
    --input "$CACHE/corpus/gensim/lee_background.cor" --limit "$N" \
    --stages backtranslate,curate,rewrite -s run.streaming=$s --out "$OUT/$mode" 2> "$OUT/$mode.log" &
  pid=$!
  first=""
  while kill -0 "$pid" 2>/dev/null; do
    if [ -z "$first" ] && [ -s "$OUT/$mode/stages/rewrite.jsonl" ]; then
      first=$(( ($(date +%s%N) - t0) / 1000000 ))
    fi
    sleep 0.5
  done
  wait "$pid"
  total=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$mode $first $total" >> "$OUT/times.txt"
done
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
times = {l.split()[0]: l.split()[1:] for l in open(f"{out}/times.txt")}
print("| mode | wall, s | first rewrite written, s | model time, s | prompt + generated tokens / s | requests | rewrites parsed | dataset (passing) |")
print("|---|---|---|---|---|---|---|---|")
for mode in ["staged", "streamed"]:
    s = json.load(open(f"{out}/{mode}/summary.json"))
    inv = s["invocation"]
    walls = [r["wall_s"] for r in inv.values()]
    model = max(walls) if mode == "streamed" else sum(walls)
    toks = sum(r["prompt_tokens"] + r["completion_tokens"] for r in inv.values())
    reqs = sum(r["generated"] for r in inv.values())
    rw = s["stages"]["rewrite"]
    first, total = times[mode][-2:]
    print(f"| {mode} | {int(total) / 1000:.0f} | {int(first) / 1000:.0f} | {model:.0f} | {toks / model:.0f} | {reqs} | {rw['parsed_ok']} of {rw['done']} | {s['outputs']['dataset']['examples']} |")
PY
