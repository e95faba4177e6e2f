"""Table for scripts/bench-server.sh: documents/minute of each client and the
server's utilisation, i.e. its prompt + generated tokens/s during the client's
run against the ceiling for that run's own mix of prefilled (P) and generated
(G) tokens: (P + G) / (P / best prefill speed + G / best generation speed),
both speeds from llama-batched-bench at the same number of sequences.
Usage: bench_server_summary.py results.jsonl"""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1])]
bb = [r for r in rows if r.get("what") == "llama-batched-bench"]
pp, tg = max(r["speed_pp"] for r in bb), max(r["speed_tg"] for r in bb)
print(f"ceiling speeds: prefill {pp:.1f} tok/s, generation {tg:.1f} tok/s")
print("| client | documents/min | kept | rewrites | first rewrite on disk, s | passing the checks | server s per rewrite | server s per passing pair | prefilled | generated | server tok/s | ceiling tok/s | utilisation |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for c in ("backforth", "backforth-streamed", "backforth-streamed-2x", "distilabel", "curator"):
    run = next((r for r in rows if r.get("client") == c and "documents_per_minute" in r), None)
    srv = next((r for r in rows if r.get("client") == c and r.get("what") == "server_counters"), None)
    if run is None or srv is None:
        continue
    P, G = srv["prompt_tokens"], srv["generated_tokens"]
    ceil = (P + G) / (P / pp + G / tg)
    wall = run.get("wall_s_process") or run["wall_s"]
    rw = run.get("rewrites") or 0
    passing = run.get("passing")
    first = run.get("first_rewrite_s")
    print(f"| {c} | {run['documents_per_minute']} | {run['kept']} | {rw} | {first if first else '–'} | "
          f"{passing if passing is not None else '– (no checks)'} | {wall / rw if rw else float('nan'):.1f} | "
          f"{f'{wall / passing:.1f}' if passing else '–'} | {P} | {G} | "
          f"{srv['server_tokens_per_s']} | {ceil:.1f} | {srv['server_tokens_per_s'] / ceil:.0%} |")
