//! The trained checker as a file ([`GroundingModel`]), what it finds on one
//! pair ([`Grounding`]) and why a pair could not be read ([`GroundingError`]).

use super::features::{self, claim_features, claims, embed_all, instruction_features, DocView, Idf};
use super::mlp;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Version of the model file layout.
pub const FORMAT: u32 = 1;

/// A trained checker as stored in `grounding.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GroundingModel {
    /// [`FORMAT`].
    pub format: u32,
    /// The sentence embedder's id at training time (its folder name).
    pub embedder: String,
    /// Feature names of the two networks, checked against this build's.
    pub claim_features: Vec<String>,
    pub instruction_features: Vec<String>,
    /// P(sentence supported | features).
    pub claim: mlp::Mlp,
    /// P(instruction about the document | features).
    pub instruction: mlp::Mlp,
    /// Document frequencies of the training corpus.
    pub idf: Idf,
    /// How it was trained and how it did on held-out documents' weak labels.
    pub training: TrainingReport,
}

/// Training facts stored with the model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct TrainingReport {
    pub documents: usize,
    pub held_out_documents: usize,
    pub seed: u64,
    /// Weak examples per class ("claim/good", "claim/inserted", …), training documents.
    pub items: BTreeMap<String, usize>,
    /// Held-out documents: share of each class judged correctly at 0.5.
    pub held_out_accuracy: BTreeMap<String, f64>,
    /// Held-out area under the ROC curve, claims and instructions.
    pub held_out_auc_claim: Option<f64>,
    pub held_out_auc_instruction: Option<f64>,
    /// blake3 of the training documents (in order).
    pub corpus_hash: String,
}

/// Why one pair could not be checked (bad input, not a failure of the
/// checker): counted per reason in the run summary.
#[derive(Debug)]
pub enum GroundingError {
    /// The instruction is empty or white space.
    EmptyInstruction,
    /// The response is empty or white space.
    EmptyResponse,
    /// The document is empty or white space.
    EmptyDocument,
    /// The document is longer than the checker reads (characters, limit).
    DocumentTooLong(usize, usize),
    /// The sentence embedder failed (fatal for the run).
    Embedder(anyhow::Error),
}

impl std::fmt::Display for GroundingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroundingError::EmptyInstruction => write!(f, "the instruction is empty"),
            GroundingError::EmptyResponse => write!(f, "the response is empty"),
            GroundingError::EmptyDocument => write!(f, "the document is empty"),
            GroundingError::DocumentTooLong(n, max) => write!(
                f,
                "the document has {n} characters, more than the grounding checker reads ({max}); segment it first"
            ),
            GroundingError::Embedder(e) => write!(f, "sentence embedder: {e:#}"),
        }
    }
}

impl std::error::Error for GroundingError {}

/// Characters of a document the checker reads at most.
pub const MAX_DOCUMENT_CHARS: usize = 200_000;

/// The support score of one response sentence.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SentenceSupport {
    /// Byte range of the sentence in the response.
    pub start: usize,
    pub end: usize,
    /// P(the document backs this sentence), 0–1.
    pub support: f64,
}

/// The checker's findings on one pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Grounding {
    /// P(the instruction is about what the document covers), 0–1.
    pub relevance: f64,
    /// Scored response sentences (none when only the instruction was checked).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub sentences: Vec<SentenceSupport>,
}

impl Grounding {
    /// The lowest sentence support (1.0 when no sentence was scored).
    pub fn min_support(&self) -> f64 {
        self.sentences.iter().map(|s| s.support).fold(1.0, f64::min)
    }
}

