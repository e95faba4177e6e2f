#!/usr/bin/env bash
# Checks the architecture invariants of ARCHITECTURE.md that the compiler
# does not: (1) the library crates link no engine (llama.cpp, reqwest, tokio,
# candle); (2) within each crate, no module imports a module that imports it
# back. Exits non-zero with the offending crate or cycle.
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
for lib in backforth-inference backforth-corpus backforth backforth-measure backforth-shard; do
  tree=$(cargo tree --locked -e normal -p "$lib" --prefix none) || { echo "[check-layout] cargo tree -p $lib failed" >&2; exit 1; }
  bad=$(echo "$tree" | awk '{print $1}' | grep -E '^(llama-cpp-2|llama-cpp-sys-2|reqwest|tokio|candle-core|backforth-llama|backforth-http|backforth-embed|backforth-cli)$' | sort -u || true)
  if [ -n "$bad" ]; then echo "[check-layout] $lib links $(echo $bad)" >&2; fail=1; fi
done
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
[ $fail = 0 ] && echo "[check-layout] ok: library crates link no engine; no module import cycles" >&2
exit $fail
