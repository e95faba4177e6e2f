//! Evaluation outputs and pairwise judging (`backforth generate`, `backforth eval`).
//!
//! File formats:
//! - **AlpacaEval outputs** (Dubois et al. 2023): a JSON list of objects with
//!   `instruction`, `output`, `generator`, `dataset`; extra fields are kept.
//!   Read and written by [`read_outputs`] / [`write_outputs`]. JSONL with the
//!   same fields (e.g. a run's `dataset.jsonl` / `distilled.jsonl`) is read too.
//! - **Instructions** ([`read_instructions`]): an AlpacaEval JSON list, MT-bench
//!   `question.jsonl` (first turn of `turns`, id `question_id`, `category`),
//!   or JSONL with `instruction` / `prompt` / `question`.
//!
//! Judging: each instruction is judged twice, the model's output shown first
//! (`A`) and then second (`B`), to cancel position bias; the judge must end
//! with `Preferred: A|B|tie` ([`crate::judge::parse_verdict`]; the embedded
//! judge is grammar-constrained to exactly that line). The per-instruction
//! preference is the mean of the two orders; statistics in [`crate::judge`].
//!
//! Resume: every finished generation or judgement is appended as one JSON line
//! to a work file with its key (hash of everything that determines it); a
//! rerun skips keys already there, so a killed job loses nothing and never
//! judges an order twice. The response cache under the backend adds the same
//! guarantee across runs that share a cache.

use crate::judge::{self, Verdict, WinRate};
use anyhow::{bail, Context, Result};
use backforth::prompt::PromptTemplate;
use backforth_inference::{Backend, GenRequest, Sampling};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;

/// The judge grammar (llama.cpp GBNF): the verdict line and nothing else.
pub const JUDGE_GRAMMAR: &str = include_str!("../prompts/judge.gbnf");

/// The built-in judge template (ours; `prompts/judge.j2`): instruction and two
/// answers in, `Preferred: A|B|tie` out.
pub const JUDGE_TEMPLATE: &str = include_str!("../prompts/judge.j2");

/// The built-in template that asks a model to answer an evaluation
/// instruction (`prompts/generate.j2`).
pub const GENERATE_TEMPLATE: &str = include_str!("../prompts/generate.j2");

/// The judge template: the file at `path`, or the built-in one when `path`
/// is empty. Errors: unreadable file, template syntax.
pub fn judge_template(path: &str) -> Result<PromptTemplate> {
    PromptTemplate::load_or(path, "judge", JUDGE_TEMPLATE)
}

/// The answer template for `generate`: the file at `path`, or the built-in
/// one when `path` is empty. Errors: unreadable file, template syntax.
pub fn generate_template(path: &str) -> Result<PromptTemplate> {
    PromptTemplate::load_or(path, "generate", GENERATE_TEMPLATE)
}

/// One instruction to answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalInstruction {
    /// Stable id: `question_id` / `id` if present, else the 1-based position.
    pub id: String,
    pub instruction: String,
    /// Dataset name (AlpacaEval `dataset`, `mt_bench` for MT-bench questions).
    pub dataset: String,
    /// MT-bench category (or empty).
    pub category: String,
}

/// One model output in AlpacaEval format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalOutput {
    pub instruction: String,
    pub output: String,
    #[serde(default)]
    pub generator: String,
    #[serde(default)]
    pub dataset: String,
    /// Any other fields, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// Skipped input items, with `file:line` (or `file[index]`) and reason.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct InputIssues {
    pub skipped: usize,
    pub messages: Vec<String>,
}

impl InputIssues {
    fn skip(&mut self, at: String, why: &str) {
        self.skipped += 1;
        if self.messages.len() < 100 {
            self.messages.push(format!("{at}: {why} (skipped)"));
        }
    }
}

