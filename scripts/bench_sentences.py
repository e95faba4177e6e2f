"""Sentences for the embedding/MAUVE benchmark: prose sentences (6–60 words)
from the Python manual's reStructuredText sources (Debian python3.11-doc,
fetched by fetch-assets.sh corpus), de-duplicated, in a fixed shuffled order.
Usage: bench_sentences.py DOC_DIR OUT [N]"""
import pathlib, random, re, sys

root, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
n = int(sys.argv[3]) if len(sys.argv) > 3 else 25000
seen, sents = set(), []
for f in sorted(root.rglob("*.rst.txt")):
    text = f.read_text(errors="replace")
    # paragraphs of prose: skip directives, code and tables
    for para in re.split(r"\n\s*\n", text):
        if re.match(r"\s*(\.\.|::|>>>|[=\-~^*+|])", para) or para.startswith(" "):
            continue
        para = " ".join(para.split())
        for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", para):
            w = len(s.split())
            if 6 <= w <= 60 and s not in seen:
                seen.add(s)
                sents.append(s)
random.Random(0).shuffle(sents)
out.write_text("\n".join(sents[:n]) + "\n")
print(f"{min(n, len(sents))} of {len(sents)} sentences -> {out}", file=sys.stderr)
