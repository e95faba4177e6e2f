#!/usr/bin/env bash
# Benchmark (not a test): backforth vs two peers (distilabel 1.5.3 and
# bespoke Curator 0.1.31) driving the same real llama.cpp server (`llama-server`, built from the pinned
# llama-cpp-python sdist by scripts/build-llama-tool.sh) through the method's
# four stages on the same documents, with the same prompts, sampling, token
# limits and grammars; then the server's own maximum throughput from
# `llama-batched-bench` on the same GGUF, slots and threads.
#
# Usage: scripts/bench-server.sh [DOCS=20]   env: NP (server slots, 4), PORT (18111),
#   CLIENTS (which clients run, default "backforth backforth-streamed distilabel curator";
#   also backforth-streamed-2x: streamed with 2 requests per slot in flight;
#   the peers read the documents of the first backforth client that ran),
#   INPUT (one document per line; default gensim's lee_background.cor: its first DOCS stories)
# Each client gets a freshly started server (same cold prompt cache), stopped
# by its PID afterwards. Results: bench-results/server/<time>/ (JSON lines in
# results.jsonl); figures in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
export BACKFORTH_CACHE="$CACHE"
DOCS="${1:-20}"
CLIENTS="${CLIENTS:-backforth backforth-streamed distilabel curator}"
wants() { [[ " $CLIENTS " == *" $1 "* ]]; }
INPUT="${INPUT:-$CACHE/corpus/gensim/lee_background.cor}"
NP="${NP:-4}"
PORT="${PORT:-18111}"
THREADS="$(nproc)"
CTX=3072
MODEL=$(scripts/fetch-assets.sh demo-model | tail -1)
scripts/fetch-assets.sh corpus >/dev/null
SEEDS=$(scripts/fetch-assets.sh seeds | tail -1)
SERVER=$(scripts/build-llama-tool.sh llama-server | tail -1)
BATCHED=$(scripts/build-llama-tool.sh llama-batched-bench | tail -1)
V="$CACHE/venv-peer"
[ -x "$V/bin/python" ] || python3 -m venv "$V"
"$V/bin/pip" install -q -r scripts/requirements-peer.txt
VC="$CACHE/venv-curator"
[ -x "$VC/bin/python" ] || python3 -m venv "$VC"
"$VC/bin/pip" install -q -r scripts/requirements-curator.txt
export TIKTOKEN_CACHE_DIR; TIKTOKEN_CACHE_DIR=$(scripts/fetch-assets.sh tiktoken | tail -1)
cargo build --release --locked -p backforth-cli
B=./target/release/backforth
T="bench-results/server/$(date +%Y%m%d-%H%M%S)"; mkdir -p "$T"
RES="$T/results.jsonl"
URL="http://127.0.0.1:$PORT"

SPID=""
stop_server() { if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""; fi; }
trap stop_server EXIT
start_server() { # $1 = log name
  "$SERVER" -m "$MODEL" --host 127.0.0.1 --port "$PORT" -np "$NP" -c $((NP * CTX)) \
    -t "$THREADS" -tb "$THREADS" -b 512 -ub 512 --metrics --no-webui >"$T/$1.server.log" 2>&1 &
  SPID=$!
  for _ in $(seq 1 120); do
    curl -sf "$URL/health" >/dev/null 2>&1 && return 0
    kill -0 "$SPID" 2>/dev/null || { tail -20 "$T/$1.server.log"; exit 1; }
    sleep 0.5
  done
  echo "llama-server did not become ready" >&2; exit 1
}
metrics() { curl -sf "$URL/metrics"; }
# server counters: prompt tokens it prefilled, tokens it generated, seconds it spent on each
counters() { # $1 = before file, $2 = after file, $3 = client wall seconds, $4 = client name
  python3 - "$1" "$2" "$3" "$4" <<'EOF'
import json, sys
sys.path.insert(0, "scripts")
from bench_server_summary import metrics
a, b, wall, who = metrics(sys.argv[1]), metrics(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
d = {k: b.get(k, 0) - a.get(k, 0) for k in ("prompt_tokens_total", "prompt_tokens_cached_total", "tokens_predicted_total")}
print(json.dumps({"client": who, "what": "server_counters", "prompt_tokens": int(d["prompt_tokens_total"]),
  "prompt_tokens_cached": int(d["prompt_tokens_cached_total"]),
  "generated_tokens": int(d["tokens_predicted_total"]),
  "server_tokens_per_s": round((d["prompt_tokens_total"] + d["tokens_predicted_total"]) / wall, 1)}))
EOF
}

# a peer's parsed rewrites that pass backforth's checks (the demo config's
# checks, as the backforth runs apply them before export): `bench checks`
# over the peer's pairs file, counting the pairs with no failed check
passing_of() { # $1 = pairs file (bench_*.py) -> count
  [ -s "$1" ] || { echo 0; return; }
  $B bench checks --quiet --no-verify --config configs/demo.toml --corpus "$INPUT" --labels "$1" --out "$1.checks" >/dev/null
  python3 -c 'import json,sys; print(sum(1 for l in open(sys.argv[1]) if not json.loads(l)["lexical_reasons"]))' "$1.checks/bench-checks.jsonl"
}

# 1. backforth, HTTP backend, the demo config: stage by stage, then streamed
#    (run.streaming); the time to the first rewrite on disk is watched from outside
backforth_client() { # $1 = client name, then extra flags
  local name=$1; shift
  start_server "$name"
  metrics >"$T/$name.m0"
  local t0 first="" pid
  t0=$(date +%s%N)
  $B run --config configs/demo.toml --model "$MODEL" \
    --input "$INPUT" --seeds "$SEEDS" --out "$T/$name" --limit "$DOCS" \
    -s backend.kind=http -s "http.urls=[\"$URL/v1\"]" -s http.concurrency="$NP" -s http.grammar_field=llama_cpp "$@" \
    >"$T/$name.log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    if [ -z "$first" ] && [ -s "$T/$name/stages/rewrite.jsonl" ]; then first=$(( ($(date +%s%N) - t0) / 1000000 )); fi
    sleep 0.2
  done
  wait "$pid"
  local wall_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  metrics >"$T/$name.m1"
  stop_server
  BW=$(python3 -c "print(round($wall_ms / 1000, 1))")
  python3 - "$T/$name" "$BW" "$name" "${first:-0}" <<'EOF' | tee -a "$RES"
import json, sys
run, wall, name, first = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4]) / 1000
def parsed(stage, key):
    n = ok = 0
    try:
        for l in open(f"{run}/stages/{stage}.jsonl"):
            g = json.loads(l).get(key) or {}
            n += 1
            ok += (g.get("parse") or {}).get("status") == "ok"
    except FileNotFoundError:
        pass
    return n, ok
