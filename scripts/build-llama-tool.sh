#!/usr/bin/env bash
# Build one of llama.cpp's own programs (TARGET, default llama-batched-bench:
# the peer for `backforth bench engine`; llama-server: the real server of
# scripts/bench-server.sh) from the llama.cpp source that ships in the
# llama-cpp-python sdist on PyPI (pinned by hash; the llama-cpp-sys-2 crate
# vendors llama.cpp without its tools/). AMX-safe build: native detection off,
# AVX2/FMA/F16C on, AMX off. Prints the binary path. Needs cmake and a C++
# compiler. Usage: scripts/build-llama-tool.sh [TARGET]
set -euo pipefail
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
VER=0.3.36
SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
OUT="$CACHE/llama.cpp-build/llama-cpp-python-$VER"
TARGET="${1:-llama-batched-bench}"
BIN="$OUT/build/bin/$TARGET"
if [ ! -x "$BIN" ]; then
  mkdir -p "$OUT"
  if [ ! -d "$OUT/src" ]; then
    echo "llama-cpp-python==$VER --hash=sha256:$SHA" > "$OUT/req.txt"
    python3 -m pip download --quiet --no-deps --no-binary :all: --require-hashes -r "$OUT/req.txt" -d "$OUT/dl" >&2
    mkdir -p "$OUT/src" && tar xzf "$OUT/dl/llama_cpp_python-$VER.tar.gz" -C "$OUT/src" --strip-components=3 "llama_cpp_python-$VER/vendor/llama.cpp"
  fi
  cmake -S "$OUT/src" -B "$OUT/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
    -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_OPENMP=ON \
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON >&2
  cmake --build "$OUT/build" --target "$TARGET" -j "$(nproc)" >&2
fi
echo "$BIN"
