#!/usr/bin/env bash
# Humpback's self-alignment loop on the demo corpus, and whether training
# helped, on 2 cores. The base model is the small test model
# (SmolLM2-135M-Instruct); the judge is Qwen2.5-Coder-1.5B-Instruct (the
# quality model; JUDGE=demo-model picks the 0.5B demo model).
#
#  1. The seed pairs are split (seeded): HELD pairs are held out, the rest
#     train M_yx and M_0; `backforth selfalign` runs one iteration on DOCS
#     news stories (backtranslate with M_yx, curate with M_0, train M_1 on
#     seed + pairs scored >= 4, re-curate with M_1) and prints what each
#     iteration changed.
#  2. Backward model vs the untrained base: the held-out responses go through
#     the backtranslate stage twice, base prompted with k seed pairs (the
#     stand-in the pipeline uses without M_yx) and base + M_yx; each
#     instruction is compared with the true one (token F1), and the judge
#     says which of the two the response answers (both orders). M_yx's
#     held-out loss before/after training is its true-instruction likelihood.
#  3. M_1 vs M_0: both answer Q MT-bench first turns with Humpback's seed
#     system tag; the judge compares them (both orders, probability-weighted).
#
#   scripts/selfalign-demo.sh [DOCS=40] [STEPS=30] [HELD=25] [Q=20]
# Output under ${BACKFORTH_SELFALIGN_OUT:-runs/selfalign-demo}; rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCS=${1:-40}
STEPS=${2:-30}
HELD=${3:-25}
Q=${4:-20}
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
BASE=$(scripts/fetch-assets.sh test-model | tail -1)
# the judge: the 1.5B quality model by default (JUDGE=demo-model for the 0.5B demo model)
JUDGE=$(scripts/fetch-assets.sh "${JUDGE:-quality-model}" | tail -1)
scripts/fetch-assets.sh corpus minilm >/dev/null
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
MTB=$(scripts/fetch-assets.sh mtbench | tail -1)
B=${BACKFORTH:-target/release/backforth}
[ -x "$B" ] || cargo build --release --locked -p backforth-cli
OUT="${BACKFORTH_SELFALIGN_OUT:-runs/selfalign-demo}"
mkdir -p "$OUT/eval"
SA="$OUT/selfalign"
t0=$(date +%s)

# 1. split the seeds; the held-out responses become documents
python3 - "$SEEDS" "$OUT" "$HELD" <<'PY'
import json, random, sys
seeds, out, held = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(seeds) if l.strip()]
idx = list(range(len(rows)))
random.Random(7).shuffle(idx)
hold = set(idx[:held])
with open(f"{out}/seeds-train.jsonl", "w") as f:
    for i, r in enumerate(rows):
        if i not in hold:
            f.write(json.dumps(r) + "\n")
with open(f"{out}/heldout-docs.jsonl", "w") as f:
    for i in sorted(hold):
        f.write(json.dumps({"id": f"seed-{i + 1}", "text": rows[i]["response"],
                            "instruction": rows[i]["instruction"]}) + "\n")
PY
TRAIN=(--train-set max_steps="$STEPS" --train-set max_seq=384 --train-set optim.lr=1e-3
  --train-set checkpoint_every=10)
"$B" selfalign --config configs/demo.toml --model "$BASE" \
  --input "$CACHE/corpus/gensim/lee_background.cor" --limit "$DOCS" \
  --seeds "$OUT/seeds-train.jsonl" --iterations 1 --keep 4 "${TRAIN[@]}" --out "$SA"
t1=$(date +%s)

# 2. backward model vs the prompted base, on the held-out responses
HELDCFG=(--config configs/demo.toml --input "$OUT/heldout-docs.jsonl" --seeds "$OUT/seeds-train.jsonl"
  --stages backtranslate -s input.min_chars=1 -s input.max_chars=100000 -s input.limit=0
  -s filter.enabled=false -s dedup.exact=false -s dedup.near=false --quiet)
"$B" run "${HELDCFG[@]}" --model "$BASE" --out "$OUT/eval/bt-base"
"$B" run "${HELDCFG[@]}" --model "$BASE" -s 'backtranslate.mode="finetuned"' \
  -s "backtranslate.lora=[\"$SA/myx/adapter.gguf\"]" --out "$OUT/eval/bt-myx"
python3 - "$OUT" <<'PY'
import json, re, sys
out = sys.argv[1]
true = {}
for l in open(f"{out}/heldout-docs.jsonl"):
    r = json.loads(l)
    true[r["text"]] = r["instruction"]
def instr(run):
    got = {}
    for l in open(f"{out}/eval/{run}/stages/backtranslate.jsonl"):
        r = json.loads(l)
        bt = r.get("backtranslation") or {}
        if bt.get("value"):
            got[r["text"]] = bt["value"]
    return got
