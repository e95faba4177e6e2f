"""Peer for `backforth bench embed`: sentence-transformers on the same
all-MiniLM-L6-v2 folder, same sentences, same batch size, CPU threads as
given. Prints one JSON line. Usage: bench_st.py MODEL_DIR TEXTS N BATCH [DUMP]"""
import json, sys, time
import numpy as np
import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_path, n, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
texts = [l for l in open(texts_path).read().splitlines() if l.strip()][:n]
m = SentenceTransformer(model_dir, device="cpu")
m.encode(texts[:64], batch_size=batch)  # warm-up
t = time.time()
v = m.encode(texts, batch_size=batch, normalize_embeddings=True)
s = time.time() - t
if len(sys.argv) > 5:
    np.asarray(v, dtype="<f4").tofile(sys.argv[5])
print(json.dumps({"what": "embed", "peer": "sentence-transformers", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "sentences": len(texts), "batch": batch, "seconds": s, "sentences_per_s": len(texts) / s}))
