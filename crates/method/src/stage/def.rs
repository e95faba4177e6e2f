//! One definition per stage: its input and eligibility, template and
//! grammar, parser, where its result goes in the record, its sampling and
//! the fingerprint that enters its stage key. The runner
//! ([`crate::stages`]), the pipeline, the store, batch files, cache keys
//! and exports know a stage only through its [`StageDef`]; the
//! [`StagePlan`] holds the five built-in definitions and those of the
//! config's `[stage.NAME]` sections in an order where every stage comes
//! after its input.

use crate::config::{BackwardMode, Config};
use crate::parse;
use crate::prompt::{curate_grammar, REWRITE_GRAMMAR, VERIFY_GRAMMAR};
use crate::record::{Record, Stage};
use crate::seeds::Seed;
use crate::stage::custom::{CustomStageConfig, ExportAs, OutputParser, When};
use crate::stage::settings::GenSettings;
use anyhow::{bail, Context, Result};
use backforth_inference::{FinishReason, GenOutput};

/// Names a user-defined stage cannot take: the built-in stages and the
/// files at the top of a run folder.
pub const RESERVED_NAMES: &[&str] = &[
    "documents", "dataset", "curated", "distilled", "checks", "summary", "candidates", "config",
    "analysis", "report", "stages",
];

/// What a stage is: a built-in one, or one defined in the config.
#[derive(Debug, Clone)]
pub enum StageKind {
    Builtin(Stage),
    /// The section and its grammar file's text (read once, when the plan is built).
    Custom(Box<CustomStageConfig>, Option<String>),
}

/// One stage, everything the runner needs to know about it.
#[derive(Debug, Clone)]
pub struct StageDef {
    /// Snake-case name: the stage file stem (`stages/<name>.jsonl`), the
    /// summary key, the seed-derivation label.
    pub name: String,
    pub kind: StageKind,
    /// The stage whose records it reads; `None` = `documents.jsonl`.
    pub input: Option<String>,
    /// Template, model and sampling.
    pub gen: GenSettings,
}

/// A parsed output: the value kept in [`crate::record::Generation::value`],
/// a score for scoring stages, a verdict for the verify stage.
pub struct Interpreted {
    pub value: String,
    pub score: Option<u8>,
    pub verdict: Option<parse::Verification>,
    /// A cut output kept in part (`rewrite.salvage_cut`).
    pub salvaged: bool,
    /// Several pairs per document: the pairs (else empty).
    pub pairs: Vec<crate::pairs::PairSpan>,
}

impl StageDef {
    /// The definition of a built-in stage under `cfg`.
    pub fn builtin(s: Stage, cfg: &Config) -> StageDef {
        StageDef {
            name: s.name().to_string(),
            kind: StageKind::Builtin(s),
            input: s.upstream().map(|u| u.name().to_string()),
            gen: cfg.gen(s.name()).expect("built-in stage has a section"),
        }
    }

