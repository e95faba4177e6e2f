//! The command line as clap types: every command, flag and help text, and
//! the mapping of flags onto configuration keys ([`CommonArgs::config`]).
//! No command logic here: `commands/` and `bench/` hold that.

use anyhow::Result;
use backforth::config::Config;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "backforth",
    version,
    args_override_self = true,
    disable_help_subcommand = true,
    about = "Instruction back-and-forth translation: web documents → instruction-tuning data"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the configured stages (run.stages, or --stages; built-in or defined in [stage.NAME]), then export the datasets.
    Run(RunArgs),
    /// Read → segment ([segment]) → filter ([filter]) → deduplicate ([dedup]); writes candidates.jsonl for `run`.
    Prepare(CommonArgs),
    /// Fine-tune a LoRA adapter on a GGUF base model (llama / qwen2): the
    /// backward model M_yx (--data backward), the seed model M_0 or a
    /// curation model M_1 (--data forward); resumable, writes adapter.gguf + PEFT.
    Train(TrainArgs),
    /// Humpback's self-alignment loop (Li et al. 2023 §2): train the backward
    /// model M_yx and the seed model M_0 on the seed pairs, backtranslate the
    /// corpus with M_yx, curate with M_0, then N times: train M_i on seed +
    /// the best curated pairs and curate again with it. Resumable; each step
    /// in its own folder under --out.
    Selfalign(SelfAlignArgs),
    /// LoRA adapters: convert a PEFT adapter (trained elsewhere) to GGUF for llama.cpp.
    Adapter {
        #[command(subcommand)]
        cmd: AdapterCmd,
    },
    /// Learned checks: the grounding checker (weak labels made from the documents themselves) and the document filter.
    Checks {
        #[command(subcommand)]
        cmd: ChecksCmd,
    },
    /// Answer instructions with any backend (evaluation outputs, AlpacaEval JSON format).
    Generate(GenerateArgs),
    /// Pairwise judging of two output sets (both orders), win rate ± SE and length-controlled win rate.
    Eval(EvalArgs),
    /// Lengths, diversity, curation/parse statistics, MiniLM embeddings, MAUVE and a 2-D map of text sets.
    Analyze(AnalyzeArgs),
    /// One self-contained HTML report of a run and/or evaluations.
    Report(ReportArgs),
    /// Sharded runs over many machines: plan, status, merge, dedup across shards, Slurm and Kubernetes launchers.
    Shard {
        #[command(subcommand)]
        cmd: ShardCmd,
    },
    /// OpenAI-compatible HTTP server over the embedded llama.cpp engine.
    Serve(ServeArgs),
    /// Offline batch files (OpenAI Batch API / vllm run-batch format).
    Batch {
        #[command(subcommand)]
        cmd: BatchCmd,
    },
    /// Inspect or prune the response cache.
    Cache {
        #[command(subcommand)]
        cmd: CacheCmd,
    },
    /// Print the configuration in force as TOML (defaults, preset, file, flags), or list the presets.
    Config(ConfigCmdArgs),
    /// Benchmarks (for BENCHMARKS.md; not a user command).
    #[command(hide = true, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Bench {
        #[command(subcommand)]
        cmd: Option<BenchCmd>,
        /// `backforth bench --model …` as before: the engine benchmark.
        #[command(flatten)]
        engine: Option<BenchArgs>,
    },
    // ---- earlier names, kept working (hidden)
    #[command(hide = true)]
    Backtranslate(StageArgs),
    #[command(hide = true)]
    Curate(StageArgs),
    #[command(hide = true)]
    Rewrite(StageArgs),
    #[command(hide = true)]
    Distill(StageArgs),
    #[command(hide = true)]
    Verify(StageArgs),
    #[command(hide = true)]
    BenchClient(ClientBenchArgs),
    #[command(hide = true)]
    BenchExtract(ExtractBenchArgs),
    #[command(hide = true)]
    BenchEmbed(EmbedBenchArgs),
    #[command(hide = true)]
    BenchMauve(MauveBenchArgs),
    #[command(hide = true)]
    BenchGrammar(GrammarBenchArgs),
    #[command(hide = true)]
    BenchChecks(ChecksBenchArgs),
    #[command(hide = true)]
    Plan(PlanArgs),
    #[command(hide = true)]
    Merge(MergeArgs),
    #[command(hide = true)]
    Status(StatusArgs),
    #[command(hide = true)]
    Slurm {
        #[command(subcommand)]
        cmd: SlurmCmd,
    },
    #[command(hide = true)]
    Dedup {
        #[command(subcommand)]
        cmd: DedupCmd,
    },
    #[command(hide = true)]
    K8s {
        #[command(subcommand)]
        cmd: K8sCmd,
    },
}

