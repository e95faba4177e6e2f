"""The peer side of scripts/bench-server.sh: the same four stages as
`backforth run` (backtranslate -> curate -> keep score >= K -> rewrite ->
distill), written as distilabel 1.5 pipelines that drive the same
OpenAI-compatible server.

Equivalent work, not a copy of ours: the prompts are rendered from
backforth's own template files (crates/method/prompts/*.j2, Jinja syntax,
`@@ role` lines start chat messages), with the same sampling settings, token
limits and GBNF grammars (sent as llama.cpp server's `grammar` field through
distilabel's `extra_body`), the same documents (read from backforth's
stages/backtranslate.jsonl of the same run) and k seed pairs drawn per
document from the same seed file.

Usage: bench_distilabel.py BASE_URL MODEL RUN_DIR SEEDS OUT_JSON [K_SEEDS] [KEEP_MIN]
Prints one JSON line: documents, kept, rewrites, distilled, wall seconds;
writes OUT_JSON and OUT_JSON.pairs.jsonl (the parsed rewrites, for the checks).
"""

import json
import sys
import time

from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, StepInput, step
from distilabel.steps.tasks import ChatGeneration

from bench_peer_method import CURATE, CURATE_GBNF, DISTILL, REWRITE, REWRITE_GBNF, first_rows, messages, score, write_pairs

KEEP_MIN = int(sys.argv[7]) if len(sys.argv) > 7 else 4


@step(inputs=["generation"], outputs=["instruction", "messages"])
def ToCurate(inputs: StepInput):
    rows = []
    for r in inputs:
        ins = (r.get("generation") or "").strip().strip('"').strip()
        if ins:
            rows.append({**r, "instruction": ins,
                         "messages": messages(CURATE.render(instruction=ins, text=r["text"]))})
    yield rows


@step(inputs=["generation"], outputs=["rewrite", "messages"])
def ToDistill(inputs: StepInput):
    rows = []
    for r in inputs:
        g = r.get("generation") or ""
        a, b = g.find("[RES]"), g.find("[/RES]")
        rows.append({**r, "rewrite": g[a + 5:b].strip() if 0 <= a < b else None,
                     "messages": messages(DISTILL.render(instruction=r["instruction"]))})
    yield rows


def main():
    base_url, model, run_dir, seeds_path, out_json = sys.argv[1:6]
    k = int(sys.argv[6]) if len(sys.argv) > 6 else 2
    rows = first_rows(run_dir, seeds_path, k)

    def llm(max_new_tokens, temperature, top_p, grammar=None):
        kw = {"max_new_tokens": max_new_tokens, "temperature": temperature, "top_p": top_p}
        if grammar:
            kw["extra_body"] = {"grammar": grammar}
        return OpenAILLM(model=model, base_url=base_url, api_key="none", timeout=600,
                         generation_kwargs=kw)

    # Two pipelines: distilabel 1.5.3 stalls when a step passes on an empty
    # batch (no pair kept), so curation's filter runs between them, in Python.
    t0 = time.time()
    with Pipeline(name="backforth-peer-1") as first:
        load = LoadDataFromDicts(data=rows)
        bt = ChatGeneration(name="backtranslate", llm=llm(96, 1.0, 0.9))
        cur = ChatGeneration(name="curate", llm=llm(160, 0.0, 1.0, CURATE_GBNF))
        load >> bt >> ToCurate() >> cur
    dist = first.run(use_cache=False)
    scored = list(dist["default"]["train"]) if dist else []
    kept = []
    for r in scored:
        if (score(r.get("generation")) or 0) >= KEEP_MIN:
            kept.append({"id": r["id"], "text": r["text"], "instruction": r["instruction"],
                         "messages": messages(REWRITE.render(instruction=r["instruction"], text=r["text"]))})
    out = []
    if kept:
        with Pipeline(name="backforth-peer-2") as second:
            load = LoadDataFromDicts(data=kept)
            rw = ChatGeneration(name="rewrite", llm=llm(640, 1.0, 0.9, REWRITE_GBNF))
            ds = ChatGeneration(name="distill", llm=llm(512, 1.0, 0.9),
                                output_mappings={"generation": "distilled"})
            load >> rw >> ToDistill() >> ds
        dist = second.run(use_cache=False)
        out = list(dist["default"]["train"]) if dist else []
    wall = time.time() - t0
    res = {
        "client": "distilabel", "version": __import__("distilabel").__version__,
        "documents": len(rows), "instructions": len(scored), "kept": len(kept),
        "rewrites": sum(1 for r in out if r.get("rewrite")),
        "distilled": sum(1 for r in out if r.get("distilled")),
        "wall_s": round(wall, 1),
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(res, f)
    write_pairs(out_json + ".pairs.jsonl", [(r["id"], r["instruction"], r["rewrite"]) for r in out if r.get("rewrite")])


if __name__ == "__main__":
    main()
