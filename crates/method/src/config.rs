//! The run configuration: one TOML file, every key overridable with
//! `--set section.key=value` (value parsed as a TOML literal, else a string).
//! Unknown keys are errors, so typos do not pass silently.
//!
//! [`Config`] composes the sections; each section is defined beside the code
//! that owns it: `[input]`, `[segment]`, `[filter]`, `[dedup]`, `[decontam]`
//! in `backforth-corpus`; `[model]`, `[backend]`, `[http]`, `[cache]` in
//! `backforth-inference`; the method's own sections (`[run]`, `[seeds]`,
//! `[output]`, `[export]`) here, the built-in stages' sections in
//! [`crate::stage::settings`] (one type per stage, only the keys it reads)
//! and stages defined in the config (`[stage.NAME]`) in
//! [`crate::stage::custom`].

pub use crate::checks::ChecksConfig;
pub use crate::record::Stage;
pub use crate::stage::custom::CustomStageConfig;
pub use crate::stage::settings::{
    BackwardMode, BacktranslateConfig, CurateConfig, DistillConfig, GenSettings, RewriteConfig,
    VerifyConfig,
};
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
    /// Stage names, run in plan order: built-in (`backtranslate`, `curate`,
    /// `rewrite`, `verify`, `distill`) or defined in a `[stage.NAME]` section.
    pub stages: Vec<String>,
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
    /// Stream records through the stages: a record's next stage is asked
    /// for as soon as its previous one is written, all stages' requests
    /// share the backend's slots (later stages first) instead of each stage
    /// running over the whole input before the next starts. Same stage
    /// files, keys and exports (byte-identical at `model.batch_size = 1`
    /// and `model.prefix_reuse = false`); needs every stage run on one model
    /// (otherwise they run one after another, with a warning).
    pub streaming: bool,
}

fn is_zero(x: &u64) -> bool {
    *x == 0
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            stages: vec!["backtranslate".into(), "curate".into(), "rewrite".into()],
            prepare: false,
            ordinal_base: 0,
            streaming: false,
        }
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
    #[serde(default)]
    pub backtranslate: BacktranslateConfig,
    #[serde(default)]
    pub curate: CurateConfig,
    #[serde(default)]
    pub rewrite: RewriteConfig,
    #[serde(default)]
    pub distill: DistillConfig,
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Stages defined in the config, by name (`[stage.NAME]`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub stage: std::collections::BTreeMap<String, CustomStageConfig>,
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
    /// The learned document filter applied by `prepare` (`[doc_filter]`).
    #[serde(default)]
    pub doc_filter: crate::docfilter::DocFilterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            model: ModelConfig::default(),
            input: ReaderOptions::default(),
            seeds: SeedsConfig::default(),
            output: OutputConfig::default(),
            run: RunConfig::default(),
            backtranslate: BacktranslateConfig::default(),
            curate: CurateConfig::default(),
            rewrite: RewriteConfig::default(),
            distill: DistillConfig::default(),
            verify: VerifyConfig::default(),
            stage: Default::default(),
            export: ExportConfig::default(),
            checks: ChecksConfig::default(),
            backend: BackendConfig::default(),
            http: HttpConfig::default(),
            cache: CacheConfig::default(),
            segment: SegmentConfig::default(),
            filter: FilterConfig::default(),
            dedup: DedupConfig::default(),
            decontam: DecontamConfig::default(),
            doc_filter: Default::default(),
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
        merge(&mut v, read_toml(f)?);
    }
    apply_overrides(&mut v, overrides)?;
    v.try_into().context("invalid configuration")
}

/// A TOML file as a tree. Errors: unreadable file, TOML syntax (named by file).
fn read_toml(f: &Path) -> Result<toml::Value> {
    let text =
        std::fs::read_to_string(f).with_context(|| format!("reading config {}", f.display()))?;
    toml::from_str(&text).with_context(|| format!("config {}", f.display()))
}

/// Apply `dotted.key=value` overrides in order. Errors: not key=value, a bad key.
fn apply_overrides(v: &mut toml::Value, overrides: &[String]) -> Result<()> {
    for o in overrides {
        let (k, val) = o
            .split_once('=')
            .with_context(|| format!("override `{o}` is not key=value"))?;
        set_path(v, k.trim(), val.trim())?;
    }
    Ok(())
}

