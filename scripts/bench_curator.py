"""The second peer of scripts/bench-server.sh: the method's four stages
(backtranslate -> curate -> keep score >= K -> rewrite -> distill) written
with bespoke Curator (`curator.LLM`, its "openai" online backend pointed at
the same OpenAI-compatible llama.cpp server).

The same work as bench_distilabel.py and `backforth run`: prompts rendered
from backforth's own template files (crates/method/prompts/*.j2), the same
sampling, token limits and GBNF grammars (Curator copies extra generation
parameters into the request body, so `grammar` reaches llama.cpp), the same
documents (backforth's stages/backtranslate.jsonl of the same run) and the
same k seed pairs per document (same seed file, same draw as the distilabel
script). Each stage is one Curator call over the whole set, as Curator is
meant to be used; Curator's own cache is off so every request is sent.

Usage: bench_curator.py BASE_URL MODEL RUN_DIR SEEDS OUT_JSON [K_SEEDS] [KEEP_MIN] [CONCURRENCY]
Needs TIKTOKEN_CACHE_DIR with cl100k_base (scripts/fetch-assets.sh tiktoken).
Prints one JSON line: documents, kept, rewrites, distilled, wall seconds;
writes OUT_JSON and OUT_JSON.pairs.jsonl (the parsed rewrites, for the checks).
"""

import json
import os
import random
import re
import sys
import tempfile
import time

os.environ.setdefault("CURATOR_DISABLE_CACHE", "true")
os.environ.setdefault("TELEMETRY_ENABLED", "false")

import jinja2  # noqa: E402
from bespokelabs import curator  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PROMPTS = os.path.join(ROOT, "crates", "method", "prompts")


def template(name):
    with open(os.path.join(PROMPTS, name), encoding="utf-8") as f:
        return jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(f.read())


def messages(rendered):
    """Split at `@@ role` lines; each message is the trimmed text up to the next."""
    out, cur = [], None
    for line in rendered.split("\n"):
        if line.rstrip().startswith("@@ "):
            if cur:
                out.append({"role": cur[0], "content": "\n".join(cur[1]).strip()})
            cur = (line.rstrip()[3:].strip(), [])
        elif cur is not None:
            cur[1].append(line)
    if cur:
        out.append({"role": cur[0], "content": "\n".join(cur[1]).strip()})
    return out


BT, CURATE, REWRITE, DISTILL = (
    template(n) for n in ("backtranslate_fewshot.j2", "curate.j2", "rewrite.j2", "distill.j2")
)
with open(os.path.join(PROMPTS, "curate.gbnf"), encoding="utf-8") as f:
    # same bound as backforth's curate_grammar(max_tokens = 160): max_tokens - 24
    CURATE_GBNF = f.read().replace("REASON_MAX", str(160 - 24))
with open(os.path.join(PROMPTS, "rewrite.gbnf"), encoding="utf-8") as f:
    REWRITE_GBNF = f.read()

SCORE = re.compile(r"^\W*score\W*([1-5])\b", re.I)


class Stage(curator.LLM):
    """One chat request per row: the row's `messages`; the answer goes to `generation`."""

    def prompt(self, row):
        return row["messages"]

    def parse(self, row, response):
        out = {k: v for k, v in row.items() if k != "messages"}
        out["generation"] = response
        return out


def main():
    base_url, model, run_dir, seeds_path, out_json = sys.argv[1:6]
    k = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    keep_min = int(sys.argv[7]) if len(sys.argv) > 7 else 4
    concurrency = int(sys.argv[8]) if len(sys.argv) > 8 else 16
    docs = []
    with open(os.path.join(run_dir, "stages", "backtranslate.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            docs.append({"id": r["id"], "text": r["text"]})
    seeds = []
    with open(seeds_path, encoding="utf-8") as f:
        for line in f:
            s = json.loads(line)
            if len(s["response"]) <= 700:  # demo.toml: backtranslate.max_seed_chars
                seeds.append(s)
    rng = random.Random(42)
    rows = []
    for d in docs:
        shots = rng.sample(seeds, k)
        rows.append({**d, "messages": messages(BT.render(text=d["text"], seeds=shots))})

    work = tempfile.mkdtemp(prefix="curator-")

    def stage(name, max_tokens, temperature, top_p, grammar=None):
        gen = {"max_tokens": max_tokens, "temperature": temperature, "top_p": top_p}
        if grammar:
            gen["grammar"] = grammar
        return Stage(
            model_name=model,
            backend="openai",
            generation_params=gen,
            backend_params={
                "base_url": base_url,
                "api_key": "none",
                "max_concurrent_requests": concurrency,
                # a local server: no rate limit to respect
                "max_requests_per_minute": 100_000,
                "max_tokens_per_minute": 100_000_000,
                "max_retries": 1,
                "require_all_responses": False,
                "request_timeout": 600,
            },
        )

    def run(llm, data, name):
        if not data:
            return []
        res = llm(data, working_dir=os.path.join(work, name))
        ds = getattr(res, "dataset", res)
        return [dict(r) for r in ds]

    t0 = time.time()
    bt = run(stage("backtranslate", 96, 1.0, 0.9), rows, "backtranslate")
    to_curate = []
    for r in bt:
        ins = (r.get("generation") or "").strip().strip('"').strip()
        if ins:
            to_curate.append({"id": r["id"], "text": r["text"], "instruction": ins,
                              "messages": messages(CURATE.render(instruction=ins, text=r["text"]))})
    scored = run(stage("curate", 160, 0.0, 1.0, CURATE_GBNF), to_curate, "curate")
    kept = []
    for r in scored:
        lines = [l for l in (r.get("generation") or "").splitlines() if l.strip()]
        m = SCORE.match(lines[-1]) if lines else None
        if m and int(m.group(1)) >= keep_min:
            kept.append({"id": r["id"], "text": r["text"], "instruction": r["instruction"],
                         "messages": messages(REWRITE.render(instruction=r["instruction"], text=r["text"]))})
    rewritten = run(stage("rewrite", 640, 1.0, 0.9, REWRITE_GBNF), kept, "rewrite")
    pairs = []
    to_distill = []
    for r in rewritten:
        g = r.get("generation") or ""
        a, b = g.find("[RES]"), g.find("[/RES]")
        if 0 <= a < b:
            pairs.append({"line": int(r["id"].rsplit(":", 1)[1]), "instruction": r["instruction"],
                          "response": g[a + 5:b].strip(), "class": "unlabelled"})
        to_distill.append({"id": r["id"], "instruction": r["instruction"],
                           "messages": messages(DISTILL.render(instruction=r["instruction"]))})
    distilled = run(stage("distill", 512, 1.0, 0.9), to_distill, "distill")
    wall = time.time() - t0
    res = {
        "client": "curator", "version": __import__("importlib.metadata").metadata.version("bespokelabs-curator"),
        "documents": len(docs), "instructions": len(scored), "kept": len(kept),
        "rewrites": len(pairs),
        "distilled": sum(1 for r in distilled if r.get("generation")),
        "wall_s": round(wall, 1),
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(res, f)
    # the parsed rewrites, as lines `backforth bench checks --labels` reads
    with open(out_json + ".pairs.jsonl", "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