/// `backforth shard …`: the verbs of a sharded run (a shard itself runs through `run --num-shards`).
#[derive(Subcommand)]
pub enum ShardCmd {
    /// List the inputs once and cut them into N shards by size: <out>/plan.json and manifest.jsonl (`run --num-shards` makes it too).
    Plan(PlanArgs),
    /// Which shards of a sharded run are done, running, stopped or missing.
    Status(StatusArgs),
    /// Merge the finished shards (<out>/shards/*) into the run folder; writes _SUCCESS last.
    Merge(MergeArgs),
    /// Dedup across shards before any LLM call: `sign` per shard, `buckets` per band, one `cluster`; shard runs then drop their remove lists.
    Dedup {
        #[command(subcommand)]
        cmd: DedupCmd,
    },
    /// Slurm launcher: a job array of shards and an afterok merge job.
    Slurm {
        #[command(subcommand)]
        cmd: SlurmCmd,
    },
    /// Kubernetes launcher: an Indexed Job of shards and a merge Job.
    K8s {
        #[command(subcommand)]
        cmd: K8sCmd,
    },
}

/// `backforth bench …` (hidden): the measurements behind BENCHMARKS.md.
#[derive(Subcommand)]
pub enum BenchCmd {
    /// Throughput of the embedded backend (prompt and generated tokens/s) at several batch sizes.
    Engine(BenchArgs),
    /// HTTP client overhead (requests/s) against a zero-latency local server, and cache lookup cost.
    Client(ClientBenchArgs),
    /// HTML main-content extraction quality (token F1 against reference texts) and pages/s.
    Extract(ExtractBenchArgs),
    /// Sentence-embedding throughput (sentences/s) and MAUVE time on real text lines.
    Embed(EmbedBenchArgs),
    /// MAUVE between two raw f32 embedding files, timed.
    Mauve(MauveBenchArgs),
    /// Cost of grammar-constrained decoding (curate, rewrite, judge) on a run's own prompts.
    Grammar(GrammarBenchArgs),
    /// Precision and recall of the relevance and grounding checks on labelled sets.
    Checks(ChecksBenchArgs),
}

/// `backforth config`.
#[derive(Args, Clone)]
pub struct ConfigCmdArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    #[command(flatten)]
    pub stages: StagesArgs,
    /// List the shipped presets (name, what it reproduces) instead.
    #[arg(long)]
    pub presets: bool,
}

/// A single built-in stage under its earlier command name (`backforth curate` = `backforth run --stages curate`).
#[derive(Args, Clone)]
pub struct StageArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    /// Read this stage's input records from FILE (any earlier stage's JSONL) instead of the run folder.
    #[arg(long)]
    pub from: Option<PathBuf>,
}

/// Flags of a sharded run.
#[derive(Args, Clone, Default)]
pub struct ShardArgs {
    /// Run as one shard of N: inputs from <out>/plan.json (made on first use), outputs under <out>/shards/<I>/, a completion marker at the end.
    #[arg(long)]
    pub num_shards: Option<u32>,
    /// This process's shard, 0-based (default: SLURM_ARRAY_TASK_ID + BACKFORTH_SHARD_OFFSET, or JOB_COMPLETION_INDEX).
    #[arg(long, requires = "num_shards")]
    pub shard: Option<u32>,
}

#[derive(Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    #[command(flatten)]
    pub stages: StagesArgs,
    /// Read the first stage's input records from FILE (any earlier stage's JSONL) instead of the run folder.
    #[arg(long)]
    pub from: Option<PathBuf>,
    #[command(flatten)]
    pub shard: ShardArgs,
}

impl RunArgs {
    /// The configuration with every flag applied.
    pub fn config(&self) -> Result<Config> {
        let mut o = self.seeds.overrides();
        o.extend(self.stages.overrides());
        self.common.config_with(o)
    }
}

#[derive(Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Number of shards.
    #[arg(long)]
    pub num_shards: u32,
}

#[derive(Args)]
pub struct MergeArgs {
    /// The sharded run's folder (output.dir).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Also merge documents.jsonl and stages/*.jsonl (what `analyze` and `report` read).
    #[arg(long)]
    pub with_stages: bool,
    /// Wait until every shard is done (polling every 30 s) instead of failing; for schedulers without job dependencies (Kubernetes). Optional limit in seconds.
    #[arg(long, num_args = 0..=1, default_missing_value = "0")]
    pub wait: Option<u64>,
}

#[derive(Args)]
pub struct StatusArgs {
    /// The sharded run's folder (output.dir).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum DedupCmd {
    /// Read this shard's documents (as its run will) and write their MinHash signatures and exact keys under <out>/dedup/sig/.
    Sign(RunArgs),
    /// One band's bucket task: compare the documents that share its key, keep the confirmed pairs (<out>/dedup/pairs/); one task per band, in parallel.
    Buckets(BucketArgs),
    /// Join exact and near duplicates across all shards (running any band's bucket task not yet run); write <out>/dedup/remove/<I>.jsonl.
    Cluster(PlanArgs),
}

