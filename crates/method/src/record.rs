//! The one record type that flows through every stage.
//!
//! A [`Record`] starts as a document (or a segment of one) read from the
//! corpus and gains one [`Generation`] per stage: backtranslation (the
//! instruction x̂ for the text y, Li et al. 2023 §2.2), curation (a 1–5 score,
//! Li et al. 2023 §2.3), rewriting (ŷ grounded in y, Nguyen et al. 2024 §3) and
//! distillation (ŷ written without y, the baseline of Nguyen et al. 2024) and
//! verification (an LLM's check that ŷ answers x̂ within y; ours).
//! Records only ever gain fields: a stage never edits what an earlier stage wrote.

pub use backforth_corpus::SourceLoc;
pub use backforth_inference::Sampling;
use serde::{Deserialize, Serialize};

/// A built-in pipeline stage (stages defined in the config are known by
/// name only: [`crate::stage::StageDef`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// y → x̂ (Li et al. 2023 §2.2).
    Backtranslate,
    /// (x̂, y) → reasoning + score 1–5 (Li et al. 2023 §2.3).
    Curate,
    /// (x̂, y) → ŷ grounded in y (Nguyen et al. 2024 §3).
    Rewrite,
    /// (y, x̂, ŷ) → does ŷ answer x̂, which of its statements y does not
    /// back (an LLM check of the rewrite; our addition to the method).
    Verify,
    /// x̂ → response without y (the distillation baseline).
    Distill,
}

impl Stage {
    /// All stages in pipeline order.
    pub const ALL: [Stage; 5] = [
        Stage::Backtranslate,
        Stage::Curate,
        Stage::Rewrite,
        Stage::Verify,
        Stage::Distill,
    ];
    /// snake_case name, also the stage's output file stem.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Backtranslate => "backtranslate",
            Stage::Curate => "curate",
            Stage::Rewrite => "rewrite",
            Stage::Verify => "verify",
            Stage::Distill => "distill",
        }
    }
    /// The built-in stage of this name, if it is one.
    pub fn builtin(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.name() == name)
    }
    /// The stage whose output this stage reads (`None` = the documents).
    pub fn upstream(self) -> Option<Stage> {
        match self {
            Stage::Backtranslate => None,
            Stage::Curate => Some(Stage::Backtranslate),
            Stage::Rewrite | Stage::Distill => Some(Stage::Curate),
            Stage::Verify => Some(Stage::Rewrite),
        }
    }
}

impl AsRef<str> for Stage {
    fn as_ref(&self) -> &str {
        self.name()
    }
}

/// How a stage's model output was interpreted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ParseStatus {
    /// The output parsed; [`Generation::value`] holds the result.
    Ok,
    /// The model answered but the answer did not parse; `reason` says why and
    /// [`Generation::raw`] keeps the text.
    Failed { reason: String },
    /// The backend could not produce an answer at all (prompt too long,
    /// server error, ...).
    Error { error: String },
}

impl ParseStatus {
    /// True for [`ParseStatus::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, ParseStatus::Ok)
    }
}

/// One stage's output on one record, with full provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Generation {
    /// The parsed result (instruction or response text); `None` unless parse is ok.
    #[serde(default)]
    pub value: Option<String>,
    /// Curation score 1–5 (curation stage only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
    /// Parse outcome.
    pub parse: ParseStatus,
    /// The model's raw output text, always kept.
    pub raw: String,
    /// Model identifier as reported by the backend.
    pub model: String,
    /// Sampling parameters used.
    pub sampling: Sampling,
    /// Template name (file path or built-in name) and its content hash.
    pub template: String,
    /// blake3 of the template text, hex, 16 chars.
    pub template_hash: String,
    /// Hash of stage config + template + model + upstream key: records with a
    /// different key are stale and redone on resume.
    pub stage_key: String,
    /// Prompt tokens as counted by the backend.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Why generation ended: "stop", "length" or "error".
    pub finish_reason: String,
    /// Verify stage only: the parsed verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::parse::Verification>,
    /// The output was cut at its budget and kept in part (`rewrite.salvage_cut`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub salvaged: bool,
    /// Backtranslation with `backtranslate.pairs_per_document` > 1: the
    /// pairs the model wrote, each with its passage's range; readers expand
    /// the record into one record per pair ([`crate::pairs::fan_out`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<PairSpan>,
}

