//! `backforth`: the command-line tool. Thin: parses flags into a
//! [`backforth::Config`], builds the embedded llama.cpp provider, and calls
//! [`backforth::pipeline::run`].

use anyhow::{Context, Result};
use backforth::config::{BackendKind, Config, Stage};
use backforth::pipeline::{self, ProgressFactory, RunOptions};
use backforth_llama::{LlamaOptions, LlamaProvider};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

mod batch;
mod bench;
mod evalcmd;
mod serve;

#[derive(Parser)]
#[command(name = "backforth", version, args_override_self = true, about = "Instruction back-and-forth translation: web documents → instruction-tuning data")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the configured chain of stages (run.stages), then export the datasets.
    Run(CommonArgs),
    /// Read → segment ([segment]) → filter ([filter]) → deduplicate ([dedup]); writes candidates.jsonl for `run`.
    Prepare(CommonArgs),
    /// Only backtranslation: document → instruction.
    Backtranslate(StageArgs),
    /// Only curation: (instruction, document) → reasoning + score 1–5.
    Curate(StageArgs),
    /// Only rewriting: (instruction, document) → response between [RES] … [/RES].
    Rewrite(StageArgs),
    /// Only distillation: instruction → response without the document (baseline).
    Distill(StageArgs),
    /// Answer instructions with any backend (evaluation outputs, AlpacaEval JSON format).
    Generate(evalcmd::GenerateArgs),
    /// Pairwise judging of two output sets (both orders), win rate ± SE and length-controlled win rate.
    Eval(evalcmd::EvalArgs),
    /// Lengths, diversity, curation/parse statistics, MiniLM embeddings, MAUVE and a 2-D map of text sets.
    Analyze(evalcmd::AnalyzeArgs),
    /// One self-contained HTML report of a run and/or evaluations.
    Report(evalcmd::ReportArgs),
    /// Print the full default configuration as TOML.
    Config(CommonArgs),
    /// Throughput of the embedded backend (prompt and generated tokens/s) at several batch sizes.
    Bench(bench::BenchArgs),
    /// HTTP client overhead (requests/s) against a zero-latency local server, and cache lookup cost.
    BenchClient(bench::ClientBenchArgs),
    /// HTML main-content extraction quality (token F1 against reference texts) and pages/s.
    BenchExtract(bench::ExtractBenchArgs),
    /// Sentence-embedding throughput (sentences/s) and MAUVE time on real text lines.
    BenchEmbed(bench::EmbedBenchArgs),
    /// MAUVE between two raw f32 embedding files, timed.
    BenchMauve(bench::MauveBenchArgs),
    /// OpenAI-compatible HTTP server over the embedded llama.cpp engine.
    Serve(serve::ServeArgs),
    /// Offline batch files (OpenAI Batch API / vllm run-batch format).
    Batch {
        #[command(subcommand)]
        cmd: batch::BatchCmd,
    },
    /// Inspect or prune the response cache.
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
    },
}

#[derive(Subcommand)]
enum CacheCmd {
    /// Entries, hits, tokens and size, per model.
    Stats {
        /// SQLite cache file.
        path: PathBuf,
    },
    /// Delete entries older than N days that were not hit since.
    Prune {
        path: PathBuf,
        #[arg(long)]
        older_than_days: f64,
        /// Only this model id.
        #[arg(long)]
        model: Option<String>,
    },
}

/// Flags shared by all pipeline commands. Every config key can also be set with --set.
#[derive(Args, Clone)]
pub struct CommonArgs {
    /// TOML configuration file.
    #[arg(short, long)]
    config: Option<PathBuf>,
    /// Override any config key: --set section.key=value (repeatable; value is a TOML literal or a string).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// model.path: GGUF model file.
    #[arg(long)]
    model: Option<String>,
    /// input.paths: input files, folders or globs (repeatable; replaces the config's list).
    #[arg(short, long)]
    input: Vec<String>,
    /// seeds.path: seed pairs JSONL.
    #[arg(long)]
    seeds: Option<String>,
    /// output.dir: run folder.
    #[arg(short, long)]
    out: Option<String>,
    /// input.limit: stop after N documents.
    #[arg(long)]
    limit: Option<u64>,
    /// model.threads.
    #[arg(long)]
    threads: Option<usize>,
    /// model.batch_size: sequences decoded together.
    #[arg(long)]
    batch_size: Option<usize>,
    /// run.stages, comma-separated (run only).
    #[arg(long, value_delimiter = ',')]
    stages: Vec<String>,
    /// No progress bars.
    #[arg(short, long)]
    quiet: bool,
}

#[derive(Args, Clone)]
struct StageArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Read this stage's input records from FILE (any earlier stage's JSONL) instead of the run folder.
    #[arg(long)]
    from: Option<PathBuf>,
}