/// Items of a JSON list file or a JSONL file, each with its location.
/// Errors: unreadable file, a `[`-file that is not a JSON list.
fn json_items(path: &Path, issues: &mut InputIssues) -> Result<Vec<(String, serde_json::Value)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let p = path.display();
    if text.trim_start().starts_with('[') {
        let v: Vec<serde_json::Value> =
            serde_json::from_str(&text).with_context(|| format!("{p}: not a valid JSON list"))?;
        return Ok(v
            .into_iter()
            .enumerate()
            .map(|(i, v)| (format!("{p}[{i}]"), v))
            .collect());
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => out.push((format!("{p}:{}", i + 1), v)),
            Err(e) => issues.skip(format!("{p}:{}", i + 1), &format!("invalid JSON: {e}")),
        }
    }
    Ok(out)
}

/// Read instructions (formats in the module docs). Items without an
/// instruction are skipped and reported in the returned issues.
pub fn read_instructions(path: &Path) -> Result<(Vec<EvalInstruction>, InputIssues)> {
    let mut issues = InputIssues::default();
    let items = json_items(path, &mut issues)?;
    let mut out = Vec::new();
    for (n, (at, v)) in items.into_iter().enumerate() {
        let text = if let Some(turns) = v.get("turns").and_then(|t| t.as_array()) {
            turns.first().and_then(|t| t.as_str()).map(String::from)
        } else {
            ["instruction", "prompt", "question"]
                .iter()
                .find_map(|f| v.get(*f).and_then(|x| x.as_str()).map(String::from))
        };
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
            issues.skip(
                at,
                "no instruction (want `instruction`, `prompt`, `question` or MT-bench `turns`)",
            );
            continue;
        };
        let id = v
            .get("question_id")
            .or_else(|| v.get("id"))
            .map(|x| {
                x.as_str()
                    .map(String::from)
                    .unwrap_or_else(|| x.to_string())
            })
            .unwrap_or_else(|| (n + 1).to_string());
        let mt = v.get("turns").is_some();
        let dataset = v
            .get("dataset")
            .and_then(|x| x.as_str())
            .map(String::from)
            .unwrap_or_else(|| if mt { "mt_bench".into() } else { String::new() });
        let category = v
            .get("category")
            .and_then(|x| x.as_str())
            .unwrap_or("")
            .to_string();
        out.push(EvalInstruction {
            id,
            instruction: text,
            dataset,
            category,
        });
    }
    Ok((out, issues))
}

/// Read model outputs: an AlpacaEval JSON list or JSONL with `instruction` and
/// `output`. `generator` defaults to the file stem when missing.
pub fn read_outputs(path: &Path) -> Result<(Vec<EvalOutput>, InputIssues)> {
    let mut issues = InputIssues::default();
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = Vec::new();
    for (at, v) in json_items(path, &mut issues)? {
        match serde_json::from_value::<EvalOutput>(v) {
            Ok(mut o) => {
                if o.generator.is_empty() {
                    o.generator = stem.clone();
                }
                out.push(o)
            }
            Err(e) => issues.skip(at, &format!("not an output record ({e})")),
        }
    }
    Ok((out, issues))
}

/// Write outputs as an AlpacaEval JSON list (pretty, via a temp file + rename).
pub fn write_outputs(path: &Path, outputs: &[EvalOutput]) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(outputs)?)
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// An append-only JSONL work file of finished items keyed by `key`
/// (partial last line cut on open).
pub struct WorkFile {
    file: std::fs::File,
    done: HashMap<String, serde_json::Value>,
}

impl WorkFile {
    /// Open (create) and load finished items. Lines that do not parse are
    /// ignored (a cut line from a kill), and the file is repaired first.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            backforth::store::truncate_partial_tail(path)?;
        }
        let mut done = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(path) {
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if let Some(k) = v.get("key").and_then(|k| k.as_str()) {
                        done.insert(k.to_string(), v);
                    }
                }
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Self { file, done })
    }

    /// Finished item for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.done.get(key)
    }

    /// Append one finished item (must carry `key`) with a single write.
    pub fn append(&mut self, v: serde_json::Value) -> Result<()> {
        let key = v
            .get("key")
            .and_then(|k| k.as_str())
            .context("work item without key")?
            .to_string();
        let mut line = serde_json::to_string(&v)?;
        line.push('\n');
        self.file.write_all(line.as_bytes())?;
        self.done.insert(key, v);
        Ok(())
    }
}

