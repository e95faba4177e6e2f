#!/usr/bin/env bash
# Few-shot seeds that fit the document: the demo model backtranslates and
# scores the same N demo documents twice, with k seed pairs drawn at random
# (backtranslate.seed_selection = "random") and with the k nearest by TF-IDF
# ("nearest"); every parsed pair is kept (curate.keep_min_score = 1) so the
# relevance check (no model) sees every instruction. Prints, per selection:
# instructions parsed, mean instruction ↔ document relevance, the share the
# check flags as off-topic or as a non-instruction, and the curation scores.
#   scripts/bench-seed-selection.sh [N=40]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-40}
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
scripts/fetch-assets.sh corpus >/dev/null
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
BIN=${BACKFORTH:-target/release/backforth}
[ -x "$BIN" ] || cargo build --release --locked -p backforth-cli
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for sel in random nearest; do
  t0=$(date +%s)
  "$BIN" run --quiet --config configs/demo.toml --model "$MODEL" \
    --input "$CACHE/corpus/gensim/lee_background.cor" --seeds "$SEEDS" --limit "$N" \
    --stages backtranslate,curate -s "backtranslate.seed_selection=\"$sel\"" \
    -s curate.keep_min_score=1 -s cache.enabled=false --out "$tmp/$sel" 2>/dev/null
  echo "$sel: $(( $(date +%s) - t0 )) s"
done
python3 - "$tmp" <<'PY'
import json, sys, statistics
root = sys.argv[1]
print(f"{'selection':<9} {'parsed':>7} {'relevance':>10} {'off-topic':>10} {'non-instr.':>10} {'passed':>7}  scores")
for sel in ["random", "nearest"]:
    s = json.load(open(f"{root}/{sel}/summary.json"))
    rows = [json.loads(l) for l in open(f"{root}/{sel}/checks.jsonl")]
    rows = [r for r in rows if r["export"] == "curated"]
    rel = [r["checks"]["relevance"] for r in rows if r["checks"]["relevance"] is not None]
    off = sum("instruction_off_topic" in r["checks"]["reasons"] for r in rows)
    non = sum(any(x in ("instruction_fragment", "instruction_to_reader", "instruction_meta") for x in r["checks"]["reasons"]) for r in rows)
    ok = sum(r["passed"] for r in rows)
    bt = s["stages"]["backtranslate"]
    n = len(rows) or 1
    print(f"{sel:<9} {bt['parsed_ok']:>3}/{bt['done']:<3} {statistics.mean(rel) if rel else float('nan'):>10.3f} "
          f"{off / n:>10.1%} {non / n:>10.1%} {ok / n:>7.1%}  {s['stages']['curate']['score_histogram']}")
# paired, per document: the same document's instruction under each selection
by = {}
for sel in ["random", "nearest"]:
    for l in open(f"{root}/{sel}/checks.jsonl"):
        r = json.loads(l)
        if r["export"] == "curated":
            by.setdefault(r["id"], {})[sel] = r["checks"]
both = [v for v in by.values() if len(v) == 2]
flag = lambda c: "instruction_off_topic" in c["reasons"]
only_r = sum(flag(v["random"]) and not flag(v["nearest"]) for v in both)
only_n = sum(flag(v["nearest"]) and not flag(v["random"]) for v in both)
d = [v["nearest"]["relevance"] - v["random"]["relevance"] for v in both
     if v["nearest"]["relevance"] is not None and v["random"]["relevance"] is not None]
# exact two-sided sign test on the discordant documents (McNemar's exact form)
from math import comb
k, m = min(only_r, only_n), only_r + only_n
p = min(1.0, 2 * sum(comb(m, i) for i in range(k + 1)) / 2 ** m) if m else 1.0
print(f"paired over {len(both)} documents: off-topic only with random {only_r}, only with nearest {only_n} "
      f"(exact sign test p = {p:.2f}); relevance nearest − random: mean {statistics.mean(d) if d else 0:+.3f}, "
      f"higher in {sum(x > 0 for x in d)}, lower in {sum(x < 0 for x in d)}, equal in {sum(x == 0 for x in d)}")
PY
