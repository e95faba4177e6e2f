#!/usr/bin/env bash
# Install the system packages backforth needs to build (cmake and libclang for
# llama.cpp via llama-cpp-2). Debian/Ubuntu; uses sudo when not root. Idempotent.
set -euo pipefail
need=()
command -v cmake >/dev/null || need+=(cmake)
ls /usr/lib/llvm-*/lib/libclang*.so* >/dev/null 2>&1 || ls /usr/lib/x86_64-linux-gnu/libclang*.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v c++ >/dev/null || need+=(g++)
command -v npm >/dev/null || need+=(npm)   # fetch-assets.sh junk (npm registry package)
# --test: headless Chromium for the report test (opens the HTML report, checks it, takes a screenshot).
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null || need+=(chromium)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "[setup] apt-get install ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
fi