/// Progress callback: (done, total, completion tokens so far).
pub type Progress<'a> = dyn FnMut(usize, usize, u64) + 'a;

/// Answer `instructions` with `backend` using `template` (variables:
/// `instruction`), resuming from `work`; returns outputs in input order.
/// A backend error for one instruction leaves it out (counted in the second
/// value) and it is retried on the next run.
pub fn generate(
    backend: &mut dyn Backend,
    instructions: &[EvalInstruction],
    template: &PromptTemplate,
    sampling: &Sampling,
    generator: &str,
    work: &mut WorkFile,
    progress: &mut Progress<'_>,
) -> Result<(Vec<EvalOutput>, usize)> {
    let model = backend.model_id();
    let sampling_json = serde_json::to_string(sampling)?;
    let keys: Vec<String> = instructions
        .iter()
        .map(|i| {
            backforth::hash::key(&[
                "generate",
                &model,
                &template.hash,
                &sampling_json,
                &i.instruction,
            ])
        })
        .collect();
    let todo: Vec<usize> = (0..instructions.len())
        .filter(|&i| work.get(&keys[i]).is_none())
        .collect();
    let total = instructions.len();
    let mut done = total - todo.len();
    let mut tokens = 0u64;
    let mut errors = 0usize;
    progress(done, total, 0);
    let mut reqs = Vec::new();
    for &i in &todo {
        let messages =
            template.render(serde_json::json!({ "instruction": instructions[i].instruction }))?;
        let mut s = sampling.clone();
        s.seed = backforth::hash::derive_seed(sampling.seed, "generate", &instructions[i].id);
        reqs.push(GenRequest {
            tag: i as u64,
            messages,
            sampling: s,
            grammar: None,
            raw_prompt: false,
            top_logprobs: 0,
        });
    }
    let mut it = reqs.into_iter();
    backend.generate(&mut it, &mut |tag, res| {
        let i = tag as usize;
        match res {
            Ok(o) => {
                tokens += o.completion_tokens as u64;
                work.append(serde_json::json!({
                    "key": keys[i], "id": instructions[i].id, "output": o.text.trim(),
                    "finish_reason": o.finish.as_str(), "completion_tokens": o.completion_tokens,
                }))?;
                done += 1;
            }
            Err(e) => {
                errors += 1;
                tracing::warn!("instruction {}: backend error: {e}", instructions[i].id);
            }
        }
        progress(done, total, tokens);
        Ok(())
    })?;
    let outputs = instructions
        .iter()
        .zip(&keys)
        .filter_map(|(ins, k)| {
            let v = work.get(k)?;
            let mut extra = serde_json::Map::new();
            extra.insert("id".into(), ins.id.clone().into());
            if !ins.category.is_empty() {
                extra.insert("category".into(), ins.category.clone().into());
            }
            if let Some(f) = v.get("finish_reason") {
                extra.insert("finish_reason".into(), f.clone());
            }
            Some(EvalOutput {
                instruction: ins.instruction.clone(),
                output: v
                    .get("output")
                    .and_then(|o| o.as_str())
                    .unwrap_or("")
                    .to_string(),
                generator: generator.to_string(),
                dataset: ins.dataset.clone(),
                extra,
            })
        })
        .collect();
    Ok((outputs, errors))
}

/// One judged order of one instruction, as saved in `judgements.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Judgement {
    pub key: String,
    /// Index of the pair in [`pair_outputs`] order.
    pub pair: usize,
    /// True when the model's output was shown first (as A).
    pub model_first: bool,
    pub verdict: Option<Verdict>,
    /// `ok`, or the parse / backend error.
    pub status: String,
    /// The judge's raw text, always kept.
    pub raw: String,
    /// Verdict probabilities when the judge was asked for log-probabilities
    /// and returned them ([`judge::verdict_probs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probs: Option<judge::VerdictProbs>,
}

/// A model output and a baseline output for the same instruction.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pair {
    pub instruction: String,
    pub model: String,
    pub baseline: String,
}