/// A document or segment plus everything the stages added to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Stable id: the document's own id, else `<file>:<line>` or the relative path.
    pub id: String,
    /// Position in input order (0-based), used to export in a stable order.
    pub ordinal: u64,
    /// Where the text came from.
    pub source: SourceLoc,
    /// The document text y.
    pub text: String,
    /// Dataset-specific metadata carried through untouched (Dolma `source`, `metadata`, ...).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
    /// Backtranslation: the instruction x̂.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backtranslation: Option<Generation>,
    /// Curation: reasoning + score.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub curation: Option<Generation>,
    /// Rewrite: the response ŷ grounded in y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<Generation>,
    /// Distillation: a response to x̂ written without seeing y.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distillation: Option<Generation>,
    /// Verification of the rewrite by an LLM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<Generation>,
    /// Outputs of stages defined in the config (`[stage.NAME]`), by stage
    /// name. Absent from records no such stage touched, so files of the
    /// built-in stages keep their layout.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub outputs: std::collections::BTreeMap<String, Generation>,
}

impl Record {
    /// A fresh record for a document read from the corpus.
    pub fn new(
        id: String,
        ordinal: u64,
        source: SourceLoc,
        text: String,
        metadata: serde_json::Value,
    ) -> Self {
        Record {
            id,
            ordinal,
            source,
            text,
            metadata,
            backtranslation: None,
            curation: None,
            rewrite: None,
            distillation: None,
            verification: None,
            outputs: Default::default(),
        }
    }

    /// The generation of the stage named `stage`: a built-in stage's own
    /// field, else the user-defined stage's entry in [`Record::outputs`].
    pub fn generation(&self, stage: &str) -> Option<&Generation> {
        match Stage::builtin(stage) {
            Some(Stage::Backtranslate) => self.backtranslation.as_ref(),
            Some(Stage::Curate) => self.curation.as_ref(),
            Some(Stage::Rewrite) => self.rewrite.as_ref(),
            Some(Stage::Distill) => self.distillation.as_ref(),
            Some(Stage::Verify) => self.verification.as_ref(),
            None => self.outputs.get(stage),
        }
    }

    /// Set the generation of the stage named `stage` (see [`Record::generation`]).
    pub fn set_generation(&mut self, stage: &str, g: Generation) {
        match Stage::builtin(stage) {
            Some(Stage::Backtranslate) => self.backtranslation = Some(g),
            Some(Stage::Curate) => self.curation = Some(g),
            Some(Stage::Rewrite) => self.rewrite = Some(g),
            Some(Stage::Distill) => self.distillation = Some(g),
            Some(Stage::Verify) => self.verification = Some(g),
            None => {
                self.outputs.insert(stage.to_string(), g);
            }
        }
    }

    /// The parsed instruction, if backtranslation succeeded.
    pub fn instruction(&self) -> Option<&str> {
        self.backtranslation
            .as_ref()
            .and_then(|g| g.value.as_deref())
    }

    /// The curation score, if curation parsed.
    pub fn score(&self) -> Option<u8> {
        self.curation.as_ref().and_then(|g| g.score)
    }

    /// Export order: the input ordinal, then (for one of several pairs of a
    /// document, [`crate::pairs`]) the pair index.
    pub fn order(&self) -> (u64, u32) {
        let k = self.metadata.get("pair").and_then(|p| p.get("index")).and_then(|i| i.as_u64());
        (self.ordinal, k.unwrap_or(0) as u32)
    }

    /// A pair the method keeps: an instruction and a curation score ≥ `min_score`.
    pub fn kept(&self, min_score: u8) -> bool {
        self.score().is_some_and(|s| s >= min_score) && self.instruction().is_some()
    }
}

/// One pair the backward model wrote for a document: stored in the
/// backtranslate stage's [`Generation::pairs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairSpan {
    /// The instruction x̂ (cleaned like a one-pair backtranslation).
    pub instruction: String,
    /// The passage number as shown to the model (1-based).
    pub passage: u32,
    /// The passage's range in the record's text, in characters (Unicode
    /// scalar values, as Python's `str` indexes): `text[start:end]`.
    pub start: u64,
    pub end: u64,
}

/// Where an expanded pair comes from: `metadata.pair` of a fanned-out record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairOrigin {
    /// Id of the record (document or segment) whose text the range indexes
    /// (the record in `documents.jsonl`).
    pub of: String,
    /// 0-based index of the pair among that record's pairs.
    pub index: u32,
    /// Character range of the passage in that record's text.
    pub start: u64,
    pub end: u64,
}
