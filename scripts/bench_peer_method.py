"""The method as the peer scripts of scripts/bench-server.sh run it
(bench_distilabel.py, bench_curator.py): backforth's own template files
rendered with Jinja into chat messages, the GBNF grammars with the same
bounds, the curation score pattern, and the documents and seed draw both
peers read. Shared so the two peers run exactly the same work."""

import json
import os
import random
import re

import jinja2

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


def score(generation):
    """The curation score on the answer's last line, or None."""
    lines = [l for l in (generation or "").splitlines() if l.strip()]
    m = SCORE.match(lines[-1]) if lines else None
    return int(m.group(1)) if m else None


def first_rows(run_dir, seeds_path, k):
    """The documents of backforth's stages/backtranslate.jsonl in RUN_DIR, each
    with its backtranslation messages: k seed pairs per document drawn from the
    seed file (responses of at most 700 characters, demo.toml's
    backtranslate.max_seed_chars), seeded, in document order."""
    docs = []
    with open(os.path.join(run_dir, "stages", "backtranslate.jsonl"), encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            docs.append({"id": r["id"], "text": r["text"]})
    seeds = []
    with open(seeds_path, encoding="utf-8") as f:
        for line in f:
            s = json.loads(line)
            if len(s["response"]) <= 700:
                seeds.append(s)
    rng = random.Random(42)
    return [{**d, "messages": messages(BT.render(text=d["text"], seeds=rng.sample(seeds, k)))} for d in docs]


def write_pairs(path, pairs):
    """Parsed rewrites as lines `backforth bench checks --labels` reads
    (document line from the record id `<file>:<line>`, instruction, response),
    so backforth's checks count the pairs that pass."""
    with open(path, "w", encoding="utf-8") as f:
        for doc_id, instruction, response in pairs:
            f.write(json.dumps({"line": int(doc_id.rsplit(":", 1)[1]), "instruction": instruction,
                                "response": response, "class": "unlabelled"}) + "\n")