/// Match model and baseline outputs by instruction text (trimmed), keeping the
/// model file's order; when `only` is given, keep instructions in it.
/// Returns (pairs, instructions with no baseline output).
pub fn pair_outputs(
    model: &[EvalOutput],
    baseline: &[EvalOutput],
    only: Option<&[EvalInstruction]>,
) -> (Vec<Pair>, usize) {
    let base: HashMap<&str, &EvalOutput> =
        baseline.iter().map(|o| (o.instruction.trim(), o)).collect();
    let keep: Option<HashSet<&str>> =
        only.map(|l| l.iter().map(|i| i.instruction.trim()).collect());
    let mut seen = HashSet::new();
    let mut pairs = Vec::new();
    let mut unmatched = 0;
    for m in model {
        let k = m.instruction.trim();
        if keep.as_ref().is_some_and(|s| !s.contains(k)) || !seen.insert(k) {
            continue;
        }
        match base.get(k) {
            Some(b) => pairs.push(Pair {
                instruction: m.instruction.clone(),
                model: m.output.clone(),
                baseline: b.output.clone(),
            }),
            None => unmatched += 1,
        }
    }
    (pairs, unmatched)
}

/// Per-instruction result, as saved in `results.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PairResult {
    pub instruction: String,
    pub model_output: String,
    pub baseline_output: String,
    /// Verdict with the model's output as A, and as B.
    pub verdict_model_first: Option<Verdict>,
    pub verdict_model_second: Option<Verdict>,
    /// The model's probability-weighted preference with it shown first and
    /// second ([`judge::weighted_preference`]); `None` without probabilities.
    #[serde(default)]
    pub weighted_model_first: Option<f64>,
    #[serde(default)]
    pub weighted_model_second: Option<f64>,
    /// 0 = baseline preferred, 0.5 = tie, 1 = model preferred: the mean of
    /// the two orders, each weighted where it has probabilities and from its
    /// verdict otherwise; `None` if both orders failed.
    pub preference: Option<f64>,
    pub model_chars: usize,
    pub baseline_chars: usize,
}

/// Summary of an evaluation (`eval_summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalSummary {
    pub model_generator: String,
    pub baseline_generator: String,
    pub judge: String,
    pub judge_template: String,
    pub pairs: usize,
    pub unmatched_instructions: usize,
    /// Orders judged (2 per pair) and how many failed to parse or errored.
    pub judgements: usize,
    pub judgement_failures: usize,
    /// Pairs where both orders failed (no preference).
    pub failed_pairs: usize,
    /// Pairs where the two orders disagreed in direction (A both times or B both times: position bias).
    pub inconsistent_pairs: usize,
    pub mean_model_chars: f64,
    pub mean_baseline_chars: f64,
    #[serde(flatten)]
    pub win: WinRate,
    /// Percentile-bootstrap 95% interval of the win rate (2,000 resamples).
    #[serde(default)]
    pub win_rate_ci95: Option<(f64, f64)>,
    /// Position consistency and bias of the judge; `informative = false`
    /// means the win rate above must not be read as a result.
    /// (`None` in summaries written before it existed.)
    #[serde(default)]
    pub reliability: Option<judge::Reliability>,
    /// With a probability-weighted win rate: the same pairs scored from the
    /// discrete verdicts alone, so a judge whose verdict probabilities are
    /// flatter than its verdicts (poorly calibrated) shows it. `None` when the
    /// win rate above is already verdict-based.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict_win_rate: Option<VerdictWinRate>,
}

/// Win rate from discrete verdicts only (ties and split orders count half),
/// × 100, with its percentile-bootstrap 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct VerdictWinRate {
    pub n: usize,
    pub win_rate: f64,
    pub ci95: Option<(f64, f64)>,
}

