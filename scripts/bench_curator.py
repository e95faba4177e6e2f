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
import sys
import tempfile
import time

os.environ.setdefault("CURATOR_DISABLE_CACHE", "true")
os.environ.setdefault("TELEMETRY_ENABLED", "false")

from bespokelabs import curator  # noqa: E402

from bench_peer_method import (  # noqa: E402
    CURATE, CURATE_GBNF, DISTILL, REWRITE, REWRITE_GBNF, first_rows, messages, score, write_pairs,
)


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
    rows = first_rows(run_dir, seeds_path, k)

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
        if (score(r.get("generation")) or 0) >= keep_min:
            kept.append({"id": r["id"], "text": r["text"], "instruction": r["instruction"],
                         "messages": messages(REWRITE.render(instruction=r["instruction"], text=r["text"]))})
    rewritten = run(stage("rewrite", 640, 1.0, 0.9, REWRITE_GBNF), kept, "rewrite")
    pairs = []
    to_distill = []
    for r in rewritten:
        g = r.get("generation") or ""
        a, b = g.find("[RES]"), g.find("[/RES]")
        if 0 <= a < b:
            pairs.append((r["id"], r["instruction"], g[a + 5:b].strip()))
        to_distill.append({"id": r["id"], "instruction": r["instruction"],
                           "messages": messages(DISTILL.render(instruction=r["instruction"]))})
    distilled = run(stage("distill", 512, 1.0, 0.9), to_distill, "distill")
    wall = time.time() - t0
    res = {
        "client": "curator", "version": __import__("importlib.metadata").metadata.version("bespokelabs-curator"),
        "documents": len(rows), "instructions": len(scored), "kept": len(kept),
        "rewrites": len(pairs),
        "distilled": sum(1 for r in distilled if r.get("generation")),
        "wall_s": round(wall, 1),
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(res, f)
    write_pairs(out_json + ".pairs.jsonl", pairs)


if __name__ == "__main__":
    main()
