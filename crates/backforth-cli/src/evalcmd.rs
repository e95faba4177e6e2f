//! `generate`, `eval`, `analyze`, `report`: measuring a generated set.
//! The method lives in `backforth::{eval, judge, analyze, mauve, report}`;
//! this file wires flags, backends, progress and files.

use crate::{CommonArgs, Provider};
use anyhow::{bail, Context, Result};
use backforth::analyze::{self, TextSet};
use backforth::eval::{self, EvalSummary, WorkFile};
use backforth::mauve::{self, MauveSettings};
use backforth::pipeline::BackendProvider;
use backforth::prompt::PromptTemplate;
use backforth::record::Sampling;
use backforth::report::{self, Analysis, EvalView, MapPoint, MauvePair};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn bar(quiet: bool, total: u64, prefix: &str) -> ProgressBar {
    let pb = if quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
    pb.set_style(
        ProgressStyle::with_template("{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// A progress callback for [`eval::generate`] / [`eval::judge_pairs`] on `pb`
/// (items, generated tokens/s, ETA; a log line every 10% when not on a terminal).
fn progress_fn<'a>(pb: &'a ProgressBar, name: &'static str) -> impl FnMut(usize, usize, u64) + 'a {
    let start = Instant::now();
    let mut last_log = 0usize;
    move |done, total, tokens| {
        let el = start.elapsed().as_secs_f64();
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        pb.set_message(format!("{:.1} gen tok/s", if el > 0.0 { tokens as f64 / el } else { 0.0 }));
        if pb.is_hidden() && (done >= last_log + total.div_ceil(10).max(1) || done == total) {
            last_log = done;
            tracing::info!("{name}: {done}/{total}, {:.1} generated tok/s", if el > 0.0 { tokens as f64 / el } else { 0.0 });
        }
    }
}

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Instructions: AlpacaEval JSON, MT-bench question.jsonl (first turns) or JSONL with `instruction`.
    #[arg(long)]
    instructions: PathBuf,
    /// Output file (AlpacaEval JSON list). A `<file>.work.jsonl` beside it makes the job resumable.
    #[arg(long)]
    outputs: PathBuf,
    /// `generator` field (default: the model file stem).
    #[arg(long)]
    generator: Option<String>,
    /// Prompt template (variables: instruction); default: the built-in `generate`.
    #[arg(long, default_value = "")]
    template: String,
    #[arg(long, default_value_t = 512)]
    max_tokens: u32,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
}

fn sampling(max_tokens: u32, temperature: f32, seed: u64) -> Sampling {
    Sampling { temperature, top_p: if temperature > 0.0 { 0.95 } else { 1.0 }, max_tokens, seed, stop: vec![] }
}

pub fn generate(a: GenerateArgs) -> Result<()> {
    let mut cfg = a.common.config()?;
    if a.common.out.is_none() {
        // The response cache goes beside the outputs.
        cfg.output.dir = a.outputs.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).display().to_string();
    }
    let (mut ins, issues) = eval::read_instructions(&a.instructions)?;
    report_issues(&issues);
    if cfg.input.limit > 0 {
        ins.truncate(cfg.input.limit as usize);
    }
    let template = PromptTemplate::load(&a.template, "generate")?;
    let model = cfg.model.path.clone();
    let generator = a.generator.clone().unwrap_or_else(|| Path::new(&model).file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| model.clone()));
    let mut provider = Provider::new(&cfg);
    let backend = provider.backend(&model)?;
    let mut work = WorkFile::open(&work_path(&a.outputs))?;
    let pb = bar(a.common.quiet, ins.len() as u64, "generate");
    let mut prog = progress_fn(&pb, "generate");
    let (outs, errors) = eval::generate(backend, &ins, &template, &sampling(a.max_tokens, a.temperature, cfg.model.seed), &generator, &mut work, &mut prog)?;
    pb.finish();
    eval::write_outputs(&a.outputs, &outs)?;
    eprintln!("generate: {} of {} instructions answered ({} backend errors, rerun to retry) → {}", outs.len(), ins.len(), errors, a.outputs.display());
    Ok(())
}

