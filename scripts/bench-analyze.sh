#!/usr/bin/env bash
# Benchmark (not a test) for `backforth analyze`: all-MiniLM-L6-v2 embedding
# throughput of our candle Embedder vs Python sentence-transformers on the same
# model folder, sentences and cores; MAUVE of ours vs the reference
# `mauve-text` on the same embeddings; MAUVE time for 10k vs 10k.
# Installs the Python peers into $BACKFORTH_CACHE/venv-bench (torch is large).
# Results (JSON lines) go to bench-results/analyze.jsonl; numbers in BENCHMARKS.md.
# Env: N (sentences per throughput run, 1000), PARTS=embed (skip the MAUVE part).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
N="${N:-1000}"
scripts/fetch-assets.sh minilm corpus >/dev/null
M="$CACHE/models/all-MiniLM-L6-v2"
V="$CACHE/venv-bench"
[ -x "$V/bin/python" ] || python3 -m venv "$V"
"$V/bin/pip" install -q sentence-transformers mauve-text==0.4.0 faiss-cpu scikit-learn
cargo build --release --locked -p backforth-cli
B=./target/release/backforth
T="$CACHE/tmp/bench-analyze"; mkdir -p "$T" bench-results
python3 scripts/bench_sentences.py "$CACHE/corpus/python3.11-doc/html/_sources" "$T/sentences.txt" 25000
OUT=bench-results/analyze.jsonl; : > "$OUT"
for e in candle llama; do for b in 8 32 128; do $B bench embed --engine $e --texts "$T/sentences.txt" --n "$N" --batch $b | tee -a "$OUT"; done; done
for b in 8 32 128; do "$V/bin/python" scripts/bench_st.py "$M" "$T/sentences.txt" "$N" $b 2>/dev/null | tee -a "$OUT"; done
# agreement of the vectors
$B bench embed --engine llama --texts "$T/sentences.txt" --n 200 --batch 8 --dump "$T/ours.f32" >/dev/null
"$V/bin/python" scripts/bench_st.py "$M" "$T/sentences.txt" 200 8 "$T/st.f32" >/dev/null 2>&1
"$V/bin/python" -c "import numpy as np,json,sys; a=np.fromfile(sys.argv[1],dtype='<f4').reshape(-1,384); b=np.fromfile(sys.argv[2],dtype='<f4').reshape(-1,384); print(json.dumps({'what':'agreement','min_cosine':float((a*b).sum(1).min()),'max_abs_diff':float(abs(a-b).max())}))" "$T/ours.f32" "$T/st.f32" | tee -a "$OUT"
[ "${PARTS:-all}" = embed ] && exit 0   # PARTS=embed: the embedding figures only
# MAUVE: reference vs ours on the same embeddings
"$V/bin/python" scripts/mauve_crosscheck.py "$M" "$T/sentences.txt" "$CACHE/corpus/gensim/lee_background.cor" "$T/mx" 2>/dev/null | tee -a "$OUT"
for c in same-source-500v500 docs-vs-news-300v300 docs-vs-half-news-300v300; do
  $B bench mauve --p "$T/mx/$c.p.f32" --q "$T/mx/$c.q.f32" | sed "s/^{/{\"case\":\"$c\",/" | tee -a "$OUT"
done
# MAUVE 10k vs 10k (embeddings from sentence-transformers: identical to ours, 3x faster to make)
"$V/bin/python" scripts/bench_st.py "$M" "$T/sentences.txt" 20000 32 "$T/20k.f32" >/dev/null 2>&1
head -c $((10000*384*4)) "$T/20k.f32" > "$T/p10k.f32"; tail -c $((10000*384*4)) "$T/20k.f32" > "$T/q10k.f32"
$B bench mauve --p "$T/p10k.f32" --q "$T/q10k.f32" | tee -a "$OUT"
