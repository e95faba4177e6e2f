#!/usr/bin/env bash
# Prepare benchmark: backforth vs datatrove (PyPI, pinned, in a venv under
# the cache) on the same generated corpus and the same steps (read JSONL ->
# length + repetition filters -> MinHash dedup), one after the other in one
# run; documents/s and peak RSS (GNU time). Then peak RSS of backforth
# streaming a multi-GB corpus, with and without the dedup index.
# Usage: scripts/bench-prepare.sh [N_DOCS=20000] [BIG_DOCS=600000]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-20000}"; BIG="${2:-600000}"
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
scripts/fetch-assets.sh corpus junk >/dev/null
cargo build --release --locked -p backforth-cli >&2
BF=target/release/backforth
VENV="$CACHE/bench/datatrove-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "datatrove[processing]==0.10.1" "orjson==3.13.0" "spacy==3.8.18" >&2
fi
W="$CACHE/bench/prepare"; rm -rf "$W"; mkdir -p "$W"
python3 scripts/bench_corpus.py "$CACHE" "$W/corpus" "$N" 4
echo "== corpus: $N documents, $(du -sh "$W/corpus" | cut -f1)"
echo "== backforth prepare (1 process)"
/usr/bin/time -f "peak_rss_mb=%M wall_s=%e" -o "$W/bf.time" $BF prepare --config configs/bench-prepare.toml --input "$W/corpus/*.jsonl" --out "$W/bf" 2>&1 | tail -1
awk '{ split($1,a,"="); printf "peak RSS %.0f MB, %s\n", a[2]/1024, $2 }' "$W/bf.time"
echo "== datatrove 0.10.1 (2 tasks, 2 workers)"
/usr/bin/time -f "peak_rss_mb=%M wall_s=%e" -o "$W/dt.time" "$VENV/bin/python" scripts/bench_datatrove.py "$W/corpus" "$W/dt" 2 2>/dev/null | tail -1
awk '{ split($1,a,"="); printf "peak RSS %.0f MB (largest process), %s\n", a[2]/1024, $2 }' "$W/dt.time"
if [ "$BIG" -gt 0 ]; then
  python3 scripts/bench_corpus.py "$CACHE" "$W/big" "$BIG" 8
  echo "== streaming $(du -sh "$W/big" | cut -f1) ($BIG documents)"
  for near in false true; do
    /usr/bin/time -f "%M %e" -o "$W/big.time" $BF prepare --config configs/bench-prepare.toml --input "$W/big/*.jsonl" --out "$W/bf-big" -s dedup.near=$near 2>&1 | tail -1
    echo "dedup.near=$near: peak RSS $(awk '{printf "%.0f MB, wall %s s", $1/1024, $2}' "$W/big.time")"
  done
  rm -rf "$W/big"
fi