impl GroundingModel {
    /// Read a model file. Errors: unreadable, not a model, another format
    /// version or feature list than this build's.
    pub fn load(path: &Path) -> anyhow::Result<GroundingModel> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the grounding model {}", path.display()))?;
        let m: GroundingModel = serde_json::from_str(&text).with_context(|| {
            format!("{}: not a grounding model file (backforth checks train writes one)", path.display())
        })?;
        anyhow::ensure!(
            m.format == FORMAT,
            "{}: grounding model format {} (this build reads {FORMAT}); train it again",
            path.display(),
            m.format
        );
        anyhow::ensure!(
            m.claim_features == features::CLAIM_FEATURES
                && m.instruction_features == features::INSTRUCTION_FEATURES,
            "{}: trained on another feature list than this build computes; train it again",
            path.display()
        );
        Ok(m)
    }

    /// Score one pair: the instruction's relevance to `document` and, with
    /// a `response`, each of its sentences' support. Errors: empty inputs
    /// or an over-long document ([`GroundingError`]), the embedder failed.
    pub fn check(
        &self,
        emb: &mut dyn backforth_inference::encoder::SentenceEmbedder,
        instruction: &str,
        response: Option<&str>,
        document: &str,
    ) -> Result<Grounding, GroundingError> {
        if instruction.trim().is_empty() {
            return Err(GroundingError::EmptyInstruction);
        }
        if response.is_some_and(|r| r.trim().is_empty()) {
            return Err(GroundingError::EmptyResponse);
        }
        if document.trim().is_empty() {
            return Err(GroundingError::EmptyDocument);
        }
        let n = document.chars().count();
        if n > MAX_DOCUMENT_CHARS {
            return Err(GroundingError::DocumentTooLong(n, MAX_DOCUMENT_CHARS));
        }
        let doc = DocView::new(document, emb).map_err(GroundingError::Embedder)?;
        let cl = response.map(claims).unwrap_or_default();
        let mut texts: Vec<&str> = vec![instruction.trim()];
        texts.extend(cl.iter().map(|c| c.2));
        let vecs = embed_all(emb, &texts).map_err(GroundingError::Embedder)?;
        let relevance = self
            .instruction
            .predict(&instruction_features(instruction, &vecs[0], &doc, &self.idf))
            as f64;
        let sentences = cl
            .iter()
            .zip(&vecs[1..])
            .map(|((start, end, text), v)| SentenceSupport {
                start: *start,
                end: *end,
                support: self.claim.predict(&claim_features(text, v, &doc, &self.idf)) as f64,
            })
            .collect();
        Ok(Grounding {
            relevance,
            sentences,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_embedder::Letters;

    fn model() -> GroundingModel {
        let net = |d: usize| mlp::init(&[vec![0.0; d], vec![1.0; d]], &Default::default()).net;
        GroundingModel {
            format: FORMAT,
            embedder: "letters".into(),
            claim_features: features::CLAIM_FEATURES.iter().map(|s| s.to_string()).collect(),
            instruction_features: features::INSTRUCTION_FEATURES.iter().map(|s| s.to_string()).collect(),
            claim: net(features::CLAIM_FEATURES.len()),
            instruction: net(features::INSTRUCTION_FEATURES.len()),
            idf: Idf::from_documents(["a b", "b c"]),
            training: Default::default(),
        }
    }

    #[test]
    fn bad_input_gets_a_clear_error() {
        let m = model();
        let doc = "The harbour bridge opened in 1932. It carries eight lanes of traffic across the water.";
        let e = m.check(&mut Letters, "Tell me about the bridge.", Some("  "), doc).unwrap_err();
        assert_eq!(e.to_string(), "the response is empty");
        let e = m.check(&mut Letters, " ", None, doc).unwrap_err();
        assert_eq!(e.to_string(), "the instruction is empty");
        let huge = "word ".repeat(MAX_DOCUMENT_CHARS / 5 + 1);
        let e = m.check(&mut Letters, "Tell me about the bridge.", None, &huge).unwrap_err();
        assert!(e.to_string().contains("more than the grounding checker reads"), "{e}");
        let g = m
            .check(&mut Letters, "Tell me about the bridge.", Some("Sure. The harbour bridge opened in 1932 with eight lanes."), doc)
            .unwrap();
        assert_eq!(g.sentences.len(), 1, "the framing sentence is not scored");
        assert!((0.0..=1.0).contains(&g.relevance) && (0.0..=1.0).contains(&g.min_support()));
    }

    #[test]
    fn a_model_file_round_trips_and_a_foreign_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("grounding.json");
        let m = model();
        std::fs::write(&p, serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(GroundingModel::load(&p).unwrap(), m);
        let mut other = m.clone();
        other.claim_features.pop();
        std::fs::write(&p, serde_json::to_string(&other).unwrap()).unwrap();
        let e = GroundingModel::load(&p).unwrap_err().to_string();
        assert!(e.contains("another feature list"), "{e}");
        std::fs::write(&p, "{}").unwrap();
        let e = format!("{:#}", GroundingModel::load(&p).unwrap_err());
        assert!(e.contains("not a grounding model file"), "{e}");
    }
}
