#!/usr/bin/env bash
# Planning cost of a large sharded run: FILES sparse JSONL files of SIZE each
# (truncate -s: the listing is real — glob, stat, assignment — but the disk
# holds nothing), cut into SHARDS shards by `backforth shard plan`. Prints wall time
# and peak memory (GNU time), and the plan's size.
#   scripts/bench-plan.sh [FILES=10000] [SIZE=100M] [SHARDS=1000]
set -euo pipefail
cd "$(dirname "$0")/.."
FILES=${1:-10000}; SIZE=${2:-100M}; SHARDS=${3:-1000}
BIN=${BACKFORTH:-target/release/backforth}
[ -x "$BIN" ] || cargo build --release --locked -p backforth-cli
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/in"
( cd "$tmp/in" && seq -f "part-%05g.jsonl" 0 $((FILES - 1)) | xargs truncate -s "$SIZE" )
echo "inputs: $FILES files × $SIZE = $(du -sh --apparent-size "$tmp/in" | cut -f1) apparent, $(du -sh "$tmp/in" | cut -f1) on disk"
/usr/bin/time -f "plan: %e s wall, %M KiB peak RSS" "$BIN" shard plan --input "$tmp/in/*.jsonl" --out "$tmp/run" --num-shards "$SHARDS"
echo "plan.json $(du -h "$tmp/run/plan.json" | cut -f1), manifest.jsonl $(du -h "$tmp/run/manifest.jsonl" | cut -f1)"
python3 - "$tmp/run/plan.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
b = [s["bytes"] for s in p["shards"]]
parts = [len(s["parts"]) for s in p["shards"]]
print(f"shards: {len(b)}, bytes per shard min {min(b)} max {max(b)}, parts per shard max {max(parts)}")
PY