/// Keys (or whole sections) that change neither what is generated (the
/// stage keys) nor the exports of a given set of stage files, with what they
/// do instead. `tests/config_keys.rs` checks that every other key printed by
/// `backforth config` changes one of the two, and that these change neither.
pub const KEYS_OUTSIDE_OUTPUTS: &[(&str, &str)] = &[
    ("model.threads", "CPU threads: speed only"),
    ("model.batch_size", "sequences decoded together: speed (outputs are bit-reproducible across runs only at 1)"),
    ("model.n_batch", "tokens per llama.cpp decode call: speed only"),
    ("model.prefix_reuse", "reuse of shared prompt prefixes in the KV cache: speed only"),
    ("model.context", "context per sequence: a prompt that does not fit fails (counted) instead of being answered"),
    ("output.dir", "where the run folder is"),
    ("output.candidates_parquet", "`prepare` also writes candidates.parquet"),
    ("run.stages", "which stages this invocation runs; a stage's key does not depend on which others run"),
    ("run.streaming", "the order requests are sent in: same stage files and keys (outputs byte-identical at batch size 1 without prefix reuse)"),
    ("backend", "which engine answers: the model id it reports enters the stage keys"),
    ("http", "server address, protocol and client behaviour: the model id the server reports enters the stage keys; prices only fill summary costs"),
    ("cache", "the response cache: answers are the same, faster"),
];

/// Keys that act only where a model-backed check runs, so no stage files
/// alone can show them: (key, what it needs). Covered by the tests that run
/// those checks (`crates/cli/tests/grounding.rs`, `tests/e2e.rs`).
pub const KEYS_ACTING_WITH_A_CHECK_MODEL: &[(&str, &str)] = &[
    ("checks.use_verify", "the verify stage's verdicts (a verify stage ran)"),
    ("checks.max_unsupported_claims", "the verify stage's verdicts (a verify stage ran)"),
    ("checks.min_similarity", "checks.embedding_model"),
    ("checks.min_sentence_support", "checks.grounding_model"),
    ("checks.min_instruction_relevance", "checks.grounding_model"),
    ("doc_filter.embedding_model", "doc_filter.model (tests/doc_filter.rs)"),
    ("doc_filter.min_probability", "doc_filter.model (tests/doc_filter.rs)"),
];

/// Shipped presets: (name, TOML). Each file's comment names the paper,
/// the table row it reproduces and which export is the training set.
pub const PRESETS: &[(&str, &str)] = &[
    ("bf-filter-rewrite", include_str!("../presets/bf-filter-rewrite.toml")),
    ("bf-filter-only", include_str!("../presets/bf-filter-only.toml")),
    ("bf-rewrite-only", include_str!("../presets/bf-rewrite-only.toml")),
    ("bf-distill", include_str!("../presets/bf-distill.toml")),
    ("humpback-a4", include_str!("../presets/humpback-a4.toml")),
    ("humpback-a5", include_str!("../presets/humpback-a5.toml")),
    ("longform", include_str!("../presets/longform.toml")),
    ("kun-polish", include_str!("../presets/kun-polish.toml")),
    ("nemotron-rephrase", include_str!("../presets/nemotron-rephrase.toml")),
    ("doc-rubric", include_str!("../presets/doc-rubric.toml")),
    ("multi-pair", include_str!("../presets/multi-pair.toml")),
];

/// The TOML of a shipped preset. Errors: unknown name (the message lists them).
pub fn preset_source(name: &str) -> Result<&'static str> {
    PRESETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .with_context(|| {
            format!(
                "unknown preset `{name}` (presets: {})",
                PRESETS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )
        })
}

/// Keys of the built-in stage sections, for the messages about misplaced keys.
fn section_keys(stage: Stage) -> Vec<String> {
    let v = match stage {
        Stage::Backtranslate => toml::Value::try_from(BacktranslateConfig::default()),
        Stage::Curate => toml::Value::try_from(CurateConfig::default()),
        Stage::Rewrite => toml::Value::try_from(RewriteConfig::default()),
        Stage::Distill => toml::Value::try_from(DistillConfig::default()),
        Stage::Verify => toml::Value::try_from(VerifyConfig::default()),
    };
    v.ok()
        .and_then(|v| v.as_table().map(|t| t.keys().cloned().collect()))
        .unwrap_or_default()
}

