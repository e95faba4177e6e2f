//! `backforth run` and the single-stage commands (`backtranslate`, `curate`,
//! `rewrite`, `distill`): the configured chain of stages, then the exports.

use crate::cli::CommonArgs;
use crate::progress::Bars;
use crate::provider::Provider;
use anyhow::Result;
use backforth::pipeline::{self, RunOptions};
use backforth::record::Stage;
use backforth::store::RunDir;
use std::path::PathBuf;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(common: &CommonArgs, stages: Option<Vec<Stage>>, from: Option<PathBuf>) -> Result<()> {
    let cfg = common.config()?;
    let stages = stages.unwrap_or_else(|| cfg.run.stages.clone());
    let mut provider = Provider::new(&cfg);
    let mut bars = Bars {
        quiet: common.quiet,
    };
    let summary = pipeline::run(&cfg, &stages, &mut provider, &mut bars, RunOptions { from })?;
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