/// The verdict-only win rate of `results` when `reliability` says the win
/// rate is probability-weighted; adds a warning to `reliability` when the
/// two disagree: the weighted rate within 5 points of 50 while the
/// verdicts' whole interval lies on one side of 50 (the judge prefers, its
/// probabilities do not say so). `seed` makes the bootstrap deterministic.
pub fn verdict_win_rate(
    results: &[PairResult],
    reliability: &mut judge::Reliability,
    weighted_win_rate: f64,
    seed: u64,
) -> Option<VerdictWinRate> {
    if reliability.basis != "weighted" {
        return None;
    }
    let prefs: Vec<f64> = results
        .iter()
        .filter_map(|r| judge::pair_preference(r.verdict_model_first, r.verdict_model_second))
        .collect();
    if prefs.is_empty() {
        return None;
    }
    let v = VerdictWinRate {
        n: prefs.len(),
        win_rate: 100.0 * prefs.iter().sum::<f64>() / prefs.len() as f64,
        ci95: judge::bootstrap_ci(&prefs, 2000, seed),
    };
    if let Some((lo, hi)) = v.ci95 {
        if (weighted_win_rate - 50.0).abs() < 5.0 && (lo > 50.0 || hi < 50.0) {
            reliability.warnings.push(format!(
                "the judge's verdict probabilities are flatter than its verdicts: weighted win rate {weighted_win_rate:.1}, verdicts alone {:.1} (95% CI {lo:.1}–{hi:.1}); this judge is poorly calibrated, read the verdict figure (eval --top-logprobs 0)",
                v.win_rate
            ));
        }
    }
    Some(v)
}

/// Reliability and bootstrap interval of a set of per-pair results
/// (`seed` makes the bootstrap deterministic).
pub fn reliability_and_ci(
    results: &[PairResult],
    seed: u64,
) -> (judge::Reliability, Option<(f64, f64)>) {
    let verdicts: Vec<_> = results
        .iter()
        .map(|r| (r.verdict_model_first, r.verdict_model_second))
        .collect();
    let weighted: Vec<_> = results
        .iter()
        .map(|r| (r.weighted_model_first, r.weighted_model_second))
        .collect();
    let prefs: Vec<f64> = results.iter().filter_map(|r| r.preference).collect();
    (
        judge::reliability(&verdicts, &weighted),
        judge::bootstrap_ci(&prefs, 2000, seed),
    )
}

/// Judge `pairs` with `backend` in both orders (`template` variables:
/// `instruction`, `output_a`, `output_b`), resuming from `work`.
/// `grammar`: pass [`JUDGE_GRAMMAR`] for backends that support GBNF.
/// `top_logprobs` > 0 asks the backend for that many alternatives per token
/// and keeps the verdict probabilities ([`judge::verdict_probs`]); servers
/// that return none leave the judgement discrete.
#[allow(clippy::too_many_arguments)]
pub fn judge_pairs(
    backend: &mut dyn Backend,
    pairs: &[Pair],
    template: &PromptTemplate,
    sampling: &Sampling,
    grammar: Option<&str>,
    top_logprobs: u8,
    work: &mut WorkFile,
    progress: &mut Progress<'_>,
) -> Result<Vec<Judgement>> {
    let model = backend.model_id();
    let sampling_json = serde_json::to_string(sampling)?;
    let total = pairs.len() * 2;
    let mut jobs: Vec<(usize, bool, String)> = Vec::with_capacity(total);
    for (i, p) in pairs.iter().enumerate() {
        for model_first in [true, false] {
            let (a, b) = if model_first {
                (&p.model, &p.baseline)
            } else {
                (&p.baseline, &p.model)
            };
            // judgements with and without probabilities are different work
            let lp = if top_logprobs > 0 {
                format!("top_logprobs={top_logprobs}")
            } else {
                String::new()
            };
            let key = backforth::hash::key(&[
                "judge",
                &model,
                &template.hash,
                &sampling_json,
                grammar.unwrap_or(""),
                &lp,
                &p.instruction,
                a,
                b,
            ]);
            jobs.push((i, model_first, key));
        }
    }
    let todo: Vec<usize> = (0..jobs.len())
        .filter(|&j| work.get(&jobs[j].2).is_none())
        .collect();
    let mut done = total - todo.len();
    let mut tokens = 0u64;
    progress(done, total, 0);
    let mut reqs = Vec::with_capacity(todo.len());
    for &j in &todo {
        let (i, model_first, _) = &jobs[j];
        let p = &pairs[*i];
        let (a, b) = if *model_first {
            (&p.model, &p.baseline)
        } else {
            (&p.baseline, &p.model)
        };
        let messages = template.render(
            serde_json::json!({ "instruction": p.instruction, "output_a": a, "output_b": b }),
        )?;
        let mut s = sampling.clone();
        s.seed = backforth::hash::derive_seed(sampling.seed, "judge", &jobs[j].2);
        reqs.push(GenRequest {
            tag: j as u64,
            messages,
            sampling: s,
            grammar: grammar.map(String::from),
            raw_prompt: false,
            top_logprobs,
        });
    }
    let mut it = reqs.into_iter();
    backend.generate(&mut it, &mut |tag, res| {
        let (pair, model_first, key) = &jobs[tag as usize];
        let (verdict, status, raw, probs) = match res {
            Ok(o) => {
                tokens += o.completion_tokens as u64;
                match judge::parse_verdict(&o.text) {
                    // probabilities only beside a verdict that parsed
                    Ok(v) => (
                        Some(v),
                        "ok".to_string(),
                        o.text,
                        judge::verdict_probs(&o.logprobs),
                    ),
                    Err(e) => (None, format!("parse: {e}"), o.text, None),
                }
            }
            Err(e) => (None, format!("backend: {e}"), String::new(), None),
        };
        // Backend errors are not saved: the order is retried on the next run.
        if !status.starts_with("backend") {
            let j = Judgement {
                key: key.clone(),
                pair: *pair,
                model_first: *model_first,
                verdict,
                status,
                raw,
                probs,
            };
            work.append(serde_json::to_value(&j)?)?;
            done += 1;
        } else {
            tracing::warn!("judge backend error on pair {pair}: {status}");
        }
        progress(done, total, tokens);
        Ok(())
    })?;
    let mut out = Vec::with_capacity(total);
    for (_, _, key) in &jobs {
        if let Some(v) = work.get(key) {
            out.push(serde_json::from_value::<Judgement>(v.clone())?);
        }
    }
    Ok(out)
}