/// For `section.key` naming a key of another built-in stage: where it belongs.
fn misplaced_key(dotted: &str) -> Option<String> {
    let (section, key) = dotted.split_once('.')?;
    let stage = Stage::builtin(section)?;
    if section_keys(stage).iter().any(|k| k == key) {
        return None;
    }
    let owners: Vec<&str> = Stage::ALL
        .into_iter()
        .filter(|s| section_keys(*s).iter().any(|k| k == key))
        .map(|s| s.name())
        .collect();
    if owners.is_empty() {
        return None; // an unknown key: serde names it
    }
    Some(format!(
        "the {section} stage does not read `{key}`; it belongs to [{}]",
        owners.join("], [")
    ))
}

/// The value every stage section printed for `key` in the release before
/// per-stage sections (one shared type), when that release had the key.
fn legacy_default(key: &str) -> Option<toml::Value> {
    use toml::Value as V;
    Some(match key {
        "mode" => V::String("fewshot".into()),
        "k" => V::Integer(3),
        "seed_selection" => V::String("random".into()),
        "max_seed_chars" => V::Integer(1200),
        "max_instruction_chars" => V::Integer(1000),
        "grammar" => V::Boolean(true),
        "keep_min_score" => V::Integer(5),
        _ => return None,
    })
}

/// Drop from a config file's built-in stage sections the keys the section
/// does not read but the release before per-stage sections printed there
/// with its default value (one warning each). Errors: such a key with any
/// other value (it was meant to act, and never did): the message names
/// where it belongs.
fn drop_legacy_keys(t: &mut toml::Value, file: &str) -> Result<()> {
    for stage in Stage::ALL {
        let Some(sec) = t.get_mut(stage.name()).and_then(|v| v.as_table_mut()) else {
            continue;
        };
        let own = section_keys(stage);
        let stray: Vec<String> = sec
            .keys()
            .filter(|k| !own.contains(k) && legacy_default(k).is_some())
            .cloned()
            .collect();
        for k in stray {
            let dotted = format!("{}.{k}", stage.name());
            let msg = misplaced_key(&dotted).unwrap_or_default();
            if sec.get(&k) == legacy_default(&k).as_ref() {
                tracing::warn!("{file}: `{dotted}` ignored: {msg} (printed by an earlier release; it never had an effect)");
                sec.remove(&k);
            } else {
                bail!("{file}: `{dotted}`: {msg}");
            }
        }
    }
    Ok(())
}

