"""The datatrove side of the prepare benchmark: read JSONL -> length filter
(>= 200 chars) -> Gopher repetition filter limited to the rules backforth
applies (duplicate lines 0.3, top 2-gram 0.2, duplicate 5-grams 0.15) ->
MinHash dedup (5-gram shingles, 14 bands x 8 rows, seed 1) in datatrove's
four stages. Prints JSON: documents in, documents kept, wall seconds.

usage: bench_datatrove.py IN_DIR WORK_DIR TASKS
"""
import json, os, sys, time
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.filters import GopherRepetitionFilter, LambdaFilter
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupSignature, MinhashDedupBuckets,
                                              MinhashDedupCluster, MinhashDedupFilter)



def main():
    src, work, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8, seed=1)
    filters = lambda: [
        JsonlReader(src, glob_pattern="*.jsonl"),
        LambdaFilter(lambda d: len(d.text) >= 200),
        GopherRepetitionFilter(dup_line_frac=0.3, dup_para_frac=None, dup_line_char_frac=None, dup_para_char_frac=None,
                               top_n_grams=((2, 0.2),), dup_n_grams=((5, 0.15),)),
    ]
    t0 = time.time()
    LocalPipelineExecutor(pipeline=filters() + [MinhashDedupSignature(output_folder=f"{work}/sigs", config=cfg)],
                          tasks=tasks, workers=tasks, logging_dir=f"{work}/logs/1").run()
    LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=f"{work}/sigs", output_folder=f"{work}/buckets", config=cfg)],
                          tasks=cfg.num_buckets, workers=tasks, logging_dir=f"{work}/logs/2").run()
    LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=f"{work}/buckets", output_folder=f"{work}/remove_ids", config=cfg)],
                          tasks=1, logging_dir=f"{work}/logs/3").run()
    LocalPipelineExecutor(pipeline=filters() + [MinhashDedupFilter(input_folder=f"{work}/remove_ids"),
                                                JsonlWriter(f"{work}/out", compression=None)],
                          tasks=tasks, workers=tasks, logging_dir=f"{work}/logs/4").run()
    wall = time.time() - t0
    n_in = sum(1 for p in os.listdir(src) for _ in open(os.path.join(src, p)))
    n_out = sum(1 for p in os.listdir(f"{work}/out") for _ in open(os.path.join(work, "out", p)))
    print(json.dumps({"documents": n_in, "kept": n_out, "wall_s": round(wall, 2)}))


if __name__ == "__main__":  # workers are started by forkserver and re-import this file
    main()
