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
print("| client | documents/min | kept | prefilled | generated | server tok/s | ceiling tok/s | utilisation |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for c in ("backforth", "distilabel"):
    run = next(r for r in rows if r.get("client") == c and "documents_per_minute" in r)
    srv = next(r for r in rows if r.get("client") == c and r.get("what") == "server_counters")
    P, G = srv["prompt_tokens"], srv["generated_tokens"]
    ceil = (P + G) / (P / pp + G / tg)
    print(f"| {c} | {run['documents_per_minute']} | {run['kept']} | {P} | {G} | "
          f"{srv['server_tokens_per_s']} | {ceil:.1f} | {srv['server_tokens_per_s'] / ceil:.0%} |")
