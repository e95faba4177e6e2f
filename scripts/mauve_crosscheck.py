"""One-off cross-check of `backforth bench mauve` against the reference
`mauve-text` package on the same embeddings (sentence-transformers
all-MiniLM-L6-v2, which our candle embeddings match to 1e-6).
Writes P/Q embedding files and prints the reference MAUVE for each case.
Usage: mauve_crosscheck.py MODEL_DIR SENTENCES NEWS OUTDIR"""
import json, sys, pathlib
import numpy as np
import mauve
from sentence_transformers import SentenceTransformer

model_dir, sents, news, out = sys.argv[1], sys.argv[2], sys.argv[3], pathlib.Path(sys.argv[4])
out.mkdir(parents=True, exist_ok=True)
m = SentenceTransformer(model_dir, device="cpu")
docs = [l for l in open(sents).read().splitlines() if l.strip()][:1000]
nws = [l for l in open(news).read().splitlines() if l.strip()][:300]
D = m.encode(docs, batch_size=32, normalize_embeddings=True)
N = m.encode(nws, batch_size=32, normalize_embeddings=True)
cases = {
    "same-source-500v500": (D[:500], D[500:1000]),
    "docs-vs-news-300v300": (D[:300], N[:300]),
    "docs-vs-half-news-300v300": (D[:300], np.vstack([D[300:450], N[:150]])),
}
for name, (p, q) in cases.items():
    p.astype("<f4").tofile(out / f"{name}.p.f32")
    q.astype("<f4").tofile(out / f"{name}.q.f32")
    r = mauve.compute_mauve(p_features=p, q_features=q, verbose=False)
    print(json.dumps({"case": name, "reference_mauve": r.mauve, "reference_buckets": r.num_buckets}))
