#!/usr/bin/env python3
"""Store hand labels of real pipeline outputs without copying documents.

Reads JSONL label lines {"line", "instruction", "response"?, "class", "note"?}
with plain texts and writes them to stdout with every run of 20 or more
characters that also occurs in the document (line `line` of CORPUS, trimmed;
with a .jsonl CORPUS, the `text` of the record on that line, trimmed)
replaced by its [start, end) character range, the format
`backforth::labelled::read_labels` and `backforth bench checks --labels` read.
Each output line is checked to rebuild its input exactly. Standard library only.

usage: label_spans.py CORPUS LABELS.jsonl > labels-with-spans.jsonl
"""
import difflib, json, sys

MIN = 20

def encode(text, doc):
    sm = difflib.SequenceMatcher(None, text, doc, autojunk=False)
    parts, pos = [], 0
    for a, b, n in sm.get_matching_blocks():
        if n < MIN:
            continue
        if a > pos:
            parts.append(text[pos:a])
        parts.append([b, b + n])
        pos = a + n
    if pos < len(text):
        parts.append(text[pos:])
    if all(isinstance(p, str) for p in parts):
        return text
    return parts

def decode(t, doc):
    if isinstance(t, str):
        return t
    return "".join(p if isinstance(p, str) else doc[p[0]:p[1]] for p in t)

def main(corpus, labels):
    docs = open(corpus, encoding="utf-8").read().split("\n")
    if corpus.endswith(".jsonl"):
        docs = [json.loads(l)["text"] if l.strip() else "" for l in docs]
    for n, line in enumerate(open(labels, encoding="utf-8"), 1):
        if not line.strip():
            continue
        v = json.loads(line)
        doc = docs[v["line"] - 1].strip()
        v["doc_chars"] = len(doc)
        for k in ("instruction", "response"):
            if v.get(k) is not None:
                enc = encode(v[k], doc)
                assert decode(enc, doc) == v[k], f"{labels}:{n}: {k} does not round-trip"
                v[k] = enc
        print(json.dumps(v, ensure_ascii=False))

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
