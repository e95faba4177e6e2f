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
import os
import random
import re
import sys
import time

import jinja2
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import LoadDataFromDicts, StepInput, step
from distilabel.steps.tasks import ChatGeneration

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
        lines = [l for l in (r.get("generation") or "").splitlines() if l.strip()]
        m = SCORE.match(lines[-1]) if lines else None
        if m and int(m.group(1)) >= KEEP_MIN:
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
        "documents": len(docs), "instructions": len(scored), "kept": len(kept),
        "rewrites": sum(1 for r in out if r.get("rewrite")),
        "distilled": sum(1 for r in out if r.get("distilled")),
        "wall_s": round(wall, 1),
    }
    with open(out_json, "w", encoding="utf-8") as f:
        json.dump(res, f)
    # the parsed rewrites, as lines `backforth bench checks --labels` reads
    # (document line, instruction, response), so the same checks count the
    # pairs that pass
    with open(out_json + ".pairs.jsonl", "w", encoding="utf-8") as f:
        for r in out:
            if r.get("rewrite"):
                line = int(r["id"].rsplit(":", 1)[1])
                f.write(json.dumps({"line": line, "instruction": r["instruction"],
                                    "response": r["rewrite"], "class": "unlabelled"}) + "\n")
    print(json.dumps(res))


if __name__ == "__main__":
    main()