fn work_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".work.jsonl");
    PathBuf::from(s)
}

fn report_issues(i: &eval::InputIssues) {
    if i.skipped > 0 {
        eprintln!("input: {} items skipped", i.skipped);
        for m in &i.messages {
            eprintln!("  {m}");
        }
    }
}

#[derive(Args)]
pub struct EvalArgs {
    /// Judge backend and model (model.path / backend.kind / http.*), and --out: the evaluation folder.
    #[command(flatten)]
    common: CommonArgs,
    /// Outputs of the model under test (AlpacaEval JSON or JSONL with instruction/output).
    #[arg(long)]
    model_outputs: PathBuf,
    /// Outputs of the baseline, same format; paired by instruction text.
    #[arg(long)]
    baseline_outputs: PathBuf,
    /// Only judge instructions that appear in this file (AlpacaEval JSON, MT-bench question.jsonl first turns, JSONL).
    #[arg(long)]
    instructions: Option<PathBuf>,
    /// Judge template (variables: instruction, output_a, output_b); default: the built-in `judge`.
    #[arg(long, default_value = "")]
    template: String,
    /// Most tokens the judge may write (the embedded judge needs ~5 under its grammar).
    #[arg(long, default_value_t = 64)]
    max_tokens: u32,
    /// Do not constrain the judge with the verdict grammar.
    #[arg(long)]
    no_grammar: bool,
}

pub fn eval_cmd(a: EvalArgs) -> Result<()> {
    let cfg = a.common.config()?;
    if a.common.out.is_none() {
        bail!("--out DIR: the evaluation folder (judgements, results and summary are written there)");
    }
    let dir = PathBuf::from(&cfg.output.dir);
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
    if cfg.input.limit > 0 {
        pairs.truncate(cfg.input.limit as usize);
    }
    if pairs.is_empty() {
        bail!("no instruction has an output in both files ({} model outputs, {} baseline outputs)", model_outs.len(), base_outs.len());
    }
    let template = PromptTemplate::load(&a.template, "judge")?;
    eval::check_judge_template(&template)?;
    let judge_model = cfg.model.path.clone();
    let mut provider = Provider::new(&cfg);
    let judge_id = provider.model_id(&judge_model)?;
    let backend = provider.backend(&judge_model)?;
    let grammar = (!a.no_grammar).then_some(eval::JUDGE_GRAMMAR);
    let mut work = WorkFile::open(&dir.join("judgements.jsonl"))?;
    let pb = bar(a.common.quiet, pairs.len() as u64 * 2, "judge");
    let mut prog = progress_fn(&pb, "judge");
    let judgements = eval::judge_pairs(backend, &pairs, &template, &sampling(a.max_tokens, 0.0, cfg.model.seed), grammar, &mut work, &mut prog)?;
    pb.finish();
    let (results, win, failures, failed, inconsistent) = eval::summarise(&pairs, &judgements);
    let gen = |o: &[eval::EvalOutput], p: &Path| o.first().map(|x| x.generator.clone()).unwrap_or_else(|| p.display().to_string());
    let n = pairs.len() as f64;
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
    };
    let mut lines = String::new();
    for r in &results {
        lines += &serde_json::to_string(r)?;
        lines.push('\n');
    }
    std::fs::write(dir.join("results.jsonl"), lines)?;
    std::fs::write(dir.join("eval_summary.json"), serde_json::to_string_pretty(&summary)?)?;
    let w = &summary.win;
    eprintln!(
        "eval: {} vs {} judged by {}: win rate {:.1} ± {:.1} (SE), LC win rate {}, n = {}, ties {}, failed judgements {}/{}, position-inconsistent pairs {}, mean chars {:.0} vs {:.0} → {}",
        summary.model_generator,
        summary.baseline_generator,
        summary.judge,
        w.win_rate,
        w.standard_error,
        w.lc_win_rate.map(|x| format!("{x:.1}")).unwrap_or_else(|| "–".into()),
        w.n,
        w.ties,
        failures,
        judgements.len(),
        inconsistent,
        summary.mean_model_chars,
        summary.mean_baseline_chars,
        dir.join("eval_summary.json").display()
    );
    Ok(())
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// A run folder: analyses its kept documents, instructions, rewritten and distilled responses, scores and parse failures.
    #[arg(long)]
    run: Option<PathBuf>,
    /// Another text set: NAME=PATH[:FIELD] (JSON list / JSONL field, default output|text|response|instruction; other files: one text per line). Repeatable.
    #[arg(long = "set", value_name = "NAME=PATH[:FIELD]")]
    sets: Vec<String>,
    /// Sentence-transformers model folder (default: $BACKFORTH_CACHE/models/all-MiniLM-L6-v2).
    #[arg(long)]
    embedder: Option<PathBuf>,
    /// Skip embeddings (no MAUVE, no map): only counts.
    #[arg(long)]
    no_embed: bool,
    /// MAUVE between these sets: P,Q (repeatable). Default: every pair of response-like sets (all but `instructions`).
    #[arg(long = "mauve", value_name = "P,Q")]
    mauve_pairs: Vec<String>,
    /// Embed at most N texts per set (evenly spaced sample).
    #[arg(long, default_value_t = 10_000)]
    max_texts: usize,
    /// Texts per embedding batch (8 was fastest on CPU, see BENCHMARKS.md).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Points per set on the 2-D map.
    #[arg(long, default_value_t = 1000)]
    map_points: usize,
    /// k-means restarts for MAUVE (reference default 5).
    #[arg(long, default_value_t = 5)]
    mauve_redo: usize,
    /// Output file (default: RUN/analysis.json, else analysis.json).
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(short, long)]
    quiet: bool,
}