/// Combine judgements into per-pair results and the summary statistics.
pub fn summarise(
    pairs: &[Pair],
    judgements: &[Judgement],
) -> (Vec<PairResult>, WinRate, usize, usize, usize) {
    type Order = (Option<Verdict>, Option<f64>);
    let mut first: HashMap<usize, Order> = HashMap::new();
    let mut second: HashMap<usize, Order> = HashMap::new();
    let mut failures = 0;
    for j in judgements {
        if j.verdict.is_none() {
            failures += 1;
        }
        let w = j
            .probs
            .map(|p| judge::weighted_preference(p, j.model_first));
        if j.model_first {
            first.insert(j.pair, (j.verdict, w));
        } else {
            second.insert(j.pair, (j.verdict, w));
        }
    }
    let mut results = Vec::with_capacity(pairs.len());
    let (mut prefs, mut diffs) = (Vec::new(), Vec::new());
    let (mut failed, mut inconsistent) = (0, 0);
    for (i, p) in pairs.iter().enumerate() {
        let (vf, wf) = first.get(&i).copied().unwrap_or_default();
        let (vs, ws) = second.get(&i).copied().unwrap_or_default();
        let order = |v: Option<Verdict>, w: Option<f64>, model_is_a| {
            w.or(v.map(|v| judge::verdict_preference(v, model_is_a)))
        };
        let pref = judge::mean_of_orders(order(vf, wf, true), order(vs, ws, false));
        if matches!(
            (vf, vs),
            (Some(Verdict::A), Some(Verdict::A)) | (Some(Verdict::B), Some(Verdict::B))
        ) {
            inconsistent += 1;
        }
        let (mc, bc) = (p.model.chars().count(), p.baseline.chars().count());
        match pref {
            Some(x) => {
                prefs.push(x);
                diffs.push(mc as f64 - bc as f64);
            }
            None => failed += 1,
        }
        results.push(PairResult {
            instruction: p.instruction.clone(),
            model_output: p.model.clone(),
            baseline_output: p.baseline.clone(),
            verdict_model_first: vf,
            verdict_model_second: vs,
            weighted_model_first: wf,
            weighted_model_second: ws,
            preference: pref,
            model_chars: mc,
            baseline_chars: bc,
        });
    }
    (
        results,
        judge::win_rate(&prefs, &diffs),
        failures,
        failed,
        inconsistent,
    )
}