    /// The definition of a `[stage.NAME]` section; reads its grammar file.
    /// Errors: a reserved or malformed name, no template, an unreadable grammar file.
    pub fn custom(name: &str, c: &CustomStageConfig) -> Result<StageDef> {
        if Stage::builtin(name).is_some() || RESERVED_NAMES.contains(&name) {
            bail!("[stage.{name}]: `{name}` is a built-in stage or a run-folder file name; choose another name");
        }
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            bail!("[stage.{name}]: stage names are lower-case letters, digits and `_` (they name files)");
        }
        if c.template.is_empty() {
            bail!("[stage.{name}]: `template` (a template file) is required");
        }
        anyhow::ensure!(c.max_tokens > 0, "stage.{name}.max_tokens must be > 0");
        anyhow::ensure!(c.temperature >= 0.0, "stage.{name}.temperature must be ≥ 0");
        anyhow::ensure!(
            c.top_p > 0.0 && c.top_p <= 1.0,
            "stage.{name}.top_p must be in (0, 1]"
        );
        if let OutputParser::Score { min, max, .. } = &c.parser {
            anyhow::ensure!(min <= max, "stage.{name}.parser: min > max");
        }
        let grammar = if c.grammar.is_empty() {
            None
        } else if let Some(b) = c.grammar.strip_prefix(crate::prompt::BUILTIN_PREFIX) {
            Some(match b {
                "res" => REWRITE_GRAMMAR.to_string(),
                "score" => curate_grammar(c.max_tokens),
                "verify" => VERIFY_GRAMMAR.to_string(),
                other => bail!("stage.{name}.grammar: no built-in grammar `{other}` (res, score, verify)"),
            })
        } else {
            Some(
                std::fs::read_to_string(&c.grammar)
                    .with_context(|| format!("stage.{name}.grammar: reading {}", c.grammar))?,
            )
        };
        let input = (c.input != "documents").then(|| c.input.clone());
        if input.is_none() && c.when == When::Kept {
            bail!("stage.{name}: when = \"kept\" needs a curated input (input = \"curate\" or a stage after it), not the documents");
        }
        Ok(StageDef {
            name: name.to_string(),
            input,
            gen: c.gen(),
            kind: StageKind::Custom(Box::new(c.clone()), grammar),
        })
    }

    /// The built-in stage this is, if it is one.
    pub fn builtin_stage(&self) -> Option<Stage> {
        match self.kind {
            StageKind::Builtin(s) => Some(s),
            StageKind::Custom(..) => None,
        }
    }

    /// Where a user-defined stage's results go at export (built-ins: `None`).
    pub fn export_as(&self) -> Option<ExportAs> {
        match &self.kind {
            StageKind::Custom(c, _) => Some(c.export),
            StageKind::Builtin(_) => None,
        }
    }

    /// Curate with `curate.skip_failing_instructions` (and the checks on):
    /// the codes of the lexical instruction checks the export would fail
    /// this record's instruction on, so no request is sent for it; empty
    /// otherwise, and for every other stage.
    pub fn skip_reasons(&self, r: &Record, cfg: &Config) -> Vec<&'static str> {
        if self.builtin_stage() != Some(Stage::Curate)
            || !cfg.curate.skip_failing_instructions
            || !cfg.checks.enabled
        {
            return vec![];
        }
        let Some(instruction) = r.instruction() else { return vec![] };
        let source = crate::checks::SourceIndex::new(&r.text);
        crate::checks::check(&cfg.checks, instruction, None, &source)
            .reasons
            .iter()
            .map(|x| x.code())
            .collect()
    }

    /// Whether the stage applies to an input record (given the outputs it carries).
    pub fn eligible(&self, r: &Record, cfg: &Config) -> bool {
        let kept = |r: &Record| r.kept(cfg.curate.keep_min_score);
        match &self.kind {
            StageKind::Builtin(s) => match s {
                Stage::Backtranslate => true,
                Stage::Curate => r.instruction().is_some() && self.skip_reasons(r, cfg).is_empty(),
                Stage::Rewrite | Stage::Distill => kept(r),
                Stage::Verify => kept(r) && r.rewrite.as_ref().is_some_and(|g| g.value.is_some()),
            },
            StageKind::Custom(c, _) => {
                let parsed = || {
                    self.input
                        .as_deref()
                        .map_or(true, |i| r.generation(i).is_some_and(|g| g.value.is_some()))
                };
                match c.when {
                    When::All => true,
                    When::Parsed => parsed(),
                    When::Kept => parsed() && kept(r),
                }
            }
        }
    }

    /// The built-in template name used when `template` is empty.
    pub fn default_template(&self, cfg: &Config) -> &'static str {
        match self.kind {
            StageKind::Builtin(Stage::Backtranslate) if cfg.backtranslate.pairs_per_document > 1 => {
                "backtranslate_pairs"
            }
            StageKind::Builtin(Stage::Backtranslate) => match cfg.backtranslate.mode {
                BackwardMode::Fewshot => "backtranslate_fewshot",
                BackwardMode::Finetuned => "backtranslate_finetuned",
                BackwardMode::Zeroshot => "backtranslate_zeroshot",
            },
            StageKind::Builtin(s) => s.name(),
            StageKind::Custom(..) => "",
        }
    }

    /// The GBNF grammar its requests carry, if any. Several pairs per
    /// document always carry theirs (the format is ours, not the model's).
    pub fn grammar(&self, cfg: &Config) -> Option<String> {
        let pairs = cfg.backtranslate.pairs_per_document;
        if self.builtin_stage() == Some(Stage::Backtranslate) && pairs > 1 {
            return Some(crate::pairs::grammar(pairs));
        }
        if !self.gen.grammar {
            return None;
        }
        match &self.kind {
            StageKind::Builtin(Stage::Curate) => Some(curate_grammar(self.gen.max_tokens)),
            StageKind::Builtin(Stage::Rewrite) => Some(REWRITE_GRAMMAR.to_string()),
            StageKind::Builtin(Stage::Verify) => Some(VERIFY_GRAMMAR.to_string()),
            StageKind::Builtin(_) => None,
            StageKind::Custom(_, g) => g.clone(),
        }
    }

    /// The settings that change what the model generates or how it is read,
    /// as a stable string for the stage key (template, model, seeds, grammar
    /// and upstream key are hashed beside it). For built-in stages the
    /// string is the one earlier releases hashed, so their run folders resume.
    pub fn fingerprint(&self, cfg: &Config) -> String {
        let g = &self.gen;
        // f32 as requests carry them and as earlier releases printed them
        let mut s = format!(
            "t={};p={};max={}",
            g.temperature as f32, g.top_p as f32, g.max_tokens
        );
        match &self.kind {
            StageKind::Builtin(Stage::Backtranslate) => {
                let b = &cfg.backtranslate;
                s += &format!(
                    ";mode={:?};k={};seedchars={};maxinstr={}",
                    b.mode, b.k, b.max_seed_chars, b.max_instruction_chars
                );
                // only when not the default, so keys of existing runs stay valid
                if b.seed_selection != crate::seeds::SeedSelection::Random {
                    s += &format!(";seeds={:?}", b.seed_selection);
                }
                if b.pairs_per_document > 1 {
                    s += &format!(";pairs={}", b.pairs_per_document);
                }
            }
            StageKind::Builtin(Stage::Curate) => {
                s += &format!(";grammar={}", g.grammar);
                // only when on (keys of existing runs stay): which pairs are
                // curated then depends on the instruction checks' settings
                if cfg.curate.skip_failing_instructions && cfg.checks.enabled {
                    let c = &cfg.checks;
                    s += &format!(
                        ";skip(rel={},topic={},nonin={})",
                        c.min_relevance, c.min_topic_words, c.non_instructions
                    );
                }
            }
            StageKind::Builtin(Stage::Verify) => s += &format!(";grammar={}", g.grammar),
            StageKind::Builtin(Stage::Rewrite) => {
                // only when not the default, so keys of existing runs stay valid
                let r = &cfg.rewrite;
                if r.max_tokens_per_document_token > 0.0 {
                    s += &format!(";budget={}", r.max_tokens_per_document_token);
                }
                if r.salvage_cut {
                    s += ";salvage";
                }
            }
            StageKind::Builtin(_) => {}
            StageKind::Custom(c, _) => {
                s += &format!(
                    ";custom;parser={}",
                    serde_json::to_string(&c.parser).unwrap_or_default()
                )
            }
        }
        s
    }

    /// The generation budget for one record: `gen.max_tokens`, or for the
    /// rewrite with `rewrite.max_tokens_per_document_token` > 0 a budget
    /// that follows the document's length (characters / 4 as its tokens),
    /// at least 128 and at most `gen.max_tokens`.
    pub fn max_tokens(&self, r: &Record, cfg: &Config) -> u32 {
        let ratio = cfg.rewrite.max_tokens_per_document_token;
        if self.builtin_stage() == Some(Stage::Rewrite) && ratio > 0.0 {
            let doc_tokens = r.text.chars().count() as f64 / 4.0;
            let budget = (ratio * doc_tokens).ceil().max(128.0);
            (budget as u32).min(self.gen.max_tokens)
        } else {
            self.gen.max_tokens
        }
    }

    /// The template variables for one record. `seeds`: the few-shot
    /// examples (few-shot backtranslation only).
    pub fn context(&self, r: &Record, seeds: &[&Seed], cfg: &Config) -> serde_json::Value {
        let instruction = r.instruction().unwrap_or_default();
        let rewrite = r.rewrite.as_ref().and_then(|g| g.value.as_deref());
        match &self.kind {
            StageKind::Builtin(Stage::Backtranslate) if cfg.backtranslate.pairs_per_document > 1 => {
                serde_json::json!({
                    "passages": crate::pairs::passages_context(&r.text),
                    "pairs": cfg.backtranslate.pairs_per_document,
                    "seeds": seeds,
                })
            }
            StageKind::Builtin(Stage::Backtranslate) => match cfg.backtranslate.mode {
                BackwardMode::Fewshot => serde_json::json!({"text": r.text, "seeds": seeds}),
                BackwardMode::Finetuned | BackwardMode::Zeroshot => serde_json::json!({"text": r.text}),
            },
            StageKind::Builtin(Stage::Curate | Stage::Rewrite) => {
                serde_json::json!({"text": r.text, "instruction": instruction})
            }
            StageKind::Builtin(Stage::Distill) => serde_json::json!({"instruction": instruction}),
            StageKind::Builtin(Stage::Verify) => serde_json::json!({
                "text": r.text,
                "instruction": instruction,
                "response": rewrite.unwrap_or_default(),
            }),
            StageKind::Custom(..) => {
                let outputs: serde_json::Map<String, serde_json::Value> = r
                    .outputs
                    .iter()
                    .map(|(k, g)| (k.clone(), serde_json::json!(g.value)))
                    .collect();
                serde_json::json!({
                    "id": r.id,
                    "text": r.text,
                    "metadata": r.metadata,
                    "instruction": r.instruction(),
                    "score": r.score(),
                    "response": rewrite,
                    "distillation": r.distillation.as_ref().and_then(|g| g.value.as_deref()),
                    "outputs": outputs,
                })
            }
        }
    }

    /// Read one output (for the record `r` it answers) strictly. Errors:
    /// the reason, kept with the raw text.
    pub fn interpret(&self, r: &Record, out: &GenOutput, cfg: &Config) -> Result<Interpreted, String> {
        let plain = |value: String| Interpreted { value, score: None, verdict: None, salvaged: false, pairs: vec![] };
        match &self.kind {
            StageKind::Builtin(Stage::Backtranslate) if cfg.backtranslate.pairs_per_document > 1 => {
                let b = &cfg.backtranslate;
                let ps = crate::pairs::passages(&r.text);
                let parsed = crate::pairs::parse_pairs(&out.text, out.finish, ps.len(), b.pairs_per_document, b.max_instruction_chars)?;
                let pairs = crate::pairs::spans(&r.text, &ps, parsed);
                let value = pairs.iter().map(|p| p.instruction.as_str()).collect::<Vec<_>>().join("\n");
                Ok(Interpreted { pairs, ..plain(value) })
            }
            StageKind::Builtin(Stage::Backtranslate) => parse::clean_instruction(
                &out.text,
                out.finish,
                cfg.backtranslate.max_instruction_chars,
            )
            .map(plain),
            StageKind::Builtin(Stage::Curate) => parse::parse_score(&out.text).map(|p| Interpreted {
                value: p.reasoning,
                score: Some(p.score),
                verdict: None,
                salvaged: false,
                pairs: vec![],
            }),
            StageKind::Builtin(Stage::Rewrite) => match parse::extract_res(&out.text, out.finish) {
                Err(e) if cfg.rewrite.salvage_cut && out.finish == FinishReason::Length => {
                    parse::salvage_res(&out.text)
                        .map(|value| Interpreted { value, score: None, verdict: None, salvaged: true, pairs: vec![] })
                        .map_err(|why| format!("{e}; not salvaged: {why}"))
                }
                r => r.map(plain),
            },
            StageKind::Builtin(Stage::Verify) => parse::parse_verification(&out.text).map(|v| Interpreted {
                value: if v.answers { "yes" } else { "no" }.to_string(),
                score: None,
                verdict: Some(v),
                salvaged: false,
                pairs: vec![],
            }),
            StageKind::Builtin(Stage::Distill) => {
                let t = out.text.trim();
                if out.finish == FinishReason::Length {
                    Err("output cut at max_tokens".into())
                } else if t.is_empty() {
                    Err("empty response".into())
                } else {
                    Ok(plain(t.to_string()))
                }
            }
            StageKind::Custom(c, _) => c.parser.parse(&out.text, out.finish).map(|p| Interpreted {
                value: p.value,
                score: p.score,
                verdict: None,
                salvaged: false,
                pairs: vec![],
            }),
        }
    }
}

