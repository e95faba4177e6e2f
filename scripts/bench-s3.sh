#!/usr/bin/env bash
# Object-storage benchmark: what reading the inputs from S3 instead of local
# disk costs backforth and datatrove, in one run, on the same corpus.
# The S3 server is moto (PyPI, the test asset) on loopback: a single Python
# process, so the figures measure the client paths against one slow server,
# not S3's throughput. Both tools do the same work: read gzip JSONL shards,
# keep documents of >= 200 characters, write JSONL locally (backforth
# `prepare` with filters and dedup off, one process; datatrove JsonlReader ->
# LambdaFilter -> JsonlWriter, fsspec/s3fs for s3://, 2 tasks).
# Usage: scripts/bench-s3.sh [N_DOCS=40000]
set -euo pipefail
cd "$(dirname "$0")/.."
N="${1:-40000}"
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
MOTO=$(scripts/fetch-assets.sh corpus junk moto | tail -1)
cargo build --release --locked -p backforth-cli >&2
BF=$PWD/target/release/backforth
VENV="$CACHE/bench/datatrove-s3-venv"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "datatrove==0.10.1" "s3fs==2025.10.0" "fsspec==2025.10.0" "orjson==3.13.0" "regex==2026.11.15" >&2
fi
W="$CACHE/bench/s3"; rm -rf "$W"; mkdir -p "$W"
python3 scripts/bench_corpus.py "$CACHE" "$W/corpus" "$N" 4
for f in "$W"/corpus/*.jsonl; do gzip -k "$f"; done
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
PYTHONPATH="$MOTO" python3 -m moto.server -H 127.0.0.1 -p "$PORT" >"$W/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill $MOTO_PID 2>/dev/null || true' EXIT
export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT" AWS_ALLOW_HTTP=true AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
for _ in $(seq 50); do curl -s -o /dev/null "$AWS_ENDPOINT_URL" && break; sleep 0.2; done
PYTHONPATH="$MOTO" python3 - "$W/corpus" <<'PY'
import boto3, glob, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
s3.create_bucket(Bucket="bench")
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.jsonl.gz"))):
    s3.upload_file(p, "bench", "corpus/" + os.path.basename(p))
PY
echo "== corpus: $N documents, $(du -ch "$W"/corpus/*.jsonl.gz | tail -1 | cut -f1) gzip in 4 shards (uploaded to moto)"
CFG="$W/read.toml"
# reading and the 200-character rule only: no segmenting, filters or dedup
cat > "$CFG" <<'TOML'
[input]
min_chars = 200
max_chars = 100000000
max_line_bytes = 268435456

[segment]
mode = "whole"
max_tokens = 0

[filter]
enabled = false

[dedup]
exact = false
near = false
TOML
for src in local s3; do
  if [ $src = local ]; then IN="$W/corpus/*.jsonl.gz"; else IN="s3://bench/corpus/*.jsonl.gz"; fi
  /usr/bin/time -f "%e %M" -o "$W/bf-$src.time" $BF prepare --quiet --config "$CFG" --input "$IN" --out "$W/bf-$src" >/dev/null 2>"$W/bf-$src.log"
  kept=$(wc -l < "$W/bf-$src/candidates.jsonl")
  read -r wall rss < "$W/bf-$src.time"
  echo "backforth prepare  $src: $kept kept, wall $wall s, $(python3 -c "print(round($N/$wall))") documents/s, peak RSS $((rss/1024)) MB"
done
for src in local s3; do
  if [ $src = local ]; then IN="$W/corpus"; else IN="s3://bench/corpus"; fi
  /usr/bin/time -f "%e %M" -o "$W/dt-$src.time" "$VENV/bin/python" scripts/bench_datatrove_read.py "$IN" "$W/dt-$src" 2 >/dev/null 2>"$W/dt-$src.log"
  kept=$(cat "$W"/dt-$src/out/*.jsonl | wc -l)
  read -r wall rss < "$W/dt-$src.time"
  echo "datatrove 0.10.1   $src: $kept kept, wall $wall s, $(python3 -c "print(round($N/$wall))") documents/s, peak RSS $((rss/1024)) MB (largest process)"
done