/// Check that a judge template renders with the three variables.
pub fn check_judge_template(t: &PromptTemplate) -> Result<()> {
    let m = t.render(serde_json::json!({"instruction": "i", "output_a": "a", "output_b": "b"}))?;
    if m.is_empty() {
        bail!("judge template {} renders no message", t.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_weighted_judge_is_shown_beside_its_verdicts() {
        // the judge always picks the model (A when first, B when second) but
        // puts only 0.52 on it
        let results: Vec<PairResult> = (0..30)
            .map(|i| PairResult {
                instruction: format!("q{i}"),
                model_output: "m".into(),
                baseline_output: "b".into(),
                verdict_model_first: Some(Verdict::A),
                verdict_model_second: Some(Verdict::B),
                weighted_model_first: Some(0.52),
                weighted_model_second: Some(0.52),
                preference: Some(0.52),
                model_chars: 1,
                baseline_chars: 1,
            })
            .collect();
        let (mut rel, _) = reliability_and_ci(&results, 1);
        assert_eq!(rel.basis, "weighted");
        let v = verdict_win_rate(&results, &mut rel, 52.0, 1).unwrap();
        assert_eq!((v.n, v.win_rate), (30, 100.0));
        assert!(
            rel.warnings
                .iter()
                .any(|w| w.contains("flatter than its verdicts")),
            "{:?}",
            rel.warnings
        );
        // verdict-based summaries get no second figure
        let mut plain = rel.clone();
        plain.basis = "verdicts".into();
        assert!(verdict_win_rate(&results, &mut plain, 100.0, 1).is_none());
        // a weighted rate that says what the verdicts say draws no warning
        let (mut rel2, _) = reliability_and_ci(&results, 1);
        let before = rel2.warnings.len();
        verdict_win_rate(&results, &mut rel2, 90.0, 1).unwrap();
        assert_eq!(rel2.warnings.len(), before);
    }

    fn out(i: &str, o: &str) -> EvalOutput {
        EvalOutput {
            instruction: i.into(),
            output: o.into(),
            generator: "g".into(),
            dataset: String::new(),
            extra: Default::default(),
        }
    }

    #[test]
    fn reads_mt_bench_alpaca_and_jsonl() {
        let d = tempfile::tempdir().unwrap();
        let mt = d.path().join("question.jsonl");
        std::fs::write(&mt, "{\"question_id\": 81, \"category\": \"writing\", \"turns\": [\"Write a poem.\", \"Now shorter.\"]}\nnot json\n{\"question_id\": 82, \"turns\": []}\n").unwrap();
        let (ins, issues) = read_instructions(&mt).unwrap();
        assert_eq!(
            ins,
            vec![EvalInstruction {
                id: "81".into(),
                instruction: "Write a poem.".into(),
                dataset: "mt_bench".into(),
                category: "writing".into()
            }]
        );
        assert_eq!(issues.skipped, 2);
        assert!(
            issues.messages[0].contains("question.jsonl:2"),
            "{:?}",
            issues.messages
        );
        let al = d.path().join("outs.json");
        std::fs::write(&al, r#"[{"instruction":"a","output":"x","generator":"m","dataset":"helpful_base","extra_field":1},{"output":"no instruction"}]"#).unwrap();
        let (o, issues) = read_outputs(&al).unwrap();
        assert_eq!(o.len(), 1);
        assert_eq!(o[0].extra["extra_field"], 1);
        assert!(issues.messages[0].contains("outs.json[1]"));
        // Round trip keeps extra fields.
        let back = d.path().join("back.json");
        write_outputs(&back, &o).unwrap();
        assert_eq!(read_outputs(&back).unwrap().0, o);
        // JSONL without generator: file stem.
        let jl = d.path().join("dataset.jsonl");
        std::fs::write(&jl, "{\"instruction\":\"a\",\"output\":\"y\"}\n").unwrap();
        assert_eq!(read_outputs(&jl).unwrap().0[0].generator, "dataset");
    }

    #[test]
    fn pairs_match_by_instruction() {
        let m = vec![
            out("q1", "m1"),
            out("q2 ", "m2"),
            out("q3", "m3"),
            out("q1", "dup"),
        ];
        let b = vec![out("q2", "b2"), out("q1", "b1")];
        let (p, unmatched) = pair_outputs(&m, &b, None);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].model.as_str(), p[0].baseline.as_str()), ("m1", "b1"));
        assert_eq!(p[1].baseline, "b2");
        assert_eq!(unmatched, 1);
    }

    #[test]
    fn summarise_both_orders() {
        let pairs = vec![
            Pair {
                instruction: "1".into(),
                model: "aaaa".into(),
                baseline: "bb".into(),
            },
            Pair {
                instruction: "2".into(),
                model: "a".into(),
                baseline: "bb".into(),
            },
            Pair {
                instruction: "3".into(),
                model: "a".into(),
                baseline: "b".into(),
            },
        ];
        let j = |pair, model_first, v: Option<Verdict>| Judgement {
            key: format!("{pair}{model_first}"),
            pair,
            model_first,
            verdict: v,
            status: "ok".into(),
            raw: String::new(),
            probs: None,
        };
        let js = vec![
            j(0, true, Some(Verdict::A)),  // model wins
            j(0, false, Some(Verdict::B)), // model wins
            j(1, true, Some(Verdict::A)),  // model wins as A
            j(1, false, Some(Verdict::A)), // baseline wins as A -> position bias
            j(2, true, None),
            j(2, false, None),
        ];
        let (res, win, failures, failed, inconsistent) = summarise(&pairs, &js);
        assert_eq!(res[0].preference, Some(1.0));
        assert_eq!(res[1].preference, Some(0.5));
        assert_eq!(res[2].preference, None);
        assert_eq!((failures, failed, inconsistent), (2, 1, 1));
        assert_eq!(win.n, 2);
        assert!((win.win_rate - 75.0).abs() < 1e-9);
        // SE = sd([1, .5]) / sqrt(2) = 0.35355 / 1.41421 = 0.25 -> 25
        assert!((win.standard_error - 25.0).abs() < 1e-9);
        assert_eq!(win.ties, 1);
    }

    #[test]
    fn judge_template_renders_both_outputs_in_order() {
        let t = judge_template("").unwrap();
        check_judge_template(&t).unwrap();
        let m = t.render(serde_json::json!({"instruction": "Name a colour.", "output_a": "FIRST-ANSWER", "output_b": "SECOND-ANSWER"})).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].role, "system");
        let u = &m[1].content;
        assert!(u.contains("Name a colour."));
        assert!(u.find("FIRST-ANSWER").unwrap() < u.find("SECOND-ANSWER").unwrap());
        assert!(u.contains("Preferred: A"));
        // The grammar's only outputs parse as verdicts.
        for v in ["Preferred: A", "Preferred: B", "Preferred: tie"] {
            assert!(JUDGE_GRAMMAR.contains(v.trim_start_matches("Preferred: ")));
            judge::parse_verdict(v).unwrap();
        }
        let g = generate_template("").unwrap();
        assert_eq!(
            g.render(serde_json::json!({"instruction": "Hi"})).unwrap()[0].content,
            "Hi"
        );
        // A user template missing a variable is an error, not an empty prompt.
        let bad = PromptTemplate::from_source("bad", "@@ user\n{{ answer_a }}".into()).unwrap();
        assert!(check_judge_template(&bad).is_err());
    }

    #[test]
    fn work_file_resumes_and_repairs() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("w.jsonl");
        {
            let mut w = WorkFile::open(&p).unwrap();
            w.append(serde_json::json!({"key": "a", "v": 1})).unwrap();
        }
        // A kill mid-line leaves a partial tail.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"{\"key\": \"b\", \"v\"")
            .unwrap();
        let mut w = WorkFile::open(&p).unwrap();
        assert!(w.get("a").is_some() && w.get("b").is_none());
        w.append(serde_json::json!({"key": "b", "v": 2})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
    }
}