/// Every stage the config defines, in an order where each comes after its input.
#[derive(Debug, Clone)]
pub struct StagePlan {
    pub defs: Vec<StageDef>,
}

impl StagePlan {
    /// The five built-in stages, then the `[stage.NAME]` sections ordered by
    /// their inputs. Errors: a bad section, an unknown input, a cycle.
    pub fn new(cfg: &Config) -> Result<StagePlan> {
        let mut defs: Vec<StageDef> = Stage::ALL.into_iter().map(|s| StageDef::builtin(s, cfg)).collect();
        let mut pending: Vec<StageDef> = cfg
            .stage
            .iter()
            .map(|(n, c)| StageDef::custom(n, c))
            .collect::<Result<_>>()?;
        while !pending.is_empty() {
            let before = pending.len();
            let mut i = 0;
            while i < pending.len() {
                let ready = pending[i]
                    .input
                    .as_deref()
                    .map_or(true, |inp| defs.iter().any(|d| d.name == inp));
                if ready {
                    defs.push(pending.remove(i));
                } else {
                    i += 1;
                }
            }
            if pending.len() == before {
                let d = &pending[0];
                let inp = d.input.as_deref().unwrap_or_default();
                if pending.iter().any(|p| p.name == inp) {
                    bail!("stage.{}: its inputs form a cycle ({})", d.name, pending.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", "));
                }
                bail!(
                    "stage.{}.input: no stage named `{inp}` (documents, {})",
                    d.name,
                    defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
                );
            }
        }
        Ok(StagePlan { defs })
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&StageDef> {
        self.defs.iter().find(|d| d.name == name)
    }