#[derive(Args)]
pub struct BucketArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[arg(long)]
    pub num_shards: u32,
    /// The band, 0-based (default: SLURM_ARRAY_TASK_ID or JOB_COMPLETION_INDEX).
    #[arg(long)]
    pub band: Option<u32>,
}

#[derive(Subcommand)]
pub enum SlurmCmd {
    /// Write <out>/slurm/{config.toml, shards-*.sbatch, merge.sbatch} and submit them with sbatch.
    Submit(SlurmArgs),
}

#[derive(Args)]
pub struct SlurmArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    #[command(flatten)]
    pub stages: StagesArgs,
    #[arg(long)]
    pub num_shards: u32,
    /// At most this many shards at once (--array=…%K).
    #[arg(long)]
    pub throttle: Option<u32>,
    #[arg(long)]
    pub time: Option<String>,
    #[arg(long)]
    pub partition: Option<String>,
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    #[arg(long)]
    pub mem: Option<String>,
    #[arg(long)]
    pub gres: Option<String>,
    /// The cluster's MaxArraySize (default: asked of `scontrol show config`, else 1001).
    #[arg(long)]
    pub max_array_size: Option<u32>,
    /// More #SBATCH flags, e.g. --sbatch=--account=lab (repeatable).
    #[arg(long = "sbatch")]
    pub extra: Vec<String>,
    /// Only the shards that are neither done nor running (a relaunch after failures).
    #[arg(long)]
    pub missing: bool,
    /// Dedup across shards before the shards run: a `dedup sign` array and a `dedup cluster` job first.
    #[arg(long, conflicts_with = "missing")]
    pub dedup: bool,
    /// Write the scripts, do not submit.
    #[arg(long)]
    pub dry_run: bool,
    /// The binary the tasks run (default: this one).
    #[arg(long)]
    pub backforth: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum K8sCmd {
    /// Write <out>/k8s/backforth.json: ConfigMap + Indexed Job + merge Job (kubectl apply -f).
    Manifest(K8sArgs),
}

