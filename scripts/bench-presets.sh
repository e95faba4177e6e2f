#!/usr/bin/env bash
# The shipped presets side by side on the same documents with the demo model
# (Qwen2.5-Coder-0.5B-Instruct, embedded llama.cpp, 2 threads): pairs (or
# texts) exported, share passing the checks, curation scores, model seconds
# per exported item. One fresh run folder per preset; each run resumes if
# killed. Table in BENCHMARKS.md "Presets".
#   scripts/bench-presets.sh [OUT] [N_DOCS] [PRESET ...]
# BENCH_INPUT=FILE runs on that JSONL/text file instead of the news stories
# (e.g. the `prepare` candidates of the Python manual).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-bench-results/presets}"; N="${2:-12}"; shift $(( $# > 2 ? 2 : $# )) || true
PRESETS=("$@"); [ ${#PRESETS[@]} -gt 0 ] || PRESETS=(bf-filter-rewrite longform kun-polish nemotron-rephrase)
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
scripts/fetch-assets.sh corpus minilm >/dev/null
B=./target/release/backforth
mkdir -p "$OUT"
# the demo's settings (configs/demo.toml) as flags, so that each preset's own
# run.stages stays in force (a config file would override it); one keep
# threshold (4: the 0.5B scorer gives few 5s) and one response budget for all
common=(-s model.context=3072 -s model.batch_size=4 -s input.min_chars=200 -s input.max_chars=6000
  -s backtranslate.k=2 -s backtranslate.max_seed_chars=700 -s backtranslate.max_tokens=96
  -s curate.max_tokens=160 -s curate.keep_min_score=4 -s rewrite.max_tokens=640)
extra() {
  case "$1" in
    kun-polish) echo "-s stage.polish.max_tokens=640" ;;
    nemotron-rephrase) for s in qa wiki distill knowledge; do echo "-s stage.rephrase_$s.max_tokens=640"; done ;;
  esac
}
for p in "${PRESETS[@]}"; do
  echo "== $p ($N documents)" >&2
  # shellcheck disable=SC2046
  $B run --quiet --preset "$p" --model "$MODEL" --threads 2 \
    --input "${BENCH_INPUT:-$CACHE/corpus/gensim/lee_background.cor}" --seeds "$SEEDS" --limit "$N" "${common[@]}" $(extra "$p") \
    -s checks.embedding_model="\"$CACHE/models/all-MiniLM-L6-v2\"" \
    --out "$OUT/$p" 2> "$OUT/$p.log"
done
python3 - "$OUT" "${PRESETS[@]}" <<'PY'
import json, sys
out, presets = sys.argv[1], sys.argv[2:]
print("| preset | stages | pairs per document | export: items (passing checks / checked) | curation scores 1–5 | generated tokens | model time, s | s per exported item |")
print("|---|---|---|---|---|---|---|---|")
for p in presets:
    s = json.load(open(f"{out}/{p}/summary.json"))
    inv = s.get("invocation", {})
    wall = sum(r.get("wall_s", 0) for r in inv.values())
    toks = sum(t.get("completion_tokens", 0) for t in s["stages"].values())
    hist = s["stages"].get("curate", {}).get("score_histogram")
    scores = "/".join(str(hist.get(str(i), 0)) for i in range(1, 6)) if hist else "–"
    exp = []
    for name, o in s["outputs"].items():
        c = o.get("checks")
        exp.append(f"{name} {o['examples']}" + (f" ({c['passed']}/{c['checked']})" if c else ""))
    main = {"bf-filter-rewrite": "dataset", "longform": "dataset", "kun-polish": "polish", "multi-pair": "dataset"}.get(p)
    bt = s["stages"].get("backtranslate", {})
    docs = bt.get("done", 0)
    pairs = bt.get("pairs") or bt.get("parsed_ok", 0)
    ppd = f"{pairs / docs:.2f} ({pairs} / {docs})" if docs else "–"
    items = s["outputs"].get(main, {}).get("examples") if main else sum(o["examples"] for o in s["outputs"].values())
    per = f"{wall / items:.1f}" if items else "–"
    print(f"| `{p}` | {', '.join(s['stages'])} | {ppd} | {'; '.join(exp)} | {scores} | {toks} | {wall:.0f} | {per} |")
PY