impl CommonArgs {
    pub fn config(&self) -> Result<Config> {
        let mut o = self.set.clone();
        let q = |s: &str| toml::Value::String(s.to_string()).to_string();
        if let Some(m) = &self.model {
            o.push(format!("model.path={}", q(m)));
        }
        if !self.input.is_empty() {
            let list: Vec<String> = self.input.iter().map(|s| q(s)).collect();
            o.push(format!("input.paths=[{}]", list.join(",")));
        }
        if let Some(s) = &self.seeds {
            o.push(format!("seeds.path={}", q(s)));
        }
        if let Some(s) = &self.out {
            o.push(format!("output.dir={}", q(s)));
        }
        if let Some(n) = self.limit {
            o.push(format!("input.limit={n}"));
        }
        if let Some(n) = self.threads {
            o.push(format!("model.threads={n}"));
        }
        if let Some(n) = self.batch_size {
            o.push(format!("model.batch_size={n}"));
        }
        if !self.stages.is_empty() {
            let list: Vec<String> = self.stages.iter().map(|s| q(s)).collect();
            o.push(format!("run.stages=[{}]", list.join(",")));
        }
        Config::load(self.config.as_deref(), &o)
    }
}

/// `backforth prepare` with a spinner (documents read, kept, documents/s; the
/// input is streamed, so there is no total), or a log line per 100,000
/// documents when stderr is not a terminal.
fn prepare_with_progress(cfg: &backforth::config::Config, quiet: bool) -> anyhow::Result<backforth::prepare::PrepareStats> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal() && !quiet;
    let pb = if tty { ProgressBar::new_spinner() } else { ProgressBar::hidden() };
    pb.set_style(ProgressStyle::with_template("{spinner} prepare: {pos} documents read, {msg} [{elapsed_precise}, {per_sec}]").unwrap());
    let t0 = std::time::Instant::now();
    let mut last_log = 0u64;
    let st = backforth::prepare::prepare_with_progress(cfg, &mut |docs, kept| {
        pb.set_position(docs);
        pb.set_message(format!("{kept} candidates kept"));
        if !tty && !quiet && docs >= last_log + 100_000 {
            last_log = docs;
            eprintln!("prepare: {docs} documents read, {kept} kept, {:.0} documents/s", docs as f64 / t0.elapsed().as_secs_f64().max(1e-9));
        }
    });
    pb.finish_and_clear();
    st
}

/// indicatif bars: items, generated tokens/s, ETA. When stderr is not a
/// terminal the bar is hidden and a log line is written every 5%.
struct Bars {
    quiet: bool,
}

