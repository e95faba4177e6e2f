#!/usr/bin/env python3
"""Turn the Python FAQ HTML pages (Debian python3.11-doc) into seed pairs.

One pair per question heading: instruction = the heading text (it ends with
'?'), response = the text of the blocks under it until the next heading.
Writes JSONL lines {"instruction", "response", "source"} to stdout, sorted
by file then document order. Uses only the standard library's HTML parser.
"""
import html.parser, json, os, re, sys

BLOCKS = {"p", "pre", "li", "dt", "dd", "blockquote"}

class FaqParser(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth_body = None   # div depth where role=main starts
        self.div_depth = 0
        self.in_heading = False
        self.heading = []
        self.block_depth = 0
        self.buf = []
        self.pairs = []  # [question, [blocks]]
        self.skip = 0    # inside a headerlink anchor

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "div":
            self.div_depth += 1
            if a.get("role") == "main" and self.depth_body is None:
                self.depth_body = self.div_depth
        if self.depth_body is None:
            return
        if tag == "a" and "headerlink" in (a.get("class") or ""):
            self.skip += 1
        if tag in ("h1", "h2", "h3", "h4"):
            self.in_heading, self.heading = True, []
        elif tag in BLOCKS:
            if self.block_depth == 0:
                self.buf = []
            self.block_depth += 1

    def handle_endtag(self, tag):
        if tag == "div":
            if self.depth_body is not None and self.div_depth == self.depth_body:
                self.depth_body = None
            self.div_depth -= 1
            return
        if self.depth_body is None:
            return
        if tag == "a" and self.skip:
            self.skip -= 1
        if tag in ("h1", "h2", "h3", "h4") and self.in_heading:
            self.in_heading = False
            q = " ".join("".join(self.heading).split())
            self.pairs.append([q, []])
        elif tag in BLOCKS and self.block_depth:
            self.block_depth -= 1
            if self.block_depth == 0 and self.pairs:
                text = "".join(self.buf)
                text = text.strip("\n") if tag == "pre" else " ".join(text.split())
                if text:
                    self.pairs[-1][1].append(text)

    def handle_data(self, data):
        if self.depth_body is None or self.skip:
            return
        if self.in_heading:
            self.heading.append(data)
        elif self.block_depth:
            self.buf.append(data)

def main(folder):
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".html") or name == "index.html":
            continue
        p = FaqParser()
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            p.feed(f.read())
        for q, blocks in p.pairs:
            answer = "\n\n".join(blocks).strip()
            if not q.endswith("?") or len(answer) < 80:
                continue
            if len(answer) > 3000:
                answer = answer[:3000].rsplit("\n\n", 1)[0]
            print(json.dumps({"instruction": q, "response": answer,
                              "source": f"python3.11-doc/faq/{name}#{re.sub(r'[^a-z0-9]+','-',q.lower()).strip('-')}"},
                             ensure_ascii=False))

if __name__ == "__main__":
    main(sys.argv[1])
