"""Table for scripts/bench-server.sh: documents/minute of each client and the
server's utilisation, i.e. its prompt + generated tokens/s during the client's
run against the ceiling for that run's own mix of prefilled (P) and generated
(G) tokens: (P + G) / (P / best prefill speed + G / best generation speed),
both speeds from llama-batched-bench at the same number of sequences.
Beside it, from the server's own /metrics before and after each client
(<client>.m0 / .m1 next to results.jsonl): slot occupancy, the share of the
slots' time that held a request ((prompt seconds + generation seconds, both
summed over slots by llama-server) / (slots x the client's wall time)), and
the server's mean busy slots per decode call. Occupancy is what a client
controls; the rest of the gap to the ceiling is the server's cost per token
on real requests.
Usage: bench_server_summary.py results.jsonl"""
import json
import os
import re
import sys


def metrics(path):
    """llama-server's Prometheus text (`/metrics`) as {name without the
    `llamacpp:` prefix: value}; {} if the file is absent. bench-server.sh's
    server counters read their files with it too."""
    out = {}
    if os.path.exists(path):
        for line in open(path):
            m = re.match(r"llamacpp:(\w+) ([0-9.eE+-]+)$", line.strip())
            if m:
                out[m.group(1)] = float(m.group(2))
    return out


def main():
    rows = [json.loads(l) for l in open(sys.argv[1])]
    bb = [r for r in rows if r.get("what") == "llama-batched-bench"]
    pp, tg = max(r["speed_pp"] for r in bb), max(r["speed_tg"] for r in bb)
    print(f"ceiling speeds: prefill {pp:.1f} tok/s, generation {tg:.1f} tok/s")
    slots = bb[0]["pl"]
    here = os.path.dirname(sys.argv[1])
    print("| client | documents/min | kept | rewrites | first rewrite on disk, s | passing the checks | server s per rewrite | server s per passing pair | prefilled | generated | server tok/s | ceiling tok/s | utilisation | slot occupancy | busy slots per decode |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
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
        m0, m1 = metrics(f"{here}/{c}.m0"), metrics(f"{here}/{c}.m1")
        busy = sum(m1.get(k, 0) - m0.get(k, 0) for k in
                   ("prompt_seconds_total", "tokens_predicted_seconds_total"))
        occ = f"{busy / (slots * wall):.1%}" if m1 else "–"
        per_decode = m1.get("n_busy_slots_per_decode")
        print(f"| {c} | {run['documents_per_minute']} | {run['kept']} | {rw} | {first if first else '–'} | "
              f"{passing if passing is not None else '– (no checks)'} | {wall / rw if rw else float('nan'):.1f} | "
              f"{f'{wall / passing:.1f}' if passing else '–'} | {P} | {G} | "
              f"{srv['server_tokens_per_s']} | {ceil:.1f} | {srv['server_tokens_per_s'] / ceil:.0%} | {occ} | "
              f"{f'{per_decode:.2f} of {slots}' if per_decode is not None else '–'} |")


if __name__ == "__main__":
    main()