    /// The definition named `name`. Errors: no such stage (the message lists them).
    pub fn require(&self, name: &str) -> Result<&StageDef> {
        self.get(name).with_context(|| {
            format!(
                "unknown stage `{name}` (stages: {})",
                self.defs.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        })
    }

    /// `names` in plan order, deduplicated. Errors: an unknown name.
    pub fn select(&self, names: &[String]) -> Result<Vec<&StageDef>> {
        for n in names {
            self.require(n)?;
        }
        Ok(self.defs.iter().filter(|d| names.contains(&d.name)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(chars: usize) -> Record {
        Record::new("d".into(), 0, Default::default(), "x".repeat(chars), serde_json::json!({}))
    }

    #[test]
    fn the_rewrite_budget_follows_the_document() {
        let mut cfg = Config::default();
        cfg.rewrite.max_tokens = 640;
        let off = StageDef::builtin(Stage::Rewrite, &cfg);
        assert_eq!(off.max_tokens(&doc(400), &cfg), 640);
        let before = off.fingerprint(&cfg);
        assert!(!before.contains("budget"), "keys of existing runs stay");
        cfg.rewrite.max_tokens_per_document_token = 1.5;
        let on = StageDef::builtin(Stage::Rewrite, &cfg);
        assert_eq!(on.max_tokens(&doc(400), &cfg), 150); // 100 tokens × 1.5
        assert_eq!(on.max_tokens(&doc(40), &cfg), 128); // the floor
        assert_eq!(on.max_tokens(&doc(40_000), &cfg), 640); // the cap
        assert_ne!(on.fingerprint(&cfg), before);
        // other stages keep their own max_tokens
        let curate = StageDef::builtin(Stage::Curate, &cfg);
        assert_eq!(curate.max_tokens(&doc(400), &cfg), cfg.curate.max_tokens);
    }
}