words = lambda s: re.findall(r"\w+", s.lower())
def f1(a, b):
    a, b = words(a), words(b)
    common = sum(min(a.count(w), b.count(w)) for w in set(a))
    if not a or not b or not common:
        return 0.0
    p, r = common / len(a), common / len(b)
    return 2 * p * r / (p + r)
base, myx = instr("bt-base"), instr("bt-myx")
both = [t for t in true if t in base and t in myx]
print(f"{'backward model':<31} {'parsed':>7} {'F1, pairs both parsed':>22} {'F1, all (unparsed = 0)':>23}")
for name, got in [("base, prompted (k seed pairs)", base), ("base + M_yx (fine-tuned)", myx)]:
    s = [f1(got[t], true[t]) for t in both]
    a = [f1(got[t], true[t]) if t in got else 0.0 for t in true]
    print(f"{name:<31} {len(got):>3}/{len(true):<3} {sum(s) / max(len(s), 1):>15.3f} (n={len(s)}) {sum(a) / max(len(a), 1):>16.3f} (n={len(a)})")
# for the judge: the response is the "request", the instructions are the answers
for name, got in [("base", base), ("myx", myx)]:
    json.dump([{"instruction": t, "output": got[t], "generator": name} for t in both],
              open(f"{out}/eval/bt-{name}.json", "w"), indent=1)
s = json.load(open(f"{out}/selfalign/myx/train_summary.json"))
print(f"M_yx held-out loss on the true instructions (nats/token): {s['eval_loss_start']:.3f} (base) -> {s['eval_loss_end']:.3f} ({s['eval_examples']} pairs)")
PY
cat > "$OUT/eval/judge-instruction.j2" <<'EOF'
{#- Which of two instructions does a text answer? Variables: instruction
    (here: the text), output_a, output_b (the candidate instructions). -#}
@@ system
You compare two instructions a user might have written and decide which one the given text answers.
@@ user
Below is a text written by an assistant, then two candidate user instructions, A and B. Decide which instruction this text is the better answer to: the one whose request the text fulfils most completely and most directly. Ignore which candidate came first. If neither fits better, call it a tie.

Reply with a single line: `Preferred: A`, `Preferred: B` or `Preferred: tie`.

Text:
{{ instruction }}

[Instruction A]
{{ output_a }}
[End of instruction A]

[Instruction B]
{{ output_b }}
[End of instruction B]
EOF
"$B" eval --config configs/demo.toml --model "$JUDGE" --template "$OUT/eval/judge-instruction.j2" \
  --model-outputs "$OUT/eval/bt-myx.json" --baseline-outputs "$OUT/eval/bt-base.json" \
  --out "$OUT/eval/judge-myx-vs-base" > /dev/null

# 3. M_1 vs M_0 on MT-bench first turns, with the seed system tag
printf '@@ system\nAnswer in the style of an AI Assistant.\n@@ user\n{{ instruction }}\n' > "$OUT/eval/generate-tagged.j2"
for m in m0 m1; do
  "$B" generate --config configs/demo.toml --model "$BASE+lora:$SA/$m/adapter.gguf" --limit "$Q" \
    --instructions "$MTB/question.jsonl" --template "$OUT/eval/generate-tagged.j2" \
    --generator "$m" --max-tokens 256 --outputs "$OUT/eval/mtbench-$m.json"
done
"$B" eval --config configs/demo.toml --model "$JUDGE" --limit "$Q" \
  --model-outputs "$OUT/eval/mtbench-m1.json" --baseline-outputs "$OUT/eval/mtbench-m0.json" \
  --out "$OUT/eval/judge-m1-vs-m0" > /dev/null
t2=$(date +%s)

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
for name, what in [("judge-myx-vs-base", "M_yx's instruction vs the prompted base's, for the held-out responses"),
                   ("judge-m1-vs-m0", "M_1's answer vs M_0's, MT-bench first turns")]:
    s = json.load(open(f"{out}/eval/{name}/eval_summary.json"))
    r = s.get("reliability", {})
    wr = s.get("win_rate")
    ci = s.get("win_rate_ci95")
    shown = f"win rate {wr:.1f}" + (f" (95% CI {ci[0]:.1f}–{ci[1]:.1f})" if ci else "") if wr is not None and r.get("informative", True) else "no win rate"
    print(f"{what}: {s['pairs']} pairs, {shown}; position consistency {r.get('position_consistency', float('nan')):.2f}, informative: {r.get('informative')}")
    for w in r.get("warnings", []):
        print(f"  ! {w}")
PY
"$B" report --train "$SA/myx" --train "$SA/m0" --train "$SA/m1" --eval "$OUT/eval/judge-myx-vs-base" \
  --eval "$OUT/eval/judge-m1-vs-m0" --title "backforth selfalign demo" --out "$OUT/report.html"
echo "selfalign: $((t1 - t0)) s; evaluation: $((t2 - t1)) s; folders under $OUT; report: $OUT/report.html"
