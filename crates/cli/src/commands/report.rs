//! `backforth report`: one self-contained HTML report of a run and/or evaluations.

use crate::cli::ReportArgs;
use anyhow::{bail, Context, Result};
use backforth_measure::analyze::{self};
use backforth_measure::eval::EvalSummary;
use backforth_measure::report::{self, Analysis, EvalView};
use std::path::PathBuf;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: ReportArgs) -> Result<()> {
    let data = a.run.as_deref().map(analyze::read_run).transpose()?;
    let analysis_path = a.analysis.clone().or_else(|| {
        a.run
            .as_ref()
            .map(|r| r.join("analysis.json"))
            .filter(|p| p.exists())
    });
    let mut analysis: Option<Analysis> = match &analysis_path {
        Some(p) => Some(
            serde_json::from_str(
                &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            )
            .with_context(|| format!("{}: not an analysis.json", p.display()))?,
        ),
        None => None,
    };
    if analysis.is_none() {
        if let Some(d) = &data {
            // No analyze run: still show the counts of the run.
            analysis = Some(Analysis {
                run: Some(d.stats.clone()),
                run_dir: a.run.as_ref().map(|r| r.display().to_string()),
                sets: analyze::run_sets(d)
                    .iter()
                    .map(analyze::text_stats)
                    .collect(),
                ..Default::default()
            });
        }
    }
    let mut evals = Vec::new();
    for d in &a.evals {
        let summary: EvalSummary = serde_json::from_str(
            &std::fs::read_to_string(d.join("eval_summary.json")).with_context(|| {
                format!(
                    "{}: no eval_summary.json (run `backforth eval --out {}` first)",
                    d.display(),
                    d.display()
                )
            })?,
        )?;
        let mut results = Vec::new();
        if let Ok(t) = std::fs::read_to_string(d.join("results.jsonl")) {
            for l in t.lines().filter(|l| !l.trim().is_empty()) {
                results.push(serde_json::from_str(l)?);
            }
        }
        evals.push(EvalView {
            name: d
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            summary,
            results,
        });
    }
    let mut train = Vec::new();
    for d in &a.train {
        let p = d.join("progress.jsonl");
        let text = std::fs::read_to_string(&p).with_context(|| {
            format!(
                "{}: no progress.jsonl (a `backforth train --out` folder?)",
                d.display()
            )
        })?;
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (curve, bad) = report::TrainCurve::from_progress(&name, &text);
        if bad > 0 {
            eprintln!(
                "warning: {}: {bad} lines skipped (not step/loss JSON)",
                p.display()
            );
        }
        train.push(curve);
    }
    if data.is_none() && analysis.is_none() && evals.is_empty() && train.is_empty() {
        bail!("nothing to report: give --run, --analysis, --eval or --train");
    }
    let examples = data.as_ref().map(|d| d.examples.as_slice()).unwrap_or(&[]);
    let title = a.title.clone().unwrap_or_else(|| match &a.run {
        Some(r) => format!("backforth run {}", r.display()),
        None if evals.is_empty() => "backforth training".to_string(),
        None => "backforth comparison".to_string(),
    });
    let html = report::render(&report::ReportInput {
        title,
        run_summary: data.as_ref().map(|d| &d.summary),
        analysis: analysis.as_ref(),
        examples,
        max_examples: a.max_examples,
        evals: &evals,
        train: &train,
    })?;
    let out = a.out.clone().unwrap_or_else(|| {
        a.run
            .as_ref()
            .map(|r| r.join("report.html"))
            .unwrap_or_else(|| PathBuf::from("report.html"))
    });
    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report → {}", out.display());
    Ok(())
}