impl Config {
    /// Defaults, then the TOML file (if any), then `overrides` (`key=value`) in order.
    ///
    /// A key a built-in stage does not read is refused with the section it
    /// belongs to — except that a file printed by a release before per-stage
    /// sections (which printed every stage key in every stage section) still
    /// loads: such a key with the value that release printed by default is
    /// dropped with one warning. Errors: unreadable file, TOML syntax,
    /// unknown keys, wrong types, bad override syntax, bad values.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<Config> {
        Config::load_preset(None, file, overrides)
    }

    /// [`Config::load`] with a shipped preset ([`PRESETS`]) laid over the
    /// defaults, under the file and the overrides. Errors: an unknown
    /// preset, and those of [`Config::load`].
    pub fn load_preset(
        preset: Option<&str>,
        file: Option<&Path>,
        overrides: &[String],
    ) -> Result<Config> {
        for o in overrides {
            if let Some((k, _)) = o.split_once('=') {
                if let Some(msg) = misplaced_key(k.trim()) {
                    bail!("--set {o}: {msg}");
                }
            }
        }
        let mut v = toml::Value::try_from(Config::default())?;
        if let Some(name) = preset {
            let src = preset_source(name)?;
            let t: toml::Value =
                toml::from_str(src).with_context(|| format!("preset {name}"))?;
            merge(&mut v, t);
        }
        if let Some(f) = file {
            let mut t = read_toml(f)?;
            drop_legacy_keys(&mut t, &f.display().to_string())?;
            merge(&mut v, t);
        }
        apply_overrides(&mut v, overrides)?;
        let cfg: Config = v.try_into().context("invalid configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Range checks, and every name in `run.stages` a stage. Errors: the
    /// first bad value, named by key.
    pub fn validate(&self) -> Result<()> {
        for st in Stage::ALL {
            let c = self.gen(st.name()).expect("built-in");
            let n = st.name();
            anyhow::ensure!(c.temperature >= 0.0, "{n}.temperature must be ≥ 0");
            anyhow::ensure!(
                c.top_p > 0.0 && c.top_p <= 1.0,
                "{n}.top_p must be in (0, 1]"
            );
            anyhow::ensure!(c.max_tokens > 0, "{n}.max_tokens must be > 0");
        }
        let pairs = self.backtranslate.pairs_per_document;
        anyhow::ensure!((1..=20).contains(&pairs), "backtranslate.pairs_per_document must be 1..=20");
        anyhow::ensure!(
            pairs == 1 || self.backtranslate.mode != BackwardMode::Finetuned,
            "backtranslate.pairs_per_document = {pairs} needs mode = \"fewshot\" or \"zeroshot\": a fine-tuned backward model writes one instruction for a whole text"
        );
        anyhow::ensure!(
            (1..=5).contains(&self.curate.keep_min_score),
            "curate.keep_min_score must be 1..=5"
        );
        for n in &self.run.stages {
            if Stage::builtin(n).is_none() && !self.stage.contains_key(n) {
                bail!(
                    "run.stages: unknown stage `{n}` (built-in: backtranslate, curate, rewrite, verify, distill; or define it in a [stage.{n}] section)"
                );
            }
        }
        anyhow::ensure!(self.model.batch_size >= 1, "model.batch_size must be ≥ 1");
        anyhow::ensure!(self.model.context >= 256, "model.context must be ≥ 256");
        Ok(())
    }

    /// The generation settings of the stage named `stage` (built-in or
    /// defined in the config); `None` for an unknown name.
    pub fn gen(&self, stage: &str) -> Option<GenSettings> {
        match Stage::builtin(stage) {
            Some(Stage::Backtranslate) => Some(self.backtranslate.gen()),
            Some(Stage::Curate) => Some(self.curate.gen()),
            Some(Stage::Rewrite) => Some(self.rewrite.gen()),
            Some(Stage::Distill) => Some(self.distill.gen()),
            Some(Stage::Verify) => Some(self.verify.gen()),
            None => self.stage.get(stage).map(CustomStageConfig::gen),
        }
    }

    /// The model a stage runs on: its GGUF path (or the model name a server
    /// knows), followed by `+lora:<adapter>` for each LoRA adapter
    /// (`<stage>.lora`, else `model.lora` when the stage uses `model.path`).
    /// An unknown stage name gets `model.path`.
    pub fn model_path(&self, stage: impl AsRef<str>) -> String {
        let (model, lora) = self
            .gen(stage.as_ref())
            .map(|g| (g.model, g.lora))
            .unwrap_or_default();
        let (base, inherited) = if model.is_empty() {
            (&self.model.path, &self.model.lora)
        } else {
            (&model, &Vec::new())
        };
        let lora = if lora.is_empty() { inherited } else { &lora };
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
        assert_eq!(c.run.stages, vec!["backtranslate", "curate"]);
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
        use crate::stage::def::StageDef;
        let mut cfg = Config::default();
        let a = StageDef::builtin(Stage::Curate, &cfg).fingerprint(&cfg);
        cfg.curate.keep_min_score = 4;
        assert_eq!(a, StageDef::builtin(Stage::Curate, &cfg).fingerprint(&cfg));
        cfg.curate.temperature = 0.7;
        assert_ne!(a, StageDef::builtin(Stage::Curate, &cfg).fingerprint(&cfg));
    }

    #[test]
    fn keys_of_other_stages_are_refused_with_where_they_belong() {
        let e = Config::load(None, &["rewrite.k=9".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("[backtranslate]"), "{e:#}");
        let e = Config::load(None, &["rewrite.keep_min_score=2".into()]).unwrap_err();
        assert!(format!("{e:#}").contains("[curate]"), "{e:#}");
        assert!(Config::load(None, &["distill.grammar=false".into()]).is_err());
        assert!(Config::load(None, &["curate.mode=\"finetuned\"".into()]).is_err());
        // a file of the earlier layout: defaults dropped, anything else refused
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "[rewrite]\nk = 3\nkeep_min_score = 5\ngrammar = false\n").unwrap();
        let c = Config::load(Some(&f), &[]).unwrap();
        assert!(!c.rewrite.grammar);
        std::fs::write(&f, "[rewrite]\nkeep_min_score = 2\n").unwrap();
        assert!(format!("{:#}", Config::load(Some(&f), &[]).unwrap_err()).contains("[curate]"));
    }

    #[test]
    fn presets_load_and_differ_from_the_defaults() {
        for (name, _) in PRESETS {
            let c = Config::load_preset(Some(name), None, &[]).unwrap();
            c.validate().unwrap();
        }
        let a4 = Config::load_preset(Some("humpback-a4"), None, &[]).unwrap();
        assert_eq!(a4.curate.keep_min_score, 4);
        assert_eq!(a4.backtranslate.mode, BackwardMode::Finetuned);
        // the file and the flags still win over the preset
        let c = Config::load_preset(Some("humpback-a4"), None, &["curate.keep_min_score=3".into()]).unwrap();
        assert_eq!(c.curate.keep_min_score, 3);
        assert!(Config::load_preset(Some("nope"), None, &[]).is_err());
    }

    #[test]
    fn preset_stages_build_and_their_templates_render() {
        use crate::stage::def::StagePlan;
        for (name, _) in PRESETS {
            let c = Config::load_preset(Some(name), None, &[]).unwrap();
            let plan = StagePlan::new(&c).unwrap();
            for st in &c.run.stages {
                let d = plan.require(st).unwrap();
                let t = crate::pipeline::load_template(&c, d).unwrap();
                let mut r = crate::record::Record::new(
                    "d1".into(),
                    0,
                    Default::default(),
                    "A document about tides. The moon pulls the sea.".into(),
                    serde_json::Value::Null,
                );
                // what the stages before it would have added
                let g = |v: &str, score: Option<u8>| crate::record::Generation {
                    value: Some(v.into()),
                    score,
                    parse: crate::record::ParseStatus::Ok,
                    raw: v.into(),
                    model: "m".into(),
                    sampling: crate::record::Sampling {
                        temperature: 0.0,
                        top_p: 1.0,
                        max_tokens: 1,
                        seed: 0,
                        stop: vec![],
                    },
                    template: "t".into(),
                    template_hash: "h".into(),
                    stage_key: "k".into(),
                    prompt_tokens: 0,
                    completion_tokens: 0,
                    finish_reason: "stop".into(),
                    verdict: None,
                    salvaged: false,
                    pairs: vec![],
                };
                r.backtranslation = Some(g("Why are there tides?", None));
                r.curation = Some(g("fine", Some(5)));
                let seeds = crate::seeds::Seed { instruction: "Q?".into(), response: "A.".into() };
                let msgs = t.render(d.context(&r, &[&seeds], &c)).unwrap_or_else(|e| panic!("{name}/{st}: {e:#}"));
                let all: String = msgs.iter().map(|m| m.content.clone()).collect();
                // every stage sees the document, except distillation (by design: the instruction only)
                let want = if st == "distill" { "Why are there tides?" } else { "The moon pulls the sea." };
                assert!(all.contains(want), "{name}/{st}: {all}");
            }
        }
        // no seeds needed for the zero-shot backward prompt
        let lf = Config::load_preset(Some("longform"), None, &[]).unwrap();
        assert_eq!(lf.backtranslate.mode, BackwardMode::Zeroshot);
    }

    #[test]
    fn floats_print_as_written() {
        let t = Config::default().to_toml().unwrap();
        assert!(t.contains("top_p = 0.9\n"), "{t}");
        assert!(!t.contains("0.89999"), "{t}");
    }
}