/// `$BACKFORTH_CACHE/models/all-MiniLM-L6-v2` (where `fetch-assets.sh minilm` puts it).
pub(crate) fn default_embedder() -> PathBuf {
    let cache = std::env::var("BACKFORTH_CACHE").ok().filter(|s| !s.is_empty()).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/backforth"));
    cache.join("models/all-MiniLM-L6-v2")
}

/// Evenly spaced sample of at most `max` indices of `0..n` (deterministic).
fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| i * n / max).collect()
}

pub fn analyze(a: AnalyzeArgs) -> Result<()> {
    let mut sets: Vec<TextSet> = Vec::new();
    let mut analysis = Analysis::default();
    if let Some(run) = &a.run {
        let data = analyze::read_run(run)?;
        sets.extend(analyze::run_sets(&data));
        analysis.run = Some(data.stats);
        analysis.run_dir = Some(run.display().to_string());
    }
    for s in &a.sets {
        let (name, rest) = s.split_once('=').with_context(|| format!("--set {s}: want NAME=PATH[:FIELD]"))?;
        let (path, field) = match rest.rsplit_once(':') {
            Some((p, f)) if Path::new(p).exists() => (p, Some(f)),
            _ => (rest, None),
        };
        let (set, missing) = analyze::read_text_set(name, Path::new(path), field)?;
        if missing > 0 {
            eprintln!("--set {name}: {missing} items without the text field (skipped)");
        }
        sets.retain(|x| x.name != name);
        sets.push(set);
    }
    if sets.is_empty() {
        bail!("nothing to analyse: give --run DIR and/or --set NAME=PATH");
    }
    analysis.sets = sets.iter().map(analyze::text_stats).collect();
    let out = a.out.clone().unwrap_or_else(|| a.run.as_ref().map(|r| r.join("analysis.json")).unwrap_or_else(|| PathBuf::from("analysis.json")));
    if !a.no_embed {
        let dir = a.embedder.clone().unwrap_or_else(default_embedder);
        let emb = backforth_embed::Embedder::load(&dir).with_context(|| format!("loading the embedding model from {} (fetch it with scripts/fetch-assets.sh minilm, or pass --no-embed)", dir.display()))?;
        analysis.embedder = Some(emb.model_id().to_string());
        let cache_dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).join("embeddings");
        std::fs::create_dir_all(&cache_dir)?;
        let t0 = Instant::now();
        let mut vecs: Vec<(String, Vec<Vec<f32>>)> = Vec::new();
        for s in &sets {
            let texts: Vec<String> = sample(s.texts.len(), a.max_texts).into_iter().map(|i| s.texts[i].clone()).collect();
            vecs.push((s.name.clone(), embed_cached(&emb, &s.name, &texts, a.batch, &cache_dir, a.quiet)?));
        }
        analysis.embed_s = t0.elapsed().as_secs_f64();
        // MAUVE pairs.
        let pairs: Vec<(String, String)> = if a.mauve_pairs.is_empty() {
            let names: Vec<&String> = vecs.iter().map(|v| &v.0).filter(|n| n.as_str() != "instructions").collect();
            let mut p = Vec::new();
            for i in 0..names.len() {
                for j in i + 1..names.len() {
                    p.push((names[i].clone(), names[j].clone()));
                }
            }
            p
        } else {
            a.mauve_pairs.iter().map(|s| s.split_once(',').map(|(x, y)| (x.trim().to_string(), y.trim().to_string())).with_context(|| format!("--mauve {s}: want P,Q"))).collect::<Result<_>>()?
        };
        let t1 = Instant::now();
        let get = |n: &str| vecs.iter().find(|v| v.0 == n).map(|v| &v.1).with_context(|| format!("--mauve: no set named {n}"));
        let settings = MauveSettings { num_redo: a.mauve_redo, ..Default::default() };
        for (p, q) in pairs {
            let (pv, qv) = (get(&p)?, get(&q)?);
            if pv.len() < 2 || qv.len() < 2 {
                eprintln!("MAUVE {p} vs {q}: skipped (needs at least 2 texts in each set)");
                continue;
            }
            let r = mauve::mauve(pv, qv, &settings).map_err(anyhow::Error::msg)?;
            eprintln!("MAUVE {p} vs {q}: {:.3} ({} vs {} texts, {} buckets, {} PCA dims)", r.mauve, r.n_p, r.n_q, r.num_buckets, r.pca_dims);
            analysis.mauve.push(MauvePair { p, q, result: r });
        }
        analysis.mauve_s = t1.elapsed().as_secs_f64();
        // 2-D map: PCA of a sample of every set together.
        let mut names = Vec::new();
        let mut rows: Vec<&Vec<f32>> = Vec::new();
        for (name, v) in &vecs {
            for i in sample(v.len(), a.map_points) {
                names.push(name.clone());
                rows.push(&v[i]);
            }
        }
        if rows.len() >= 3 {
            let d = rows[0].len();
            let m = nalgebra_matrix(&rows, d);
            let proj = mauve::pca_2d(&m);
            analysis.map = names.into_iter().enumerate().map(|(i, set)| MapPoint { set, x: proj[(i, 0)], y: proj[(i, 1)] }).collect();
        }
    }
    for s in &analysis.sets {
        eprintln!(
            "{:>12}: {} texts, {:.0} words mean (median {}), distinct-3 {:.3}, unique trigrams {}, TTR {:.3}, MATTR {:.3}",
            s.name, s.n, s.words.mean, s.words.median, s.distinct_3, s.unique_trigrams, s.ttr, s.mattr
        );
    }
    if let Some(r) = &analysis.run {
        eprintln!("curation: {} scored, {} kept ({:.1}%), scores (none,1..5) {:?}", r.scored, r.kept, 100.0 * r.share_kept, r.score_histogram);
    }
    let tmp = out.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&analysis)?)?;
    std::fs::rename(&tmp, &out)?;
    eprintln!("analysis → {}", out.display());
    Ok(())
}

