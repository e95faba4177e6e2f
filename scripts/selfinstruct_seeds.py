#!/usr/bin/env python3
"""Turn the Self-Instruct seed tasks (JSONL: id, name, instruction,
instances[{input, output}], is_classification) into seed pairs.

One pair per task, from its first instance: instruction = the task's
instruction, followed by the instance's input on its own paragraph when there
is one (the input belongs to the request); response = the instance's output.
Tasks with an empty output are skipped (counted on stderr). Writes JSONL
{"instruction", "response", "source"} to stdout in file order. Standard
library only.
"""
import json, sys

def main(path):
    kept = skipped = 0
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                task = json.loads(line)
                inst = task["instances"][0]
                instruction = task["instruction"].strip()
                extra = (inst.get("input") or "").strip()
                response = (inst.get("output") or "").strip()
            except (ValueError, KeyError, IndexError, TypeError) as e:
                print(f"{path}:{lineno}: skipped ({e})", file=sys.stderr)
                skipped += 1
                continue
            if not instruction or not response:
                skipped += 1
                continue
            if extra:
                instruction = f"{instruction}\n\n{extra}"
            print(json.dumps({"instruction": instruction, "response": response,
                              "source": f"self-instruct:{task.get('id', lineno)}"},
                             ensure_ascii=False))
            kept += 1
    print(f"self-instruct seeds: {kept} pairs, {skipped} skipped", file=sys.stderr)

if __name__ == "__main__":
    main(sys.argv[1])
