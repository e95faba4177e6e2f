//! `backforth`: the command-line tool. Thin: parses flags into a
//! [`backforth::Config`], builds the embedded llama.cpp provider, and calls
//! [`backforth::pipeline::run`].

use anyhow::{Context, Result};
use backforth::config::{Config, Stage};
use backforth::pipeline::{self, ProgressFactory, RunOptions};
use backforth_llama::{LlamaOptions, LlamaProvider};
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

mod bench;

#[derive(Parser)]
#[command(name = "backforth", version, about = "Instruction back-and-forth translation: web documents → instruction-tuning data")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the configured chain of stages (run.stages), then export the datasets.
    Run(CommonArgs),
    /// Only backtranslation: document → instruction.
    Backtranslate(StageArgs),
    /// Only curation: (instruction, document) → reasoning + score 1–5.
    Curate(StageArgs),
    /// Only rewriting: (instruction, document) → response between [RES] … [/RES].
    Rewrite(StageArgs),
    /// Only distillation: instruction → response without the document (baseline).
    Distill(StageArgs),
    /// Print the full default configuration as TOML.
    Config(CommonArgs),
    /// Throughput of the embedded backend (prompt and generated tokens/s) at several batch sizes.
    Bench(bench::BenchArgs),
}

/// Flags shared by all pipeline commands. Every config key can also be set with --set.
#[derive(Args, Clone)]
struct CommonArgs {
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
    fn config(&self) -> Result<Config> {
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
        Box::new(move |done, _, tokens, elapsed| {
            let tps = if elapsed > 0.0 { tokens as f64 / elapsed } else { 0.0 };
            pb.set_position(done);
            pb.set_message(format!("{tps:.1} tok/s"));
            if !tty && (done % log_every == 0 || done == total) {
                let eta = if done > 0 { elapsed / done as f64 * (total.saturating_sub(done)) as f64 } else { 0.0 };
                tracing::info!("{name}: {done}/{total} records, {tps:.1} generated tok/s, ETA {eta:.0}s");
            }
            if done == total {
                pb.finish();
            }
        })
    }
}

fn run_pipeline(common: &CommonArgs, stages: Option<Vec<Stage>>, from: Option<PathBuf>) -> Result<()> {
    let cfg = common.config()?;
    let stages = stages.unwrap_or_else(|| cfg.run.stages.clone());
    let mut provider = LlamaProvider::new(LlamaOptions::from(&cfg.model));
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
    for sub in ["run", "backtranslate", "curate", "rewrite", "distill"] {
        let r = reference.clone();
        cmd = cmd.mut_subcommand(sub, move |c| c.after_long_help(r));
    }
    let cli = match Cli::from_arg_matches(&cmd.get_matches()) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let res = match cli.cmd {
        Cmd::Run(a) => run_pipeline(&a, None, None),
        Cmd::Backtranslate(a) => run_pipeline(&a.common, Some(vec![Stage::Backtranslate]), a.from),
        Cmd::Curate(a) => run_pipeline(&a.common, Some(vec![Stage::Curate]), a.from),
        Cmd::Rewrite(a) => run_pipeline(&a.common, Some(vec![Stage::Rewrite]), a.from),
        Cmd::Distill(a) => run_pipeline(&a.common, Some(vec![Stage::Distill]), a.from),
        Cmd::Config(a) => a.config().and_then(|c| c.to_toml().context("serialising")).map(|t| print!("{t}")),
        Cmd::Bench(a) => bench::run(a),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