fn nalgebra_matrix(rows: &[&Vec<f32>], d: usize) -> backforth::mauve::Matrix {
    backforth::mauve::Matrix::from_fn(rows.len(), d, |i, j| rows[i][j])
}

/// Embed `texts`, reusing `<cache_dir>/<name>-<hash>.f32` when the same texts
/// were embedded by the same model before (so a killed analyze resumes per set).
fn embed_cached(emb: &backforth_embed::Embedder, name: &str, texts: &[String], batch: usize, cache_dir: &Path, quiet: bool) -> Result<Vec<Vec<f32>>> {
    let mut h = blake3::Hasher::new();
    h.update(emb.model_id().as_bytes());
    for t in texts {
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }
    let safe: String = name.chars().map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' }).collect();
    let path = cache_dir.join(format!("{safe}-{}.f32", &h.finalize().to_hex()[..16]));
    let d = emb.dim();
    if let Ok(bytes) = std::fs::read(&path) {
        if bytes.len() == texts.len() * d * 4 {
            let flat: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            return Ok(flat.chunks(d).map(|c| c.to_vec()).collect());
        }
    }
    let pb = bar(quiet, texts.len() as u64, &format!("embed {}", name.chars().take(8).collect::<String>()));
    let v = emb.embed_all(texts, batch, |n| pb.set_position(n as u64))?;
    pb.finish();
    let mut bytes = Vec::with_capacity(texts.len() * d * 4);
    for x in v.iter().flatten() {
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &path)?;
    Ok(v)
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run folder (summary, examples; its analysis.json is used when present).
    #[arg(long)]
    run: Option<PathBuf>,
    /// analysis.json from `backforth analyze` (default: RUN/analysis.json if it exists).
    #[arg(long)]
    analysis: Option<PathBuf>,
    /// Evaluation folder from `backforth eval` (repeatable).
    #[arg(long = "eval")]
    evals: Vec<PathBuf>,
    /// Output HTML file (default: RUN/report.html, else report.html).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Examples in the table at most.
    #[arg(long, default_value_t = 2000)]
    max_examples: usize,
    #[arg(long)]
    title: Option<String>,
}

