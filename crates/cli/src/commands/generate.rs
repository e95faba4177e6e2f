//! `backforth generate`: answer evaluation instructions with any backend (AlpacaEval JSON out), resumably.

use super::eval_io::{report_issues, sampling, work_path};
use crate::cli::GenerateArgs;
use crate::progress::{bar, progress_fn};
use crate::provider::Provider;
use anyhow::Result;
use backforth_inference::BackendProvider;
use backforth_measure::eval::{self, WorkFile};
use std::path::Path;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: GenerateArgs) -> Result<()> {
    let mut cfg = a.common.config()?;
    if cfg.output.dir == backforth::config::OutputConfig::default().dir {
        // The response cache goes beside the outputs.
        cfg.output.dir = a
            .outputs
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .display()
            .to_string();
    }
    let (mut ins, issues) = eval::read_instructions(&a.instructions)?;
    report_issues(&issues);
    if let Some(n) = a.limit {
        ins.truncate(n);
    }
    let template = eval::generate_template(&a.template)?;
    let model = cfg.model.path.clone();
    let generator = a.generator.clone().unwrap_or_else(|| {
        Path::new(&model)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| model.clone())
    });
    let mut provider = Provider::new(&cfg);
    let backend = provider.backend(&model)?;
    let mut work = WorkFile::open(&work_path(&a.outputs))?;
    let pb = bar(a.common.quiet, ins.len() as u64, "generate");
    let mut prog = progress_fn(&pb, "generate");
    let (outs, errors) = eval::generate(
        backend,
        &ins,
        &template,
        &sampling(a.max_tokens, a.temperature, cfg.model.seed),
        &generator,
        &mut work,
        &mut prog,
    )?;
    pb.finish();
    eval::write_outputs(&a.outputs, &outs)?;
    eprintln!(
        "generate: {} of {} instructions answered ({} backend errors, rerun to retry) → {}",
        outs.len(),
        ins.len(),
        errors,
        a.outputs.display()
    );
    Ok(())
}
