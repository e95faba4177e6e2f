//! `backforth eval`: pairwise judging of two output sets in both orders; win rate ± SE, length-controlled win rate.

use super::eval_io::{report_issues, sampling};
use crate::cli::EvalArgs;
use crate::progress::{bar, progress_fn};
use crate::provider::Provider;
use anyhow::{bail, Result};
use backforth_inference::BackendProvider;
use backforth_measure::eval::{self, EvalSummary, WorkFile};
use std::path::Path;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: EvalArgs) -> Result<()> {
    let cfg = a
        .common
        .config_with(vec![format!("output.dir={}", toml::Value::String(a.out.display().to_string()))])?;
    let dir = a.out.clone();
    std::fs::create_dir_all(&dir)?;
    let (model_outs, i1) = eval::read_outputs(&a.model_outputs)?;
    let (base_outs, i2) = eval::read_outputs(&a.baseline_outputs)?;
    report_issues(&i1);
    report_issues(&i2);
    let only = match &a.instructions {
        Some(p) => {
            let (l, i) = eval::read_instructions(p)?;
            report_issues(&i);
            Some(l)
        }
        None => None,
    };
    let (mut pairs, unmatched) = eval::pair_outputs(&model_outs, &base_outs, only.as_deref());
    if let Some(n) = a.limit {
        pairs.truncate(n);
    }
    if pairs.is_empty() {
        bail!(
            "no instruction has an output in both files ({} model outputs, {} baseline outputs)",
            model_outs.len(),
            base_outs.len()
        );
    }
    let template = eval::judge_template(&a.template)?;
    eval::check_judge_template(&template)?;
    let judge_model = cfg.model.path.clone();
    let mut provider = Provider::new(&cfg);
    let judge_id = provider.model_id(&judge_model)?;
    let backend = provider.backend(&judge_model)?;
    let grammar = (!a.no_grammar).then_some(eval::JUDGE_GRAMMAR);
    let mut work = WorkFile::open(&dir.join("judgements.jsonl"))?;
    let pb = bar(a.common.quiet, pairs.len() as u64 * 2, "judge");
    let mut prog = progress_fn(&pb, "judge");
    let judgements = eval::judge_pairs(
        backend,
        &pairs,
        &template,
        &sampling(a.max_tokens, 0.0, cfg.model.seed),
        grammar,
        a.top_logprobs,
        &mut work,
        &mut prog,
    )?;
    pb.finish();
    let (results, win, failures, failed, inconsistent) = eval::summarise(&pairs, &judgements);
    let gen = |o: &[eval::EvalOutput], p: &Path| {
        o.first()
            .map(|x| x.generator.clone())
            .unwrap_or_else(|| p.display().to_string())
    };
    let n = pairs.len() as f64;
    let (mut reliability, ci) = eval::reliability_and_ci(&results, cfg.model.seed);
    let verdict_win_rate =
        eval::verdict_win_rate(&results, &mut reliability, win.win_rate, cfg.model.seed);
    let summary = EvalSummary {
        model_generator: gen(&model_outs, &a.model_outputs),
        baseline_generator: gen(&base_outs, &a.baseline_outputs),
        judge: judge_id,
        judge_template: format!("{} ({})", template.name, template.hash),
        pairs: pairs.len(),
        unmatched_instructions: unmatched,
        judgements: judgements.len(),
        judgement_failures: failures,
        failed_pairs: failed,
        inconsistent_pairs: inconsistent,
        mean_model_chars: results.iter().map(|r| r.model_chars as f64).sum::<f64>() / n,
        mean_baseline_chars: results.iter().map(|r| r.baseline_chars as f64).sum::<f64>() / n,
        win,
        win_rate_ci95: ci,
        reliability: Some(reliability.clone()),
        verdict_win_rate,
    };
    let mut lines = String::new();
    for r in &results {
        lines += &serde_json::to_string(r)?;
        lines.push('\n');
    }
    std::fs::write(dir.join("results.jsonl"), lines)?;
    std::fs::write(
        dir.join("eval_summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    let w = &summary.win;
    let r = &reliability;
    let pct = |x: Option<f64>| {
        x.map(|v| format!("{:.0}%", 100.0 * v))
            .unwrap_or_else(|| "–".into())
    };
    let fmt_ci = |ci: Option<(f64, f64)>| {
        ci.map(|(a, b)| format!("[{a:.1}, {b:.1}]"))
            .unwrap_or_else(|| "–".into())
    };
    let result = if r.informative {
        format!(
            "win rate ({}) {:.1} ± {:.1} (SE), 95% CI {}, LC win rate {}",
            r.basis,
            w.win_rate,
            w.standard_error,
            fmt_ci(ci),
            w.lc_win_rate
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "–".into()),
        ) + &verdict_win_rate
            .map(|v| {
                format!(
                    ", verdicts alone {:.1} (95% CI {})",
                    v.win_rate,
                    fmt_ci(v.ci95)
                )
            })
            .unwrap_or_default()
    } else {
        "judge uninformative: no win rate".to_string()
    };
    eprintln!(
        "eval: {} vs {} judged by {}: {result}, n = {}, ties {}, failed judgements {}/{}, position consistency {} (weighted {} on {} pairs), first-position rate {} (probability {}), mean chars {:.0} vs {:.0} → {}",
        summary.model_generator,
        summary.baseline_generator,
        summary.judge,
        w.n,
        w.ties,
        failures,
        judgements.len(),
        pct(r.position_consistency),
        pct(r.weighted_consistency),
        r.weighted_pairs,
        pct(r.first_position_rate),
        pct(r.first_position_probability),
        summary.mean_model_chars,
        summary.mean_baseline_chars,
        dir.join("eval_summary.json").display()
    );
    for warning in &r.warnings {
        eprintln!("warning: {warning}");
    }
    Ok(())
}