pub fn report_cmd(a: ReportArgs) -> Result<()> {
    let data = a.run.as_deref().map(analyze::read_run).transpose()?;
    let analysis_path = a.analysis.clone().or_else(|| a.run.as_ref().map(|r| r.join("analysis.json")).filter(|p| p.exists()));
    let mut analysis: Option<Analysis> = match &analysis_path {
        Some(p) => Some(serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?).with_context(|| format!("{}: not an analysis.json", p.display()))?),
        None => None,
    };
    if analysis.is_none() {
        if let Some(d) = &data {
            // No analyze run: still show the counts of the run.
            analysis = Some(Analysis { run: Some(d.stats.clone()), run_dir: a.run.as_ref().map(|r| r.display().to_string()), sets: analyze::run_sets(d).iter().map(analyze::text_stats).collect(), ..Default::default() });
        }
    }
    let mut evals = Vec::new();
    for d in &a.evals {
        let summary: EvalSummary = serde_json::from_str(&std::fs::read_to_string(d.join("eval_summary.json")).with_context(|| format!("{}: no eval_summary.json (run `backforth eval --out {}` first)", d.display(), d.display()))?)?;
        let mut results = Vec::new();
        if let Ok(t) = std::fs::read_to_string(d.join("results.jsonl")) {
            for l in t.lines().filter(|l| !l.trim().is_empty()) {
                results.push(serde_json::from_str(l)?);
            }
        }
        evals.push(EvalView { name: d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(), summary, results });
    }
    if data.is_none() && analysis.is_none() && evals.is_empty() {
        bail!("nothing to report: give --run, --analysis or --eval");
    }
    let examples = data.as_ref().map(|d| d.examples.as_slice()).unwrap_or(&[]);
    let title = a.title.clone().unwrap_or_else(|| match &a.run {
        Some(r) => format!("backforth run {}", r.display()),
        None => "backforth comparison".to_string(),
    });
    let html = report::render(&report::ReportInput {
        title,
        run_summary: data.as_ref().map(|d| &d.summary),
        analysis: analysis.as_ref(),
        examples,
        max_examples: a.max_examples,
        evals: &evals,
    })?;
    let out = a.out.clone().unwrap_or_else(|| a.run.as_ref().map(|r| r.join("report.html")).unwrap_or_else(|| PathBuf::from("report.html")));
    std::fs::write(&out, html).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("report → {}", out.display());
    Ok(())
}
