//! The run configuration: one TOML file, every key overridable with
//! `--set section.key=value` (value parsed as a TOML literal, else a string).
//! Unknown keys are errors, so typos do not pass silently.
//!
//! [`Config`] composes the sections; each section is defined beside the code
//! that owns it: `[input]`, `[segment]`, `[filter]`, `[dedup]`, `[decontam]`
//! in `backforth-corpus`; `[model]`, `[backend]`, `[http]`, `[cache]` in
//! `backforth-inference`; the method's own sections (`[run]`, `[seeds]`,
//! `[output]`, `[export]` and one [`StageConfig`] per stage) here.

pub use crate::checks::ChecksConfig;
pub use crate::record::Stage;
use anyhow::{bail, Context, Result};
use backforth_corpus::decontam::DecontamConfig;
use backforth_corpus::dedup::DedupConfig;
use backforth_corpus::filter::FilterConfig;
use backforth_corpus::readers::ReaderOptions;
use backforth_corpus::segment::SegmentConfig;
pub use backforth_inference::config::{
    BackendConfig, BackendKind, CacheConfig, GrammarField, HttpApi, HttpConfig, ModelConfig,
};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Output location.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Run folder (created); holds documents.jsonl, stages/*.jsonl, dataset files, summary.json.
    pub dir: String,
    /// `prepare` also writes `candidates.parquet` (columns `id`, `text`,
    /// `source`, `line`, `metadata` as JSON text; zstd) for other tools.
    /// Needs the `parquet` feature.
    pub candidates_parquet: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            dir: "runs/default".into(),
            candidates_parquet: false,
        }
    }
}

/// Seed pairs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SeedsConfig {
    /// JSONL of {instruction, response}; required for few-shot backtranslation.
    pub path: String,
}

/// Which stages `run` executes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RunConfig {
    pub stages: Vec<Stage>,
    /// Run `prepare` (segment, filter, decontaminate, deduplicate; the
    /// `[segment]`, `[filter]`, `[dedup]`, `[decontam]` sections) inline on
    /// the input before the stages; false = every input document is a record.
    pub prepare: bool,
    /// Added to every record's input ordinal. Set by a shard of a sharded
    /// run (shard index × 2⁴⁰), never by hand, so that shard outputs
    /// concatenated in shard order stay in input order and their ordinals
    /// never collide. 0 = a local run.
    #[serde(skip_serializing_if = "is_zero")]
    pub ordinal_base: u64,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            stages: vec![Stage::Backtranslate, Stage::Curate, Stage::Rewrite],
            prepare: false,
            ordinal_base: 0,
        }
    }
}

/// How the backward model is realised (Li et al. 2023 §2.2).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackwardMode {
    /// An instruct model prompted with k seed pairs shown as (response → instruction) turns.
    #[default]
    Fewshot,
    /// A model fine-tuned on flipped seed pairs: the text alone is the prompt.
    Finetuned,
}

/// Settings shared by every generating stage. Defaults differ per stage
/// ([`StageConfig::defaults`]); [`Config::load`] fills missing keys from them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Template file path; empty = the built-in template for the stage.
    pub template: String,
    /// GGUF path for this stage only; empty = `model.path`.
    pub model: String,
    /// LoRA adapters for this stage's model (embedded backend); empty =
    /// `model.lora` when the stage runs on `model.path`, none otherwise.
    #[serde(default)]
    pub lora: Vec<String>,
    pub temperature: f32,
    pub top_p: f32,
    pub max_tokens: u32,
    /// Backtranslate: few-shot or fine-tuned backward model.
    pub mode: BackwardMode,
    /// Backtranslate (few-shot): number of seed pairs per prompt, drawn per record deterministically.
    pub k: usize,
    /// Backtranslate (few-shot): how the k seed pairs are chosen per document
    /// (`random`, or `nearest`: the most similar by TF-IDF).
    #[serde(default)]
    pub seed_selection: crate::seeds::SeedSelection,
    /// Backtranslate (few-shot): seeds whose response is longer than this many chars are not used as examples.
    pub max_seed_chars: usize,
    /// Backtranslate: instructions longer than this many chars are parse failures.
    pub max_instruction_chars: usize,
    /// Curate and rewrite: constrain the output with a GBNF grammar
    /// (`Reasoning:`/`Score: N`; `[RES]…[/RES]`). Embedded backend, or HTTP
    /// servers that accept grammars (`http.grammar_field`).
    pub grammar: bool,
    /// Curate/rewrite/distill: records with a curation score ≥ this are kept
    /// (back-and-forth keeps 5; Humpback A4 = 4, A5 = 5).
    pub keep_min_score: u8,
}

impl StageConfig {
    /// The defaults of one stage (METHOD: B&F sampling T=1.0, top-p 0.9 for
    /// backtranslation and rewriting; greedy for scoring).
    pub fn defaults(stage: Stage) -> Self {
        let base = StageConfig {
            template: String::new(),
            model: String::new(),
            lora: Vec::new(),
            temperature: 1.0,
            top_p: 0.9,
            max_tokens: 1024,
            mode: BackwardMode::Fewshot,
            k: 3,
            seed_selection: crate::seeds::SeedSelection::Random,
            max_seed_chars: 1200,
            max_instruction_chars: 1000,
            grammar: true,
            keep_min_score: 5,
        };
        match stage {
            Stage::Backtranslate => StageConfig {
                max_tokens: 128,
                ..base
            },
            Stage::Curate => StageConfig {
                temperature: 0.0,
                top_p: 1.0,
                max_tokens: 256,
                ..base
            },
            Stage::Verify => StageConfig {
                temperature: 0.0,
                top_p: 1.0,
                max_tokens: 192,
                ..base
            },
            Stage::Rewrite | Stage::Distill => base,
        }
    }

    /// The fields that change what the model generates, as a stable string for hashing.
    pub fn generation_fingerprint(&self, stage: Stage) -> String {
        let mut s = format!(
            "t={};p={};max={}",
            self.temperature, self.top_p, self.max_tokens
        );
        match stage {
            Stage::Backtranslate => {
                s += &format!(
                    ";mode={:?};k={};seedchars={};maxinstr={}",
                    self.mode, self.k, self.max_seed_chars, self.max_instruction_chars
                );
                // only when not the default, so keys of existing runs stay valid
                if self.seed_selection != crate::seeds::SeedSelection::Random {
                    s += &format!(";seeds={:?}", self.seed_selection);
                }
            }
            Stage::Curate | Stage::Verify => s += &format!(";grammar={}", self.grammar),
            _ => {}
        }
        s
    }
}

/// Export of the final dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    /// System message tagging web-derived examples (Humpback's data tag); empty = no system message.
    pub system_tag: String,
    /// Formats written beside each JSONL export: `"sharegpt"`
    /// (`<name>.sharegpt.jsonl`), `"parquet"` (`<name>.parquet`; needs the
    /// `parquet` feature). `"jsonl"` is always written.
    pub formats: Vec<String>,
    /// The input documents' licences, as the user states them (free text
    /// copied into the dataset card; backforth cannot know them).
    pub input_licenses: String,
}

impl Default for ExportConfig {
    fn default() -> Self {
        ExportConfig {
            system_tag: "Answer with knowledge from web search.".into(),
            formats: if cfg!(feature = "parquet") {
                vec!["jsonl".into(), "sharegpt".into(), "parquet".into()]
            } else {
                vec!["jsonl".into(), "sharegpt".into()]
            },
            input_licenses: String::new(),
        }
    }
}

macro_rules! stage_default {
    ($f:ident, $s:expr) => {
        fn $f() -> StageConfig {
            StageConfig::defaults($s)
        }
    };
}
stage_default!(bt_default, Stage::Backtranslate);
stage_default!(cu_default, Stage::Curate);
stage_default!(rw_default, Stage::Rewrite);
stage_default!(di_default, Stage::Distill);
stage_default!(ve_default, Stage::Verify);

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub input: ReaderOptions,
    #[serde(default)]
    pub seeds: SeedsConfig,
    #[serde(default)]
    pub output: OutputConfig,
    #[serde(default)]
    pub run: RunConfig,
    #[serde(default = "bt_default")]
    pub backtranslate: StageConfig,
    #[serde(default = "cu_default")]
    pub curate: StageConfig,
    #[serde(default = "rw_default")]
    pub rewrite: StageConfig,
    #[serde(default = "di_default")]
    pub distill: StageConfig,
    #[serde(default = "ve_default")]
    pub verify: StageConfig,
    #[serde(default)]
    pub export: ExportConfig,
    /// Relevance and grounding checks applied before export.
    #[serde(default)]
    pub checks: ChecksConfig,
    #[serde(default)]
    pub backend: BackendConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub cache: CacheConfig,
    #[serde(default)]
    pub segment: SegmentConfig,
    #[serde(default)]
    pub filter: FilterConfig,
    #[serde(default)]
    pub dedup: DedupConfig,
    #[serde(default)]
    pub decontam: DecontamConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: ModelConfig::default(),
            input: ReaderOptions::default(),
            seeds: SeedsConfig::default(),
            output: OutputConfig::default(),
            run: RunConfig::default(),
            backtranslate: bt_default(),
            curate: cu_default(),
            rewrite: rw_default(),
            distill: di_default(),
            verify: ve_default(),
            export: ExportConfig::default(),
            checks: ChecksConfig::default(),
            backend: BackendConfig::default(),
            http: HttpConfig::default(),
            cache: CacheConfig::default(),
            segment: SegmentConfig::default(),
            filter: FilterConfig::default(),
            dedup: DedupConfig::default(),
            decontam: DecontamConfig::default(),
        }
    }
}

fn merge(base: &mut toml::Value, over: toml::Value) {
    match (base, over) {
        (toml::Value::Table(b), toml::Value::Table(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(bv) if bv.is_table() && v.is_table() => merge(bv, v),
                    _ => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Parse `value` as a TOML literal (number, bool, array, quoted string); anything else is a plain string.
fn parse_value(value: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {value}")) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(value.into())),
        Err(_) => toml::Value::String(value.to_string()),
    }
}

/// Set `dotted.key` in a TOML tree. Errors: empty key or a non-table in the path.
pub fn set_path(root: &mut toml::Value, key: &str, value: &str) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("bad config key `{key}`");
    }
    let mut cur = root;
    for p in &parts[..parts.len() - 1] {
        let t = cur
            .as_table_mut()
            .with_context(|| format!("`{key}`: `{p}` is not a section"))?;
        cur = t
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(Default::default()));
    }
    let t = cur
        .as_table_mut()
        .with_context(|| format!("`{key}` is not inside a section"))?;
    t.insert(parts[parts.len() - 1].to_string(), parse_value(value));
    Ok(())
}

/// Any settings type layered as the run config is: `defaults`, then the
/// TOML file (if any), then `overrides` (`dotted.key=value`) in order.
/// Errors: unreadable file, TOML syntax, unknown keys, wrong types, bad
/// override syntax.
pub fn layered<T: Serialize + serde::de::DeserializeOwned>(
    defaults: T,
    file: Option<&Path>,
    overrides: &[String],
) -> Result<T> {
    let mut v = toml::Value::try_from(defaults)?;
    if let Some(f) = file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading config {}", f.display()))?;
        let t: toml::Value =
            toml::from_str(&text).with_context(|| format!("config {}", f.display()))?;
        merge(&mut v, t);
    }
    for o in overrides {
        let (k, val) = o
            .split_once('=')
            .with_context(|| format!("override `{o}` is not key=value"))?;
        set_path(&mut v, k.trim(), val.trim())?;
    }
    v.try_into().context("invalid configuration")
}

impl Config {
    /// Defaults, then the TOML file (if any), then `overrides` (`key=value`) in order.
    /// Errors: unreadable file, TOML syntax, unknown keys, wrong types, bad override syntax.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config> {
        let cfg: Config = layered(Config::default(), file, overrides)?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Range checks. Errors: the first bad value, named by key.
    pub fn validate(&self) -> Result<()> {
        for st in Stage::ALL {
            let c = self.stage(st);
            let n = st.name();
            anyhow::ensure!(c.temperature >= 0.0, "{n}.temperature must be ≥ 0");
            anyhow::ensure!(
                c.top_p > 0.0 && c.top_p <= 1.0,
                "{n}.top_p must be in (0, 1]"
            );
            anyhow::ensure!(c.max_tokens > 0, "{n}.max_tokens must be > 0");
            anyhow::ensure!(
                (1..=5).contains(&c.keep_min_score),
                "{n}.keep_min_score must be 1..=5"
            );
        }
        anyhow::ensure!(self.model.batch_size >= 1, "model.batch_size must be ≥ 1");
        anyhow::ensure!(self.model.context >= 256, "model.context must be ≥ 256");
        Ok(())
    }

    /// The settings of one stage.
    pub fn stage(&self, s: Stage) -> &StageConfig {
        match s {
            Stage::Backtranslate => &self.backtranslate,
            Stage::Curate => &self.curate,
            Stage::Rewrite => &self.rewrite,
            Stage::Distill => &self.distill,
            Stage::Verify => &self.verify,
        }
    }

    /// The model a stage runs on: its GGUF path (or the model name a server
    /// knows), followed by `+lora:<adapter>` for each LoRA adapter
    /// (`<stage>.lora`, else `model.lora` when the stage uses `model.path`).
    pub fn model_path(&self, s: Stage) -> String {
        let st = self.stage(s);
        let (base, inherited) = if st.model.is_empty() {
            (&self.model.path, &self.model.lora)
        } else {
            (&st.model, &Vec::new())
        };
        let lora = if st.lora.is_empty() {
            inherited
        } else {
            &st.lora
        };
        backforth_inference::model_ref::model_ref(base, lora)
    }

    /// The response-cache file in force.
    pub fn cache_path(&self) -> std::path::PathBuf {
        if self.cache.path.is_empty() {
            Path::new(&self.output.dir).join("cache.sqlite")
        } else {
            self.cache.path.clone().into()
        }
    }

    /// The configuration as TOML (what `run` saves as `config.toml` in the run folder).
    pub fn to_toml(&self) -> Result<String> {
        Ok(toml::to_string_pretty(self)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_roundtrip_and_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[model]\npath = \"m.gguf\"\nthreads = 3\n[curate]\nkeep_min_score = 4\n[input]\npaths = [\"a.jsonl\"]\n").unwrap();
        let c = Config::load(
            Some(&f),
            &[
                "model.threads=2".into(),
                "rewrite.temperature=0.5".into(),
                "output.dir=runs/x".into(),
                "run.stages=[\"backtranslate\",\"curate\"]".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.model.path, "m.gguf");
        assert_eq!(c.model.threads, 2);
        assert_eq!(c.curate.keep_min_score, 4);
        assert_eq!(c.curate.temperature, 0.0); // stage default kept
        assert_eq!(c.rewrite.temperature, 0.5);
        assert_eq!(c.output.dir, "runs/x");
        assert_eq!(c.run.stages, vec![Stage::Backtranslate, Stage::Curate]);
        assert_eq!(c.input.paths, vec!["a.jsonl"]);
        let again: Config = toml::from_str(&c.to_toml().unwrap()).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let e = Config::load(None, &["curate.keep_min_scor=4".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("keep_min_scor"), "{e:#}");
        assert!(Config::load(None, &["curate.keep_min_score=9".into()]).is_err());
        assert!(Config::load(None, &["rewrite.top_p=0".into()]).is_err());
        assert!(Config::load(None, &["no_equals".into()]).is_err());
        assert!(Config::load(None, &["model.threads=many".into()]).is_err());
        assert!(Config::load(None, &["run.stages=[\"nope\"]".into()]).is_err());
    }

    #[test]
    fn fingerprint_ignores_keep_threshold() {
        let a = StageConfig::defaults(Stage::Curate);
        let b = StageConfig {
            keep_min_score: 4,
            ..a.clone()
        };
        assert_eq!(
            a.generation_fingerprint(Stage::Curate),
            b.generation_fingerprint(Stage::Curate)
        );
        let c = StageConfig {
            temperature: 0.7,
            ..a.clone()
        };
        assert_ne!(
            a.generation_fingerprint(Stage::Curate),
            c.generation_fingerprint(Stage::Curate)
        );
    }
}
