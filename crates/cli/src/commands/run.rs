//! `backforth run` (and the earlier single-stage command names, which are
//! `run --stages NAME`): the configured stages, then the exports.

use crate::cli::ShardArgs;
use crate::progress::Bars;
use crate::provider::Provider;
use anyhow::Result;
use backforth::pipeline::{self, RunOptions};
use backforth::store::RunDir;
use std::path::PathBuf;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
/// With `--num-shards`, run one shard of a sharded run (see `backforth_shard`).
pub fn run(
    mut cfg: backforth::Config,
    quiet: bool,
    from: Option<PathBuf>,
    shard: &ShardArgs,
) -> Result<()> {
    let stages = cfg.run.stages.clone();
    let mut job = None;
    // an output in object storage is written by a one-shard run and a merge
    let remote = backforth_shard::remote::is_url(&cfg.output.dir);
    let auto_merge = remote && shard.num_shards.is_none();
    let num_shards = shard.num_shards.or(auto_merge.then_some(1));
    let run_name = cfg.output.dir.clone();
    let merge_remote = || -> Result<()> {
        let run = backforth_shard::OutDir::open(&run_name)?;
        if !run.fetch(backforth_shard::merge::SUCCESS_FILE)? {
            let r = backforth_shard::merge_at(&run, false)?;
            eprintln!(
                "uploaded {} files → {}",
                r.files.len() + r.parquet.len() + 2,
                r.run_dir
            );
        }
        Ok(())
    };
    if let Some(n) = num_shards {
        anyhow::ensure!(from.is_none(), "--from and --num-shards do not go together");
        let i = if auto_merge {
            0
        } else {
            backforth_shard::rank::shard_index_from_env(shard.shard, n)?
        };
        match backforth_shard::begin_shard(&cfg, n, i)? {
            backforth_shard::ShardStart::Done(m) => {
                eprintln!(
                    "shard {i} of {n} is already done ({} documents, examples {:?}); nothing to do",
                    m.documents, m.examples
                );
                if auto_merge {
                    merge_remote()?;
                }
                return Ok(());
            }
            backforth_shard::ShardStart::Run(j) => {
                eprintln!("shard {i} of {n} → {}", j.dir.display());
                cfg = j.config.clone();
                if j.empty {
                    j.finish(None)?;
                    eprintln!("shard {i} has no input in the plan (more shards than input to cut); marked done");
                    return Ok(());
                }
                if let Some(n) = backforth_shard::dedup::drop_remove_list(&j)? {
                    eprintln!("shard {i}: {n} documents dropped as duplicates across shards");
                }
                job = Some(j);
            }
        }
    }
    let mut provider = Provider::new(&cfg);
    let mut bars = Bars {
        quiet,
    };
    let summary = pipeline::run(&cfg, &stages, &mut provider, &mut bars, RunOptions { from })?;
    if let Some(j) = job {
        let m = j.finish(Some(&summary))?;
        eprintln!(
            "shard {} of {} done: marker with {} files",
            m.shard,
            m.num_shards,
            m.files.len()
        );
        if auto_merge {
            merge_remote()?;
        }
    }
    let run = RunDir(PathBuf::from(&cfg.output.dir));
    eprintln!(
        "documents: {} read, {} skipped{}",
        summary.input.documents,
        summary.input.skipped_total(),
        if summary.input.skipped.is_empty() {
            String::new()
        } else {
            format!(" {:?}", summary.input.skipped)
        }
    );
    for (name, t) in &summary.stages {
        let mut line = format!(
            "{name:>13}: {} done, {} parsed, {} parse failures, {} errors",
            t.done, t.parsed_ok, t.parse_failed, t.backend_errors
        );
        if let (Some(k), Some(share)) = (t.kept, t.kept_share) {
            line += &format!(
                ", kept {k} ({:.1}%), scores {:?}",
                share * 100.0,
                t.score_histogram
            );
        }
        eprintln!("{line}");
    }
    for (name, o) in &summary.outputs {
        let checks = match &o.checks {
            Some(c) if c.failed > 0 => {
                let r: Vec<String> = c.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
                format!(
                    " ({} of {} left out by the checks: {}; see checks.jsonl)",
                    c.failed,
                    c.checked,
                    r.join(", ")
                )
            }
            Some(c) => format!(" (all {} passed the checks)", c.checked),
            None => String::new(),
        };
        eprintln!("{name:>13}: {} examples{checks} → {}", o.examples, o.path);
    }
    for (m, b) in &provider.backends {
        eprintln!(
            "        cache: {m}: {} answered from cache, {} sent to the model",
            b.hits, b.misses
        );
    }
    eprintln!("      summary: {}", run.summary().display());
    Ok(())
}