impl ProgressFactory for Bars {
    fn start(&mut self, stage: Stage, total: u64) -> Box<dyn FnMut(u64, u64, u64, f64)> {
        let pb = if self.quiet { ProgressBar::hidden() } else { ProgressBar::new(total) };
        pb.set_style(
            ProgressStyle::with_template("{prefix:>13} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_prefix(stage.name());
        let log_every = (total / 20).max(1);
        let name = stage.name();
        let tty = !pb.is_hidden();
        Box::new(move |done, prompt_tokens, tokens, elapsed| {
            let tps = if elapsed > 0.0 { tokens as f64 / elapsed } else { 0.0 };
            let all = if elapsed > 0.0 { (tokens + prompt_tokens) as f64 / elapsed } else { 0.0 };
            pb.set_position(done);
            pb.set_message(format!("{tps:.1} gen tok/s, {all:.0} total tok/s"));
            if !tty && (done % log_every == 0 || done == total) {
                let eta = if done > 0 { elapsed / done as f64 * (total.saturating_sub(done)) as f64 } else { 0.0 };
                tracing::info!("{name}: {done}/{total} records, {tps:.1} generated tok/s, {all:.0} total tok/s, ETA {eta:.0}s");
            }
            if done == total {
                pb.finish();
            }
        })
    }
}

/// Backends by model name, each behind the shared response cache.
pub struct Provider {
    cfg: Config,
    llama: LlamaProvider,
    backends: std::collections::HashMap<String, backforth::cache::CachedBackend>,
}

impl Provider {
    pub fn new(cfg: &Config) -> Self {
        Provider { cfg: cfg.clone(), llama: LlamaProvider::new(LlamaOptions::from(&cfg.model)), backends: Default::default() }
    }
}

impl pipeline::BackendProvider for Provider {
    fn model_id(&mut self, model: &str) -> Result<String> {
        match self.cfg.backend.kind {
            BackendKind::Embedded => self.llama.model_id(model),
            BackendKind::Http => {
                anyhow::ensure!(!model.is_empty(), "no model: set model.path to the model name the server knows");
                Ok(format!("http:{model}"))
            }
        }
    }

    fn backend(&mut self, model: &str) -> Result<&mut dyn backforth::Backend> {
        if !self.backends.contains_key(model) {
            let inner: Box<dyn backforth::Backend> = match self.cfg.backend.kind {
                BackendKind::Embedded => Box::new(backforth_llama::LlamaEngine::load(std::path::Path::new(model), LlamaOptions::from(&self.cfg.model))?),
                BackendKind::Http => Box::new(backforth_http::HttpBackend::new(self.cfg.http.clone(), model)?),
            };
            let cache = if self.cfg.cache.enabled { self.cfg.cache_path() } else { PathBuf::from(":memory:") };
            let cb = backforth::cache::CachedBackend { inner, cache: backforth::cache::ResponseCache::open(&cache)?, hits: 0, misses: 0 };
            self.backends.insert(model.to_string(), cb);
        }
        let b = self.backends.get_mut(model).expect("inserted above");
        Ok(b)
    }
}

fn run_pipeline(common: &CommonArgs, stages: Option<Vec<Stage>>, from: Option<PathBuf>) -> Result<()> {
    let cfg = common.config()?;
    let stages = stages.unwrap_or_else(|| cfg.run.stages.clone());
    let mut provider = Provider::new(&cfg);
    let mut bars = Bars { quiet: common.quiet };
    let summary = pipeline::run(&cfg, &stages, &mut provider, &mut bars, RunOptions { from })?;
    let run = pipeline::RunDir(PathBuf::from(&cfg.output.dir));
    eprintln!(
        "documents: {} read, {} skipped{}",
        summary.input.documents,
        summary.input.skipped_total(),
        if summary.input.skipped.is_empty() { String::new() } else { format!(" {:?}", summary.input.skipped) }
    );
    for (name, t) in &summary.stages {
        let mut line = format!("{name:>13}: {} done, {} parsed, {} parse failures, {} errors", t.done, t.parsed_ok, t.parse_failed, t.backend_errors);
        if let (Some(k), Some(share)) = (t.kept, t.kept_share) {
            line += &format!(", kept {k} ({:.1}%), scores {:?}", share * 100.0, t.score_histogram);
        }
        eprintln!("{line}");
    }
    for (name, o) in &summary.outputs {
        eprintln!("{name:>13}: {} examples → {}", o.examples, o.path);
    }
    for (m, b) in &provider.backends {
        eprintln!("        cache: {m}: {} answered from cache, {} sent to the model", b.hits, b.misses);
    }
    eprintln!("      summary: {}", run.summary().display());
    Ok(())
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BACKFORTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,llama-cpp-2=warn")),
        )
        .init();
    let reference = format!(
        "CONFIGURATION (TOML; every key can be given with --set section.key=value). Defaults:\n\n{}",
        Config::default().to_toml().unwrap_or_default()
    );
    let mut cmd = Cli::command();
    for sub in ["run", "prepare", "backtranslate", "curate", "rewrite", "distill"] {
        let r = reference.clone();
        cmd = cmd.mut_subcommand(sub, move |c| c.after_long_help(r));
    }
    let cli = match Cli::from_arg_matches(&cmd.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let res = match cli.cmd {
        Cmd::Run(a) => run_pipeline(&a, None, None),
        Cmd::Prepare(a) => a.config().and_then(|c| prepare_with_progress(&c, a.quiet)).map(|st| {
            eprintln!(
                "documents: {} read, {} skipped | candidates: {} segmented, {} kept → {} | dropped {:?} | {:.0} documents/s",
                st.input.documents,
                st.input.skipped_total(),
                st.segments,
                st.kept,
                st.output,
                st.dropped,
                st.documents_per_s
            )
        }),
        Cmd::Backtranslate(a) => run_pipeline(&a.common, Some(vec![Stage::Backtranslate]), a.from),
        Cmd::Curate(a) => run_pipeline(&a.common, Some(vec![Stage::Curate]), a.from),
        Cmd::Rewrite(a) => run_pipeline(&a.common, Some(vec![Stage::Rewrite]), a.from),
        Cmd::Distill(a) => run_pipeline(&a.common, Some(vec![Stage::Distill]), a.from),
        Cmd::Config(a) => a.config().and_then(|c| c.to_toml().context("serialising")).map(|t| print!("{t}")),
        Cmd::Generate(a) => evalcmd::generate(a),
        Cmd::Eval(a) => evalcmd::eval_cmd(a),
        Cmd::Analyze(a) => evalcmd::analyze(a),
        Cmd::Report(a) => evalcmd::report_cmd(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Serve(a) => serve::run(a),
        Cmd::BenchClient(a) => bench::run_client(a),
        Cmd::BenchExtract(a) => bench::run_extract(a),
        Cmd::BenchEmbed(a) => bench::run_embed(a),
        Cmd::BenchMauve(a) => bench::run_mauve(a),
        Cmd::Batch { cmd } => batch::run(cmd),
        Cmd::Cache { cmd: CacheCmd::Stats { path } } => backforth::cache::ResponseCache::open(&path)
            .and_then(|c| c.stats())
            .map(|s| println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default())),
        Cmd::Cache { cmd: CacheCmd::Prune { path, older_than_days, model } } => backforth::cache::ResponseCache::open(&path)
            .and_then(|c| c.prune(older_than_days, model.as_deref()))
            .map(|n| println!("pruned {n} entries")),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