#[derive(Args)]
pub struct K8sArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    #[command(flatten)]
    pub stages: StagesArgs,
    #[arg(long)]
    pub num_shards: u32,
    /// Container image with backforth on its PATH.
    #[arg(long)]
    pub image: String,
    /// Job name (also the ConfigMap's and the Secret's).
    #[arg(long, default_value = "backforth")]
    pub name: String,
    /// Pods at once.
    #[arg(long, default_value_t = 8)]
    pub parallelism: u32,
    #[arg(long, default_value_t = 3)]
    pub backoff_limit_per_index: u32,
    /// ReadWriteMany PersistentVolumeClaim holding local inputs and the run
    /// folder; needed unless output.dir (and the inputs) are in object storage.
    #[arg(long)]
    pub pvc: Option<String>,
    #[arg(long, default_value = "/data")]
    pub mount_path: String,
    #[arg(long)]
    pub cpu: Option<String>,
    #[arg(long)]
    pub memory: Option<String>,
    #[arg(long)]
    pub gpus: Option<u32>,
    /// Environment variables taken from the Secret named like the job (e.g. BACKFORTH_API_KEY; repeatable).
    #[arg(long)]
    pub secret_env: Vec<String>,
    /// Where to write the manifest (default: <out>/k8s/backforth.json; ./backforth-k8s.json when <out> is a URL).
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum CacheCmd {
    /// Entries, hits, tokens and size, per model.
    Stats {
        /// SQLite cache file.
        path: PathBuf,
    },
    /// Copy the entries of other cache files into one (e.g. a sharded run's per-shard caches: `backforth cache merge run/cache.sqlite run/shards/*/cache.sqlite`).
    Merge {
        /// The cache written to (created if missing).
        into: PathBuf,
        /// Caches read; entries the target already has are kept as they are.
        #[arg(required = true)]
        from: Vec<PathBuf>,
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

/// Flags of every command that loads the configuration: the file, a shipped
/// preset, key overrides and the engine settings most often changed.
#[derive(Args, Clone, Default)]
pub struct ConfigArgs {
    /// TOML configuration file.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// A shipped configuration laid under the file and the flags (`backforth config --presets` lists them).
    #[arg(long, value_name = "NAME")]
    pub preset: Option<String>,
    /// Override any config key: --set section.key=value (repeatable; value is a TOML literal or a string).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// model.path: GGUF model file (or the model name a server knows).
    #[arg(long)]
    pub model: Option<String>,
    /// model.threads.
    #[arg(long)]
    pub threads: Option<usize>,
    /// model.batch_size: sequences decoded together.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// No progress bars.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Flags of the commands that read a corpus into a run folder.
#[derive(Args, Clone, Default)]
pub struct CommonArgs {
    #[command(flatten)]
    pub base: ConfigArgs,
    /// input.paths: input files, folders or globs (repeatable; replaces the config's list).
    #[arg(short, long)]
    pub input: Vec<String>,
    /// output.dir: run folder.
    #[arg(short, long)]
    pub out: Option<String>,
    /// input.limit: stop after N documents.
    #[arg(long)]
    pub limit: Option<u64>,
}

/// The seed pairs, for the commands that backtranslate.
#[derive(Args, Clone, Default)]
pub struct SeedsArgs {
    /// seeds.path: seed pairs JSONL (few-shot backtranslation).
    #[arg(long)]
    pub seeds: Option<String>,
}

/// Flags that pick stages and their input.
#[derive(Args, Clone, Default)]
pub struct StagesArgs {
    /// run.stages: stage names, comma-separated (built-in or defined in a [stage.NAME] section); run in plan order.
    #[arg(long, value_delimiter = ',')]
    pub stages: Vec<String>,
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

impl ConfigArgs {
    /// The configuration: preset, file, these flags, then `extra` overrides.
    pub fn config_with(&self, extra: Vec<String>) -> Result<Config> {
        let mut o = self.set.clone();
        if let Some(m) = &self.model {
            o.push(format!("model.path={}", quote(m)));
        }
        if let Some(n) = self.threads {
            o.push(format!("model.threads={n}"));
        }
        if let Some(n) = self.batch_size {
            o.push(format!("model.batch_size={n}"));
        }
        o.extend(extra);
        Config::load_preset(self.preset.as_deref(), self.config.as_deref(), &o)
    }
    /// The configuration: preset, file, these flags.
    pub fn config(&self) -> Result<Config> {
        self.config_with(vec![])
    }
}

impl SeedsArgs {
    /// `seeds.path` as an override, when given.
    pub fn overrides(&self) -> Vec<String> {
        self.seeds
            .iter()
            .map(|s| format!("seeds.path={}", quote(s)))
            .collect()
    }
}

impl StagesArgs {
    /// `run.stages` as an override, when given.
    pub fn overrides(&self) -> Vec<String> {
        if self.stages.is_empty() {
            return vec![];
        }
        let list: Vec<String> = self.stages.iter().map(|s| quote(s)).collect();
        vec![format!("run.stages=[{}]", list.join(","))]
    }
}

impl CommonArgs {
    /// The configuration with the corpus flags, then `extra` overrides.
    pub fn config_with(&self, mut extra: Vec<String>) -> Result<Config> {
        let mut o = Vec::new();
        if !self.input.is_empty() {
            let list: Vec<String> = self.input.iter().map(|s| quote(s)).collect();
            o.push(format!("input.paths=[{}]", list.join(",")));
        }
        if let Some(s) = &self.out {
            o.push(format!("output.dir={}", quote(s)));
        }
        if let Some(n) = self.limit {
            o.push(format!("input.limit={n}"));
        }
        o.append(&mut extra);
        self.base.config_with(o)
    }
    /// The configuration with the corpus flags.
    pub fn config(&self) -> Result<Config> {
        self.config_with(vec![])
    }
    /// No progress bars.
    pub fn quiet(&self) -> bool {
        self.base.quiet
    }
}

// ---------------------------------------------------------------- measuring

#[derive(Args)]
pub struct GenerateArgs {
    /// Backend and model (model.path / backend.kind / http.*); the response cache goes beside --outputs unless output.dir or cache.path is set.
    #[command(flatten)]
    pub common: ConfigArgs,
    /// Answer only the first N instructions.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Instructions: AlpacaEval JSON, MT-bench question.jsonl (first turns) or JSONL with `instruction`.
    #[arg(long)]
    pub instructions: PathBuf,
    /// Output file (AlpacaEval JSON list). A `<file>.work.jsonl` beside it makes the job resumable.
    #[arg(long)]
    pub outputs: PathBuf,
    /// `generator` field (default: the model file stem).
    #[arg(long)]
    pub generator: Option<String>,
    /// Prompt template (variables: instruction); default: the built-in `generate`.
    #[arg(long, default_value = "")]
    pub template: String,
    #[arg(long, default_value_t = 512)]
    pub max_tokens: u32,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
}

#[derive(Args)]
pub struct EvalArgs {
    /// Judge backend and model (model.path / backend.kind / http.*).
    #[command(flatten)]
    pub common: ConfigArgs,
    /// The evaluation folder: judgements, results and summary are written there.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Judge only the first N instruction pairs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Outputs of the model under test (AlpacaEval JSON or JSONL with instruction/output).
    #[arg(long)]
    pub model_outputs: PathBuf,
    /// Outputs of the baseline, same format; paired by instruction text.
    #[arg(long)]
    pub baseline_outputs: PathBuf,
    /// Only judge instructions that appear in this file (AlpacaEval JSON, MT-bench question.jsonl first turns, JSONL).
    #[arg(long)]
    pub instructions: Option<PathBuf>,
    /// Judge template (variables: instruction, output_a, output_b); default: the built-in `judge`.
    #[arg(long, default_value = "")]
    pub template: String,
    /// Most tokens the judge may write (the embedded judge needs ~5 under its grammar).
    #[arg(long, default_value_t = 64)]
    pub max_tokens: u32,
    /// Do not constrain the judge with the verdict grammar.
    #[arg(long)]
    pub no_grammar: bool,
    /// Alternatives per token to ask the judge for: the verdict's
    /// probabilities weight each preference (0 = discrete verdicts only;
    /// servers that return no log-probabilities fall back to the verdicts).
    #[arg(long, default_value_t = 10)]
    pub top_logprobs: u8,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// A run folder: analyses its kept documents, instructions, rewritten and distilled responses, scores and parse failures.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// Another text set: NAME=PATH[:FIELD] (JSON list / JSONL field, default output|text|response|instruction; other files: one text per line). Repeatable.
    #[arg(long = "text-set", visible_alias = "texts", alias = "set", value_name = "NAME=PATH[:FIELD]")]
    pub sets: Vec<String>,
    /// Sentence-transformers model folder (default: $BACKFORTH_CACHE/models/all-MiniLM-L6-v2).
    #[arg(long)]
    pub embedder: Option<PathBuf>,
    /// Skip embeddings (no MAUVE, no map): only counts.
    #[arg(long)]
    pub no_embed: bool,
    /// What runs the sentence encoder: `llama` (llama.cpp's bert graph on a
    /// GGUF written next to the model folder on first use; about 3× candle's
    /// speed, same vectors to cosine ≥ 0.9999) or `candle`.
    #[arg(long, default_value = "llama", value_parser = ["llama", "candle"])]
    pub embed_engine: String,
    /// MAUVE between these sets: P,Q (repeatable). Default: every pair of response-like sets (all but `instructions`).
    #[arg(long = "mauve", value_name = "P,Q")]
    pub mauve_pairs: Vec<String>,
    /// Embed at most N texts per set (evenly spaced sample).
    #[arg(long, default_value_t = 10_000)]
    pub max_texts: usize,
    /// Texts per embedding batch (see BENCHMARKS.md).
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Points per set on the 2-D map.
    #[arg(long, default_value_t = 1000)]
    pub map_points: usize,
    /// k-means restarts for MAUVE (reference default 5).
    #[arg(long, default_value_t = 5)]
    pub mauve_redo: usize,
    /// Output file (default: RUN/analysis.json, else analysis.json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args)]
pub struct ReportArgs {
    /// Run folder (summary, examples; its analysis.json is used when present).
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// analysis.json from `backforth analyze` (default: RUN/analysis.json if it exists).
    #[arg(long)]
    pub analysis: Option<PathBuf>,
    /// Evaluation folder from `backforth eval` (repeatable).
    #[arg(long = "eval")]
    pub evals: Vec<PathBuf>,
    /// Training folder from `backforth train` (its progress.jsonl; repeatable): loss curves.
    #[arg(long = "train")]
    pub train: Vec<PathBuf>,
    /// Output HTML file (default: RUN/report.html, else report.html).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Examples in the table at most.
    #[arg(long, default_value_t = 2000)]
    pub max_examples: usize,
    #[arg(long)]
    pub title: Option<String>,
}

// ---------------------------------------------------------------- serving and batch files

#[derive(Args)]
pub struct ServeArgs {
    /// GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// LoRA adapter GGUF applied to the model (e.g. from `backforth train`; one).
    #[arg(long)]
    pub lora: Vec<PathBuf>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Model name reported and accepted (default: the file name).
    #[arg(long)]
    pub served_name: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Sequences decoded together.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Context tokens per sequence.
    #[arg(long, default_value_t = 4096)]
    pub context: u32,
    /// HTTP worker threads.
    #[arg(long, default_value_t = 32)]
    pub http_threads: usize,
}

#[derive(Subcommand)]
pub enum BatchCmd {
    /// Write the pending requests of one stage as an OpenAI Batch API JSONL file.
    Export(BatchArgs),
    /// Read a Batch API results file back into the stage (by custom_id).
    Import(BatchArgs),
}

#[derive(Args)]
pub struct BatchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    /// Stage: backtranslate, curate, rewrite or distill.
    #[arg(long)]
    pub stage: String,
    /// Requests file (export) or results file (import).
    #[arg(long)]
    pub file: PathBuf,
    /// Endpoint written into each request line (default: /v1/chat/completions, or /v1/completions with http.api = "completions").
    #[arg(long)]
    pub endpoint: Option<String>,
}

// ---------------------------------------------------------------- benchmarks

#[derive(Args)]
pub struct BenchArgs {
    /// GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// CPU threads (0 = all).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Batch sizes (parallel sequences) to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    pub batch_sizes: Vec<usize>,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Generated tokens per sequence.
    #[arg(long, default_value_t = 128)]
    pub gen_tokens: u32,
    /// Tokens per decode call (llama.cpp -b/-ub).
    #[arg(long, default_value_t = 512)]
    pub n_batch: u32,
    /// Write results as JSON here too.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// `backforth bench-checks`: precision and recall of the checks on the labelled set.
#[derive(Args)]
pub struct ChecksBenchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// One document per line, or JSONL records with `text` (default: gensim's lee_background.cor in the asset cache).
    #[arg(long)]
    pub corpus: Option<PathBuf>,
    /// Seed pairs JSONL whose instructions make the seed_topic class (default: the Python-FAQ seeds).
    #[arg(long)]
    pub seed_questions: Option<PathBuf>,
    /// Use the first N items of the set (0 = all; classes come round-robin, so any N is balanced).
    #[arg(long, default_value_t = 0)]
    pub n: usize,
    /// A hand-labelled file of real pipeline outputs (JSONL: line, instruction, response, class, note;
    /// `line` = the document's line in --corpus) instead of the built set.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Skip the verify stage (no LLM): only the lexical and, with checks.embedding_model, the semantic checks
    /// (and, with checks.grounding_model, the learned checker).
    #[arg(long)]
    pub no_verify: bool,
    /// The near-document set instead of the built set: faithful pairs against a sentence of the nearest
    /// document inserted, the nearest document's instruction, a name/identifier/number swapped from it.
    #[arg(long, conflicts_with = "labels")]
    pub near: bool,
    /// Print the learned checker's thresholds with the best F1 on this set (lexical + semantic + learned),
    /// to be used on other sets.
    #[arg(long)]
    pub choose_thresholds: bool,
}

/// `backforth checks …`.
#[derive(Subcommand)]
pub enum ChecksCmd {
    /// Train the learned grounding checker on the documents of --input (any
    /// format `run` reads): weak labels from rule-based changes of the
    /// documents' own sentences and their near documents' (no human labels),
    /// features over the sentence embedder of checks.embedding_model, a small
    /// network per task. Writes <out>/grounding.json (set checks.grounding_model
    /// to it); resumable: rerun the same command after a kill.
    Train(ChecksTrainArgs),
    /// Train the learned document filter (FineWeb-Edu's recipe) on documents
    /// an LLM rated: the stage files of runs with the `doc-rubric` preset.
    /// Writes <out>/doc_filter.json (set doc_filter.model to it, with
    /// doc_filter.embedding_model) and prints its agreement with the LLM on
    /// held-out documents and on any --eval files (never trained on).
    TrainFilter(TrainFilterArgs),
}

/// Flags of `backforth checks train-filter`.
#[derive(Args)]
pub struct TrainFilterArgs {
    /// Stage files of rated documents (`<run>/stages/doc_rubric.jsonl`; repeatable).
    #[arg(long, required = true)]
    pub labels: Vec<PathBuf>,
    /// Stage files rated the same way, only to measure agreement (repeatable).
    #[arg(long)]
    pub eval: Vec<PathBuf>,
    /// The stage whose scores are the ratings.
    #[arg(long, default_value = "doc_rubric")]
    pub stage: String,
    /// A rating ≥ this is a document worth keeping (1–5).
    #[arg(long, default_value_t = 3)]
    pub min_rating: u8,
    /// Share of the --labels documents held out of training to measure agreement.
    #[arg(long, default_value_t = 0.25)]
    pub held_out: f64,
    /// Folder for doc_filter.json.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Sentence embedder folder (default: the MiniLM of the asset cache).
    #[arg(long)]
    pub embedding_model: Option<String>,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Hidden units of the classifier.
    #[arg(long, default_value_t = 8)]
    pub hidden: usize,
    /// Training epochs.
    #[arg(long, default_value_t = 60)]
    pub epochs: usize,
    /// L2 weight decay (0.1: chosen on the held-out quarter of news stories 41–300, BENCHMARKS.md).
    #[arg(long, default_value_t = 0.1)]
    pub l2: f32,
}

/// Flags of `backforth checks train` (only those it reads: no model, seeds or stages).
#[derive(Args)]
pub struct ChecksTrainArgs {
    /// TOML configuration file (its [input] and [checks] sections are read).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Override a config key: --set section.key=value (repeatable).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// input.paths: the corpus (files, folders or globs; repeatable).
    #[arg(short, long, required = true)]
    pub input: Vec<String>,
    /// Folder for the model (<out>/grounding.json) and its resumable training state.
    #[arg(short, long)]
    pub out: String,
    /// input.limit: read at most N documents.
    #[arg(long)]
    pub limit: Option<u64>,
    /// model.threads: CPU threads of the sentence embedder (0 = all).
    #[arg(long)]
    pub threads: Option<usize>,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
    /// checks.embedding_model: sentence-transformers folder (default: all-MiniLM-L6-v2 in the asset cache).
    #[arg(long)]
    pub embedding_model: Option<String>,
    /// Documents used at most (the first N with 3 sentences or more).
    #[arg(long, default_value_t = 2000)]
    pub max_documents: usize,
    /// Weak claims made per document (about a third good).
    #[arg(long, default_value_t = 9)]
    pub claims_per_document: usize,
    /// Near documents each document takes its hard negatives from.
    #[arg(long, default_value_t = 5)]
    pub neighbours: usize,
    /// Training epochs of each network.
    #[arg(long, default_value_t = 40)]
    pub epochs: usize,
    /// Seed of the examples, the held-out split and the weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

/// `backforth bench-grammar`: seconds per generated token with and without
/// each stage's GBNF grammar, same prompts, greedy, batch size 1.
#[derive(Args)]
pub struct GrammarBenchArgs {
    /// GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// A finished run folder; prompts are built from its `stages/rewrite.jsonl`.
    #[arg(long)]
    pub run: PathBuf,
    /// Pairs to use per task.
    #[arg(long, default_value_t = 8)]
    pub n: usize,
    /// Token budget of the rewrite task.
    #[arg(long, default_value_t = 256)]
    pub rewrite_tokens: u32,
    /// Context tokens per sequence.
    #[arg(long, default_value_t = 4096)]
    pub context: u32,
    /// CPU threads (0 = all).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `backforth bench-client`: HTTP client overhead against a zero-latency
/// OpenAI-compatible server (fixed response, in this process, loopback), and
/// the response cache's cost per lookup.
#[derive(Args)]
pub struct ClientBenchArgs {
    /// Requests per measurement.
    #[arg(long, default_value_t = 20000)]
    pub requests: u64,
    /// Client concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    pub concurrency: Vec<usize>,
    /// Server worker threads.
    #[arg(long, default_value_t = 4)]
    pub server_threads: usize,
}

/// `backforth bench-extract`: main-content extraction quality of the HTML
/// reader: for every `<html-dir>/X.html` with a reference `<reference-dir>/X<suffix>`
/// (the Python manual ships `_sources/X.rst.txt` next to `X.html`), the
/// bag-of-tokens precision/recall/F1 of our extracted text against the
/// reference ([`backforth_corpus::readers::html::token_f1`]), and pages/s.
#[derive(Args)]
pub struct ExtractBenchArgs {
    /// Folder of HTML pages (searched recursively).
    #[arg(long)]
    pub html: PathBuf,
    /// Folder of reference texts with the same relative paths.
    #[arg(long)]
    pub reference: PathBuf,
    /// Reference file name = HTML path without `.html` plus this suffix.
    #[arg(long, default_value = ".rst.txt")]
    pub suffix: String,
}

/// `backforth bench-embed`: sentence-embedding throughput of the candle
/// MiniLM (sentences/s, tokens/s) on the first `n` lines of a text file, and
/// the time of MAUVE between two halves of `mauve_n` + `mauve_n` embedded
/// lines (reference settings: 5 k-means restarts, ≤500 iterations).
#[derive(Args)]
pub struct EmbedBenchArgs {
    /// Text file, one sentence per line.
    #[arg(long)]
    pub texts: PathBuf,
    /// Sentences for the throughput measurement.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Sentences per MAUVE side (0 = skip MAUVE). Needs 2 × this many lines.
    #[arg(long, default_value_t = 0)]
    pub mauve_n: usize,
    /// Embedding model folder (default: $BACKFORTH_CACHE/models/all-MiniLM-L6-v2).
    #[arg(long)]
    pub embedder: Option<PathBuf>,
    /// Write the embeddings of all lines used to this file (raw little-endian f32, rows of 384) for cross-checks.
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// What runs the encoder: `candle` (in process) or `llama` (llama.cpp's
    /// bert graph on a GGUF written from the same folder on first use).
    #[arg(long, default_value = "candle", value_parser = ["candle", "llama"])]
    pub engine: String,
}

/// `backforth bench-mauve`: MAUVE between two raw little-endian f32
/// embedding files (rows of `dim`), with its wall time. Used for the
/// cross-check against `mauve-text` and the 10k × 10k timing.
#[derive(Args)]
pub struct MauveBenchArgs {
    #[arg(long)]
    pub p: PathBuf,
    #[arg(long)]
    pub q: PathBuf,
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Use only the first N rows of each file (0 = all).
    #[arg(long, default_value_t = 0)]
    pub n: usize,
    /// k-means restarts.
    #[arg(long, default_value_t = 5)]
    pub redo: usize,
}

/// What `backforth train` learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainData {
    /// Seed response → seed instruction (the backward model M_yx), prompted as
    /// the backtranslate stage prompts a `finetuned` backward model.
    Backward,
    /// Instruction → response: the seed pairs (--seeds) and/or chat JSONL
    /// files (--dataset, e.g. a run's dataset.jsonl): M_0, M_1, or the final model.
    Forward,
}

/// Who trains for `backforth train`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainEngine {
    /// Our LoRA trainer on candle (CPU; CUDA with the `cuda` feature): small models.
    Candle,
    /// Hugging Face TRL (`trl sft`, LoRA through PEFT) on GPUs, 7B–70B: writes
    /// its data and config, prints the launch command (runs it with
    /// --launch), and imports the PEFT adapter it leaves.
    Trl,
}

#[derive(Args)]
pub struct TrainArgs {
    /// Base model GGUF (llama or qwen2 architecture; any quantisation, dequantized for training).
    /// With --engine trl: the GGUF the adapter is imported for.
    #[arg(long)]
    pub model: PathBuf,
    /// Trainer.
    #[arg(long, value_enum, default_value_t = TrainEngine::Candle)]
    pub engine: TrainEngine,
    /// --engine trl: the same base as a Hugging Face model (Hub id or local folder).
    #[arg(long)]
    pub hf_model: Option<String>,
    /// --engine trl: run `trl sft` now (the `trl` program on PATH, or --trl-bin),
    /// then import its adapter to <out>/adapter.gguf. A rerun resumes from TRL's newest checkpoint.
    #[arg(long)]
    pub launch: bool,
    /// --engine trl: the TRL program to run.
    #[arg(long, default_value = "trl")]
    pub trl_bin: PathBuf,
    /// --engine trl: extra `trl sft` arguments, appended after the config
    /// (e.g. --trl-arg=--bf16 --trl-arg=false); repeatable.
    #[arg(long = "trl-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub trl_args: Vec<String>,
    /// What to learn.
    #[arg(long, value_enum)]
    pub data: TrainData,
    /// Seed pairs JSONL (instruction + response).
    #[arg(long)]
    pub seeds: Option<PathBuf>,
    /// Chat JSONL with `messages` ending in the assistant's answer (repeatable; forward only).
    #[arg(long)]
    pub dataset: Vec<PathBuf>,
    /// Humpback's system tags (forward): seed pairs get "Answer in the style of an AI Assistant.",
    /// dataset pairs "Answer with knowledge from web search.".
    #[arg(long)]
    pub system_tags: bool,
    /// Output folder (rerun the same command to resume after a kill).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Training settings TOML (keys of `--print-config`).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Override a setting: --set lora.rank=16 (repeatable; value is a TOML literal).
    #[arg(short = 's', long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// CPU threads for the matrix kernels (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print the effective settings as TOML and exit.
    #[arg(long)]
    pub print_config: bool,
    /// No progress bar.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum AdapterCmd {
    /// Convert a PEFT LoRA folder (adapter_model.safetensors + adapter_config.json) to a llama.cpp adapter GGUF.
    Import {
        /// The PEFT folder.
        #[arg(long)]
        peft: PathBuf,
        /// The base model GGUF it was trained on (for the architecture and head layout).
        #[arg(long)]
        model: PathBuf,
        /// Adapter GGUF to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
pub struct SelfAlignArgs {
    /// Base model (--model), corpus (--input), root folder (--out), run settings.
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub seeds: SeedsArgs,
    /// Curation rounds after M_0's (each trains M_i on seed + the curated pairs, then re-curates).
    #[arg(long, default_value_t = 1)]
    pub iterations: usize,
    /// Curation score a pair needs to train the next model (5 = Humpback's A5, 4 = A4).
    #[arg(long, default_value_t = 5)]
    pub keep: u8,
    /// Training settings TOML for every model (keys of `backforth train --print-config`).
    #[arg(long)]
    pub train_config: Option<PathBuf>,
    /// Override a training setting: --train-set max_steps=100 (repeatable).
    #[arg(long = "train-set", value_name = "KEY=VALUE")]
    pub train_set: Vec<String>,
}

impl SlurmArgs {
    /// The configuration every shard runs with.
    pub fn config(&self) -> Result<Config> {
        let mut o = self.seeds.overrides();
        o.extend(self.stages.overrides());
        self.common.config_with(o)
    }
}

impl K8sArgs {
    /// The configuration every shard runs with.
    pub fn config(&self) -> Result<Config> {
        let mut o = self.seeds.overrides();
        o.extend(self.stages.overrides());
        self.common.config_with(o)
    }
}

impl BatchArgs {
    /// The configuration with every flag applied.
    pub fn config(&self) -> Result<Config> {
        self.common.config_with(self.seeds.overrides())
    }
}

impl SelfAlignArgs {
    /// The configuration with every flag applied.
    pub fn config(&self) -> Result<Config> {
        self.common.config_with(self.seeds.overrides())
    }
}

impl ConfigCmdArgs {
    /// The configuration with every flag applied.
    pub fn config(&self) -> Result<Config> {
        let mut o = self.seeds.overrides();
        o.extend(self.stages.overrides());
        self.common.config_with(o)
    }
}
