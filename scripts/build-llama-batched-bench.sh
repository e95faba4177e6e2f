#!/usr/bin/env bash
# Build llama.cpp's own `llama-batched-bench` from the exact llama.cpp source
# vendored in the llama-cpp-sys-2 crate we link (so the peer is the same
# llama.cpp revision), AMX-safe: native detection off, AVX2/FMA/F16C on.
# Prints the binary path. Needs cmake and a C++ compiler.
set -euo pipefail
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
cd "$(dirname "$0")/.."
cargo fetch -q
SYS=$(cargo metadata --format-version 1 2>/dev/null | python3 -c 'import json,sys; m=json.load(sys.stdin); print([p["manifest_path"] for p in m["packages"] if p["name"]=="llama-cpp-sys-2"][0])')
SRC="$(dirname "$SYS")/llama.cpp"
VER=$(basename "$(dirname "$SYS")")
OUT="$CACHE/llama.cpp-build/$VER"
BIN="$OUT/bin/llama-batched-bench"
if [ ! -x "$BIN" ]; then
  mkdir -p "$OUT"
  cmake -S "$SRC" -B "$OUT" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_OPENMP=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON >&2
  cmake --build "$OUT" --target llama-batched-bench -j "$(nproc)" >&2
fi
echo "$BIN"
