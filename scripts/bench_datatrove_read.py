"""The datatrove side of the object-storage benchmark: read gzip JSONL
(local folder or s3:// through fsspec/s3fs) -> keep >= 200 characters ->
write JSONL locally.

usage: bench_datatrove_read.py IN_DIR_OR_URL WORK_DIR TASKS
"""
import os, sys
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.pipeline.filters import LambdaFilter


def main():
    src, work, tasks = sys.argv[1], sys.argv[2], int(sys.argv[3])
    LocalPipelineExecutor(
        pipeline=[JsonlReader(src, glob_pattern="*.jsonl.gz"),
                  LambdaFilter(lambda d: len(d.text) >= 200),
                  JsonlWriter(f"{work}/out", compression=None)],
        tasks=tasks, workers=tasks, logging_dir=f"{work}/logs").run()


if __name__ == "__main__":  # workers are started by forkserver and re-import this file
    main()
