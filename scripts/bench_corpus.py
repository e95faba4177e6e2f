"""Write a benchmark corpus of Dolma-style JSONL shards built from the real
documents in the asset cache (Lee news stories, Python manual .rst.txt
sections, SpamAssassin emails), scaled to N documents by seeded variation:
~12% exact copies, ~12% near copies (3% of words replaced), the rest
unique variants (every 4th word replaced, which breaks all word 5-grams).

usage: bench_corpus.py CACHE OUT_DIR N_DOCS N_SHARDS
"""
import glob, json, os, random, sys

cache, out, n, shards = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
pool = []
with open(os.path.join(cache, "corpus/gensim/lee_background.cor"), encoding="utf-8") as f:
    pool += [l.strip() for l in f if l.strip()]
for p in sorted(glob.glob(os.path.join(cache, "corpus/python3.11-doc/_sources/**/*.rst.txt"), recursive=True)):
    blocks, cur = [], ""
    for para in open(p, encoding="utf-8", errors="replace").read().split("\n\n"):
        cur += para + "\n\n"
        if len(cur) > 1500:
            blocks.append(cur.strip()); cur = ""
    pool += blocks
for p in sorted(glob.glob(os.path.join(cache, "corpus/spam-assassin/*/*.json"))):
    pool.append(json.load(open(p, encoding="utf-8"))["text"])
vocab = sorted({w for t in pool[:2000] for w in t.split()})
rng = random.Random(1)
os.makedirs(out, exist_ok=True)
files = [open(os.path.join(out, f"shard-{k:02d}.jsonl"), "w", encoding="utf-8") for k in range(shards)]
for i in range(n):
    base = pool[i % len(pool)]
    variant = i // len(pool)
    r = rng.random()
    if variant == 0 or r < 0.12:
        text = base
    else:
        ws = base.split(" ")
        every = 33 if r < 0.24 else 4
        text = " ".join(rng.choice(vocab) if (k + variant) % every == 0 else w for k, w in enumerate(ws))
    files[i % shards].write(json.dumps({"id": f"b{i}", "text": text, "source": "bench"}) + "\n")
for f in files:
    f.close()
print(f"{n} documents from a pool of {len(pool)} real ones -> {out}", file=sys.stderr)