docs = parsed("backtranslate", "backtranslation")[0]
# counted before the checks (distilabel has none): pairs kept by curation, parsed rewrites and distillations
kept, rewrites = parsed("rewrite", "rewrite")
s = json.load(open(f"{run}/summary.json"))
print(json.dumps({"client": name, "documents": docs, "kept": kept, "rewrites": rewrites,
  "distilled": parsed("distill", "distillation")[1], "wall_s": wall,
  "documents_per_minute": round(docs / wall * 60, 2), "first_rewrite_s": first,
  "passing": s["outputs"]["dataset"]["examples"]}))
EOF
  counters "$T/$name.m0" "$T/$name.m1" "$BW" "$name" | tee -a "$RES"
}
if wants backforth; then backforth_client backforth; fi
if wants backforth-streamed; then backforth_client backforth-streamed -s run.streaming=true; fi
# streamed with two requests per slot in flight (the server queues the second)
if wants backforth-streamed-2x; then backforth_client backforth-streamed-2x -s run.streaming=true -s http.concurrency=$((NP * 2)); fi
# the documents the peers read: backforth's backtranslate stage file
DOCRUN="$T/backforth"; wants backforth || DOCRUN="$T/backforth-streamed"; [ -d "$DOCRUN" ] || DOCRUN="$T/backforth-streamed-2x"

# 2. the peers on the same documents (read from backforth's stage file), each
#    on a fresh server: distilabel, then bespoke Curator
peer_client() { # $1 = client name, $2 = its python, $3 = its script, then extra arguments
  local name=$1 py=$2 script=$3; shift 3
  start_server "$name"
  metrics >"$T/$name.m0"
  local t0 t1 wall
  t0=$(date +%s.%N)
  "$py" "$script" "$URL/v1" "$(basename "$MODEL")" "$DOCRUN" "$SEEDS" "$T/$name.json" 2 4 "$@" \
    >"$T/$name.log" 2>&1 || { tail -30 "$T/$name.log"; exit 1; }
  t1=$(date +%s.%N)
  metrics >"$T/$name.m1"
  stop_server
  wall=$(python3 -c "print(round($t1-$t0,1))")
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); d['wall_s_process']=float(sys.argv[2]); d['documents_per_minute']=round(d['documents']/d['wall_s_process']*60,2); d['passing']=int(sys.argv[3]); print(json.dumps(d))" \
    "$T/$name.json" "$wall" "$(passing_of "$T/$name.json.pairs.jsonl")" | tee -a "$RES"
  counters "$T/$name.m0" "$T/$name.m1" "$wall" "$name" | tee -a "$RES"
}
if wants distilabel; then peer_client distilabel "$V/bin/python" scripts/bench_distilabel.py; fi
# Curator keeps 4 requests per slot in flight (distilabel sends its batches of 50 at once)
if wants curator; then peer_client curator "$VC/bin/python" scripts/bench_curator.py $((NP * 4)); fi

# 3. the server's ceiling on this machine: llama-batched-bench, same GGUF, slots, threads
"$BATCHED" -m "$MODEL" -c $((NP * CTX)) -b 512 -ub 512 -t "$THREADS" -tb "$THREADS" \
  -npp 256,512 -ntg 32,128 -npl "$NP" --output-format jsonl 2>/dev/null | grep '^{' \
  | sed 's/^{/{"what":"llama-batched-bench",/' | tee -a "$RES"
# 4. utilisation: each client's server tokens/s against the ceiling for its own
# mix of prefilled and generated tokens (time = P / best prefill speed + G / best
# generation speed, both from llama-batched-bench at NP sequences)
python3 scripts/bench_server_summary.py "$RES" | tee "$T/summary.md"
echo "results: $RES"
