#!/usr/bin/env bash
# LoRA training on the CPU: backforth's candle trainer vs PyTorch + PEFT
# (Hugging Face TRL's `trl sft`, launched by `backforth train --engine trl`)
# in the same run, on the same base weights (the test GGUF, SmolLM2-135M, or
# $MODEL; dequantized by each side), the same examples (backward seed
# pairs), the same LoRA settings
# (r 8, alpha 16, all seven projections), batch 4, lengths grouped, the same
# number of updates and the same cores. Prints per side: updates, tokens
# (prompt + completion, no padding), seconds in the training loop, tokens/s,
# first and last training loss, peak resident memory of the whole command.
#   scripts/bench-train.sh [STEPS=20]
# The PyTorch side lives in a throwaway venv (scripts/requirements-train-bench.txt;
# about 5 GB with the CUDA libraries the PyPI torch wheel brings); set
# TRAIN_VENV to reuse one.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS=${1:-20}
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
MODEL=${MODEL:-$(scripts/fetch-assets.sh test-model | tail -1)}
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
BIN=${BACKFORTH:-target/release/backforth}
[ -x "$BIN" ] || cargo build --release --locked -p backforth-cli
T=$(nproc)
VENV=${TRAIN_VENV:-$CACHE/bench/train-venv}
if [ ! -x "$VENV/bin/trl" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r scripts/requirements-train-bench.txt
fi
HF="$CACHE/bench/hf-$(basename "$MODEL" .gguf)"
[ -f "$HF/model.safetensors" ] || "$VENV/bin/python" scripts/gguf_to_hf.py "$MODEL" "$HF"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "bench-train: $1 failed; its log:" >&2; tail -30 "$tmp/$2.log" >&2; exit 1; }
COMMON=(--model "$MODEL" --data backward --seeds "$SEEDS" --threads "$T" -q
  -s max_steps="$STEPS" -s eval_fraction=0 -s checkpoint_every=0 -s max_seq=512)
# peak RSS of a command and its children, from getrusage
peak() { python3 -c 'import resource,subprocess,sys
r=subprocess.run(sys.argv[2:]); open(sys.argv[1],"w").write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(r.returncode)' "$@"; }
export OMP_NUM_THREADS=$T
peak "$tmp/candle.rss" "$BIN" train "${COMMON[@]}" --out "$tmp/candle" > "$tmp/candle.log" 2>&1 || fail "the candle trainer" candle
peak "$tmp/trl.rss" "$BIN" train "${COMMON[@]}" --out "$tmp/trl" --engine trl --launch \
  --hf-model "$HF" --trl-bin "$VENV/bin/trl" \
  --trl-arg=--bf16 --trl-arg=false --trl-arg=--gradient_checkpointing --trl-arg=false \
  --trl-arg=--disable_tqdm --trl-arg=true > "$tmp/trl.log" 2>&1 || fail "TRL" trl
python3 - "$tmp" "$T" "$STEPS" "$VENV" <<'PY'
import ast, json, re, subprocess, sys
root, threads, steps, venv = sys.argv[1:]
s = json.load(open(f"{root}/candle/train_summary.json"))
prog = [json.loads(l) for l in open(f"{root}/candle/progress.jsonl")]
loss = [p["loss"] for p in prog if p.get("loss") is not None]
rows = [("backforth (candle)", s["steps"], s["tokens_processed"], s["loop_seconds"], s["tokens_per_s"], loss[0], loss[-1],
         int(open(f"{root}/candle.rss").read()) / 2**20)]
log = open(f"{root}/trl.log").read()
dicts = [ast.literal_eval(m) for m in re.findall(r"\{'[^{}]*\}", log)]
steps_l = [d for d in dicts if "loss" in d and "num_tokens" in d]
end = [d for d in dicts if "train_runtime" in d][-1]
tok = float(steps_l[-1]["num_tokens"]); sec = float(end["train_runtime"])
rows.append(("PyTorch + PEFT (TRL)", len(steps_l), int(tok), sec, tok / sec, float(steps_l[0]["loss"]),
             float(steps_l[-1]["loss"]), int(open(f"{root}/trl.rss").read()) / 2**20))
ver = subprocess.run([f"{venv}/bin/python", "-c",
    "import torch,transformers,peft,trl;print(f'torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}, trl {trl.__version__}')"],
    capture_output=True, text=True).stdout.strip()
print(f"{steps} updates, batch 4, LoRA r 8 on 7 projections, {threads} threads; {ver}")
print(f"| trainer | updates | tokens | seconds | tokens/s | loss first → last | peak RSS GiB |")
print(f"|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.0f} | {r[4]:.1f} | {r[5]:.2f} → {r[6]:.2f} | {r[7]:.1f} |")
print(f"ratio (ours / PyTorch) tokens/s: {rows[0][4] / rows[1][4]:.2f}×")
PY
