#!/usr/bin/env bash
# Benchmark (not a test): prompt reuse on the demo, before and after, one
# binary. "before" = the curate and rewrite prompts in their earlier order
# (document first, taken from git at bf7ed73^) with model.prefix_reuse=false;
# "after" = the defaults. Prints per-stage prompt tokens prefilled and reused
# and wall times from each summary.json. Figures in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
C="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$C"
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
scripts/fetch-assets.sh corpus >/dev/null
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
cargo build --release --locked -p backforth-cli
T="$C/tmp/bench-prefix-reuse"; mkdir -p "$T"
git show bf7ed73^:crates/method/prompts/curate.j2 > "$T/old-curate.j2"
git show bf7ed73^:crates/method/prompts/rewrite.j2 > "$T/old-rewrite.j2"
common=(run --config configs/demo.toml --model "$MODEL" --input "$C/corpus/gensim/lee_background.cor" --seeds "$SEEDS" --quiet)
rm -rf "$T/before" "$T/after"
./target/release/backforth "${common[@]}" --out "$T/before" \
  -s model.prefix_reuse=false -s "curate.template=\"$T/old-curate.j2\"" -s "rewrite.template=\"$T/old-rewrite.j2\""
./target/release/backforth "${common[@]}" --out "$T/after"
for n in before after; do
  python3 - "$T/$n/summary.json" "$n" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(sys.argv[2])
for st in ["backtranslate", "curate", "rewrite", "distill"]:
    v = s["invocation"][st]
    p, r = v["prompt_tokens"], v["prompt_tokens_reused"]
    print(f"| {st} | {v['generated']} | {p} | {r} | {p - r} | {v['wall_s']:.1f} |")
print("curate scores:", s["stages"]["curate"].get("score_histogram"))
PY
done
