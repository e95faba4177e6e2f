"""What the learned document filter would have done to a finished run.

Usage: doc_filter_effect.py RUN_DIR SCORED_CANDIDATES [KEEP] [RUBRIC_STAGE_FILE]
RUN_DIR: a run of the method (stages/curate.jsonl, dataset.jsonl, config.toml);
SCORED_CANDIDATES: the same documents through `backforth prepare` with the
filter at doc_filter.min_probability = 0 (metadata.doc_filter per document).
Prints a Markdown table: per filter threshold, the documents that pass it,
the share of them whose pair curation keeps, and the exported pairs that
pass the checks (dataset.jsonl), against no filter. KEEP: the curation
score that counts as kept (default: the run's curate.keep_min_score).
RUBRIC_STAGE_FILE: the doc-rubric ratings of the same documents, to show
what the LLM's own rating (rating >= 3) would have done.
"""
import json
import sys
import tomllib

run, scored = sys.argv[1], sys.argv[2]
cfg = tomllib.load(open(f"{run}/config.toml", "rb"))
keep = int(sys.argv[3]) if len(sys.argv) > 3 else cfg.get("curate", {}).get("keep_min_score", 5)
rubric = {}
if len(sys.argv) > 4:
    for line in open(sys.argv[4]):
        r = json.loads(line)
        rubric[r["id"]] = (r.get("outputs", {}).get("doc_rubric") or {}).get("score") or 0
p = {}
for line in open(scored):
    r = json.loads(line)
    p[r["id"]] = r["metadata"]["doc_filter"]
score = {}
for line in open(f"{run}/stages/curate.jsonl"):
    r = json.loads(line)
    g = r.get("curation") or {}
    score[r["id"]] = g.get("score")
passing = {json.loads(line)["id"] for line in open(f"{run}/dataset.jsonl")}
docs = [i for i in score if i in p]
print(f"{run}: {len(score)} curated documents, {len(docs)} scored by the filter "
      f"(the rest dropped by prepare's other rules), keep = score >= {keep}\n")
print("| documents kept by | documents left | curation keeps | share kept | pairs passing checks | passing per document |")
print("|---|---|---|---|---|---|")
rows = [(("none" if t is None else f"filter {t:.1f}"), [i for i in docs if t is None or p[i] >= t])
        for t in [None, 0.3, 0.5, 0.7]]
if rubric:
    rows.append(("the LLM's rating >= 3 (no filter: what it imitates)", [i for i in docs if rubric.get(i, 0) >= 3]))
for name, left in rows:
    kept = [i for i in left if (score[i] or 0) >= keep]
    ok = [i for i in left if i in passing]
    n = max(len(left), 1)
    print(f"| {name} | {len(left)} | {len(kept)} | {len(kept)/n:.2f} | {len(ok)} | {len(ok)/n:.2f} |")
