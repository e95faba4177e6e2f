#!/usr/bin/env bash
# Checks the architecture invariants of ARCHITECTURE.md that the compiler
# does not:
#  (1) the library crates link no engine (llama.cpp, reqwest, tokio, candle);
#  (2) crate dependencies point one way (the table below);
#  (3) within each crate, no module imports a module that imports it back;
#  (4) in the CLI, engines are named only by provider.rs, the commands that
#      are about one engine (serve: llama.cpp; batch: the HTTP wire format)
#      and the benchmarks;
#  (5) nothing outside the CLI prints or draws progress (println!/eprintln!/
#      print!/eprint!/indicatif outside unit tests).
# Exits non-zero naming each violation.
#   scripts/check-layout.sh              check this checkout
#   scripts/check-layout.sh --self-test  plant one violation of each of (2)–(5)
#                                        in a copy and show that each is caught
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--self-test" ]; then
  t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
  plant() { # NAME, then a command run inside a fresh copy; the check must fail and name it
    rm -rf "$t/c"; mkdir -p "$t/c"
    cp -r Cargo.toml Cargo.lock crates scripts "$t/c/" 2>/dev/null
    rm -rf "$t/c/crates"/*/target
    (cd "$t/c" && eval "$2")
    if (cd "$t/c" && SOURCE_ONLY=1 bash scripts/check-layout.sh) 2>"$t/err"; then
      echo "[check-layout --self-test] FAILED: a planted $1 was not caught" >&2; exit 1
    fi
    grep -q "$3" "$t/err" || { echo "[check-layout --self-test] FAILED: $1 caught without naming it:" >&2; cat "$t/err" >&2; exit 1; }
    echo "[check-layout --self-test] caught: $1" >&2
  }
  plant "dependency pointing up" "sed -i 's/^backforth-inference.workspace = true/backforth-inference.workspace = true\nbackforth-measure.workspace = true/' crates/corpus/Cargo.toml; grep -q '^backforth-inference' crates/corpus/Cargo.toml || sed -i '/^\[dependencies\]/a backforth-measure.workspace = true' crates/corpus/Cargo.toml" "backforth-corpus depends on backforth-measure"
  # (plants go first in the file: text after a file's unit tests is not checked)
  plant "module import cycle" "sed -i '1i fn _planted() { let _ = crate::store::RunDir; }' crates/method/src/hash.rs; sed -i '1i fn _planted2() { let _ = crate::hash::key; }' crates/method/src/store.rs" "import cycle"
  plant "engine named in a command" "sed -i '1i fn _planted() { let _ = backforth_llama::LlamaOptions::default(); }' crates/cli/src/commands/report.rs" "commands/report.rs names an engine"
  plant "printing in a library" "sed -i '1i fn _planted() { eprintln!(\"x\"); }' crates/method/src/hash.rs" "crates/method/src/hash.rs prints"
  echo "[check-layout --self-test] ok: every planted violation was caught" >&2
  exit 0
fi
fail=0
if [ -z "${SOURCE_ONLY:-}" ]; then
for lib in backforth-inference backforth-corpus backforth backforth-measure backforth-shard; do
  tree=$(cargo tree --locked -e normal -p "$lib" --prefix none) || { echo "[check-layout] cargo tree -p $lib failed" >&2; exit 1; }
  bad=$(echo "$tree" | awk '{print $1}' | grep -E '^(llama-cpp-2|llama-cpp-sys-2|reqwest|tokio|candle-core|backforth-llama|backforth-http|backforth-embed|backforth-cli)$' | sort -u || true)
  if [ -n "$bad" ]; then echo "[check-layout] $lib links $(echo $bad)" >&2; fail=1; fi
done
fi
# (2) dependency direction, from the manifests (no build needed)
cargo metadata --no-deps --format-version 1 --offline 2>/dev/null | python3 -c '
import json, sys
allowed = {
    "backforth-inference": set(), "backforth-objstore": set(),
    "backforth-corpus": {"backforth-objstore"},
    "backforth-llama": {"backforth-inference"}, "backforth-http": {"backforth-inference"},
    "backforth-embed": {"backforth-inference"},
    "backforth": {"backforth-corpus", "backforth-inference"},
    "backforth-measure": {"backforth", "backforth-inference", "backforth-corpus"},
    "backforth-shard": {"backforth", "backforth-corpus", "backforth-objstore", "backforth-inference"},
    "backforth-train": {"backforth", "backforth-corpus", "backforth-inference", "backforth-llama"},
}
bad = False
for p in json.load(sys.stdin)["packages"]:
    deps = {d["name"] for d in p["dependencies"] if d["name"].startswith("backforth") and d["kind"] is None}
    if p["name"] == "backforth-cli":
        continue
    name = p["name"]
    for d in sorted(deps - allowed.get(name, set())):
        print(f"[check-layout] {name} depends on {d} (ARCHITECTURE.md: dependencies point one way)", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
' || fail=1
# (4) engines named only where allowed in the CLI, (5) no printing outside it
python3 - <<'PY' || fail=1
import glob, os, re, sys
bad = False
def code(path):
    t = open(path, encoding="utf-8").read().split("#[cfg(test)]")[0]
    return re.sub(r"//[^\n]*", "", t)
allowed = {"crates/cli/src/provider.rs", "crates/cli/src/commands/serve.rs", "crates/cli/src/commands/batch.rs"}
for p in sorted(glob.glob("crates/cli/src/**/*.rs", recursive=True)):
    if p in allowed or p.startswith("crates/cli/src/bench/"):
        continue
    m = re.search(r"\bbackforth_(llama|http|embed)\b", code(p))
    if m:
        print(f"[check-layout] {p[len('crates/cli/src/'):]} names an engine (backforth_{m.group(1)}): only provider.rs, serve, batch and bench/ may", file=sys.stderr)
        bad = True
for p in sorted(glob.glob("crates/**/src/**/*.rs", recursive=True)):
    if p.startswith("crates/cli/"):
        continue
    m = re.search(r"\b(e?println!|e?print!|indicatif::)", code(p))
    if m:
        print(f"[check-layout] {p} prints ({m.group(1)}): only the CLI prints or draws progress (report through tracing or backforth_inference::progress)", file=sys.stderr)
        bad = True
sys.exit(1 if bad else 0)
PY
python3 - <<'PY' || fail=1
import glob, os, re, sys
# Module graph per crate: a -> b when a's file names crate::b (or super::b
# from inside a folder), and a folder module -> each child it declares.
bad = False
for manifest in sorted(glob.glob("crates/**/Cargo.toml", recursive=True)):
    src = os.path.join(os.path.dirname(manifest), "src")
    mods = {}
    for path in glob.glob(os.path.join(src, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(path, src)[:-3].split(os.sep)
        if rel[-1] == "mod":
            rel = rel[:-1]
        top = rel in (["lib"], ["main"])
        name = "" if top else "::".join(rel)
        text = re.sub(r"//[^\n]*", "", open(path, encoding="utf-8").read())
        text = text.split("#[cfg(test)]")[0]  # unit tests may use their parent
        refs = set(re.findall(r"crate::([a-z_][a-z0-9_]*(?:::[a-z_][a-z0-9_]*)*)", text))
        refs |= {m for grp in re.findall(r"crate::\{([^}]*)\}", text) for m in re.findall(r"\b([a-z_][a-z0-9_]*)\b", grp)}
        if len(rel) > 1 and not top:
            refs |= {"::".join(rel[:-1] + [s]) for s in re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", text)}
            if re.search(r"\bsuper::[A-Z{]", text):
                refs.add("::".join(rel[:-1]))
        children = {(name + "::" if name else "") + c for c in re.findall(r"^\s*(?:pub(?:\([a-z]+\))? )?mod ([a-z_][a-z0-9_]*);", text, re.M)}
        mods[name] = (refs, children)
    names = set(mods)
    def resolve(r):
        parts = r.split("::")
        for k in range(len(parts), 0, -1):
            if "::".join(parts[:k]) in names:
                return "::".join(parts[:k])
        return None
    graph = {m: ({t for r in refs if (t := resolve(r)) and t != m} | (ch if m else set())) for m, (refs, ch) in mods.items() if m}
    done = set()
    def dfs(m, path):
        global bad
        for n in sorted(graph.get(m, ())):
            if n in path:
                print(f"[check-layout] {src}: import cycle " + " -> ".join(path[path.index(n):] + [n]), file=sys.stderr)
                bad = True
            elif n not in done:
                dfs(n, path + [n])
        done.add(m)
    for m in sorted(graph):
        if m not in done:
            dfs(m, [m])
sys.exit(1 if bad else 0)
PY
[ $fail = 0 ] && echo "[check-layout] ok: library crates link no engine; dependencies point one way; no module import cycles; engines named only where allowed; no printing outside the CLI" >&2
exit $fail
