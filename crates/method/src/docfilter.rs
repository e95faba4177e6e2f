//! The learned document filter: FineWeb-Edu's recipe (Penedo et al. 2024,
//! arXiv:2406.17557 §3.3) — an LLM rates a sample of documents on a rubric,
//! a small classifier on sentence embeddings rates the rest — aimed at this
//! method's question: *could this document be the answer of an instruction
//! pair, and is it worth learning from?* (the `doc-rubric` preset writes the
//! LLM's 1–5 ratings).
//!
//! `backforth checks train-filter` fits a model file from rated documents
//! ([`train`]); `doc_filter.model` points `prepare` (or `run` with
//! `run.prepare = true`) at it, and candidates whose probability of a rating
//! ≥ the model's `min_rating` is below `doc_filter.min_probability` are
//! dropped with reason `doc_filter` before any generation.
//!
//! Features of a document ([`features`]): the mean of the unit sentence
//! embeddings of its first [`MAX_WINDOWS`] windows of [`WINDOW_WORDS`]
//! words (MiniLM reads ~256 tokens, so a long document is seen through
//! several windows rather than cut at its first paragraph), plus the log of
//! its word count. The classifier is the grounding checker's one-hidden-layer
//! network ([`crate::grounding::mlp`]); written here, not borrowed, because it
//! is a few thousand weights on top of embeddings we already compute.

use crate::grounding::mlp::{self, FitOptions, Mlp};
use anyhow::{Context, Result};
use backforth_inference::encoder::SentenceEmbedder;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Model file format version this build reads and writes.
pub const FORMAT: u32 = 1;
/// Words per embedded window.
pub const WINDOW_WORDS: usize = 128;
/// Windows embedded per document at most (the first ones).
pub const MAX_WINDOWS: usize = 4;

/// Configuration: `[doc_filter]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DocFilterConfig {
    /// Model file written by `backforth checks train-filter`; empty = no filter.
    #[serde(default)]
    pub model: String,
    /// Sentence embedder folder the model was trained with (empty = the
    /// default MiniLM of the asset cache, chosen by the command line).
    #[serde(default)]
    pub embedding_model: String,
    /// Candidates with a lower probability of a good rating are dropped (0–1).
    #[serde(default = "half")]
    pub min_probability: f64,
}

fn half() -> f64 {
    0.5
}

impl Default for DocFilterConfig {
    fn default() -> Self {
        DocFilterConfig {
            model: String::new(),
            embedding_model: String::new(),
            min_probability: half(),
        }
    }
}

/// How a trained filter did on documents it did not see (rated by the same
/// LLM), at probability 0.5.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Agreement {
    pub documents: usize,
    /// Documents the LLM rated ≥ `min_rating`.
    pub positives: usize,
    /// Share of documents where filter and LLM agree (keep / drop).
    pub accuracy: f64,
    /// Of the documents the filter keeps, the share the LLM rated good.
    pub precision: f64,
    /// Of the documents the LLM rated good, the share the filter keeps.
    pub recall: f64,
    pub f1: f64,
    /// Area under the ROC curve (`None` when one class is absent).
    pub auc: Option<f64>,
    /// Share the filter keeps.
    pub kept_share: f64,
}

/// A trained document filter (JSON file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DocFilterModel {
    pub format: u32,
    /// The embedder's id at training time (checked when loading a run's embedder).
    pub embedder: String,
    /// A rating ≥ this counts as good (1–5 scale of the rubric).
    pub min_rating: u8,
    /// The stage whose scores were the labels, and how many documents of each rating.
    pub label_stage: String,
    pub ratings: std::collections::BTreeMap<u8, usize>,
    /// Agreement with the LLM on the held-out documents.
    pub held_out: Agreement,
    pub net: Mlp,
}

/// One rated document.
#[derive(Debug, Clone)]
pub struct Rated {
    pub id: String,
    pub text: String,
    pub rating: u8,
}

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    /// A rating ≥ this is a good document.
    pub min_rating: u8,
    /// Share of documents held out (chosen by a hash of the id, so the same
    /// documents are held out on every run).
    pub held_out: f64,
    pub fit: FitOptions,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            min_rating: 3,
            held_out: 0.25,
            fit: FitOptions {
                hidden: 8,
                epochs: 60,
                batch: 32,
                learning_rate: 0.005,
                l2: 0.1,
                seed: 42,
            },
        }
    }
}

/// The windows of `text` that are embedded: up to [`MAX_WINDOWS`] runs of
/// [`WINDOW_WORDS`] whitespace-separated words (the text's own slices).
pub fn windows(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut words = 0;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start {
                words += 1;
                if words == WINDOW_WORDS {
                    out.push(&text[s..i]);
                    if out.len() == MAX_WINDOWS {
                        return out;
                    }
                    start = None;
                    words = 0;
                }
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(text[s..].trim_end());
    }
    out
}

/// Feature vectors of `texts` (embedding dimension + 1), windows embedded in
/// batches of 64. Errors: the embedder failed; an empty text.
pub fn features(emb: &mut dyn SentenceEmbedder, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
    let mut owner = Vec::new();
    let mut all: Vec<&str> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let w = windows(t);
        anyhow::ensure!(
            !w.is_empty(),
            "document {i} of the batch is empty: nothing to rate"
        );
        for s in w {
            owner.push(i);
            all.push(s);
        }
    }
    let mut vecs = Vec::with_capacity(all.len());
    for chunk in all.chunks(64) {
        vecs.extend(emb.embed_texts(chunk)?);
    }
    let dim = vecs.first().map_or(0, Vec::len);
    let mut out = vec![vec![0f32; dim + 1]; texts.len()];
    let mut counts = vec![0usize; texts.len()];
    for (v, &i) in vecs.iter().zip(&owner) {
        for (o, x) in out[i].iter_mut().zip(v) {
            *o += x;
        }
        counts[i] += 1;
    }
    for ((o, n), t) in out.iter_mut().zip(&counts).zip(texts) {
        for x in o[..dim].iter_mut() {
            *x /= *n as f32;
        }
        o[dim] = (1.0 + t.split_whitespace().count() as f32).ln();
    }
    Ok(out)
}

fn held_out(id: &str, share: f64) -> bool {
    let h = blake3::hash(id.as_bytes());
    let x = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    (x as f64 / u64::MAX as f64) < share
}

/// Agreement of probabilities `p` (kept when ≥ `threshold`) with labels `ys`.
pub fn agreement(p: &[f32], ys: &[bool], threshold: f64) -> Agreement {
    let keep: Vec<bool> = p.iter().map(|&x| x as f64 >= threshold).collect();
    let tp = keep.iter().zip(ys).filter(|(k, y)| **k && **y).count() as f64;
    let kept = keep.iter().filter(|k| **k).count() as f64;
    let pos = ys.iter().filter(|y| **y).count();
    let right = keep.iter().zip(ys).filter(|(k, y)| k == y).count() as f64;
    let n = ys.len().max(1) as f64;
    let precision = if kept > 0.0 { tp / kept } else { 0.0 };
    let recall = if pos > 0 { tp / pos as f64 } else { 0.0 };
    Agreement {
        documents: ys.len(),
        positives: pos,
        accuracy: right / n,
        precision,
        recall,
        f1: if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        },
        auc: mlp::auc(p, ys),
        kept_share: kept / n,
    }
}

/// Fit a filter on `docs` rated by the LLM stage `label_stage`, holding out
/// `opts.held_out` of them (by id hash) to measure agreement. Errors: fewer
/// than 20 training documents or only one class among them, the embedder failed.
pub fn train(
    docs: &[Rated],
    label_stage: &str,
    emb: &mut dyn SentenceEmbedder,
    opts: &TrainOptions,
) -> Result<DocFilterModel> {
    let texts: Vec<&str> = docs.iter().map(|d| d.text.as_str()).collect();
    let xs = features(emb, &texts)?;
    let ys: Vec<bool> = docs.iter().map(|d| d.rating >= opts.min_rating).collect();
    let test: Vec<bool> = docs
        .iter()
        .map(|d| held_out(&d.id, opts.held_out))
        .collect();
    let pick = |want: bool| -> (Vec<Vec<f32>>, Vec<bool>) {
        xs.iter()
            .zip(&ys)
            .zip(&test)
            .filter(|(_, t)| **t == want)
            .map(|((x, y), _)| (x.clone(), *y))
            .unzip()
    };
    let (train_x, train_y) = pick(false);
    let (test_x, test_y) = pick(true);
    let pos = train_y.iter().filter(|y| **y).count();
    anyhow::ensure!(
        train_x.len() >= 20 && pos > 0 && pos < train_y.len(),
        "{} training documents, {pos} rated ≥ {}: need at least 20 and both kinds",
        train_x.len(),
        opts.min_rating
    );
    let mut state = mlp::init(&train_x, &opts.fit);
    mlp::fit(&mut state, &train_x, &train_y, |_, _| Ok(()))?;
    let net = state.net;
    let p: Vec<f32> = test_x.iter().map(|x| net.predict(x)).collect();
    let mut ratings = std::collections::BTreeMap::new();
    for d in docs {
        *ratings.entry(d.rating).or_insert(0) += 1;
    }
    Ok(DocFilterModel {
        format: FORMAT,
        embedder: emb.embedder_id(),
        min_rating: opts.min_rating,
        label_stage: label_stage.to_string(),
        ratings,
        held_out: agreement(&p, &test_y, 0.5),
        net,
    })
}

impl DocFilterModel {
    /// Read a model file. Errors: unreadable, not a filter, another format.
    pub fn load(path: &Path) -> Result<DocFilterModel> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the document filter {}", path.display()))?;
        let m: DocFilterModel = serde_json::from_str(&text).with_context(|| {
            format!(
                "{}: not a document filter (backforth checks train-filter writes one)",
                path.display()
            )
        })?;
        anyhow::ensure!(
            m.format == FORMAT,
            "{}: document filter format {} (this build reads {FORMAT}); train it again",
            path.display(),
            m.format
        );
        Ok(m)
    }

    /// P(rating ≥ `min_rating`) for each text, 0–1. Errors: the embedder is
    /// not the one the model was trained with, failed, or a text is empty.
    pub fn score(&self, emb: &mut dyn SentenceEmbedder, texts: &[&str]) -> Result<Vec<f32>> {
        anyhow::ensure!(
            emb.embedder_id() == self.embedder,
            "the document filter was trained with the embedder {}, not {}",
            self.embedder,
            emb.embedder_id()
        );
        Ok(features(emb, texts)?
            .iter()
            .map(|x| self.net.predict(x))
            .collect())
    }
}

/// Rated documents from a stage file (`stages/<stage>.jsonl` of a run: records
/// whose `outputs.<stage>` carries a score). Records without a parsed score
/// are skipped and counted. Errors: unreadable file, a line that is not a
/// record (with its line number).
pub fn read_ratings(path: &Path, stage: &str) -> Result<(Vec<Rated>, usize)> {
    use std::io::BufRead;
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (mut out, mut skipped) = (Vec::new(), 0);
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}: not UTF-8 text", path.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let r: crate::record::Record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a record", path.display(), i + 1))?;
        match r.generation(stage).and_then(|g| g.score) {
            Some(rating) if !r.text.trim().is_empty() => out.push(Rated {
                id: r.id,
                text: r.text,
                rating,
            }),
            _ => skipped += 1,
        }
    }
    Ok((out, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_first_words_in_runs() {
        let text: String = (0..300).map(|i| format!("w{i} ")).collect();
        let w = windows(&text);
        assert_eq!(w.len(), 3);
        assert!(w[0].starts_with("w0 ") && w[0].ends_with("w127"));
        assert!(w[2].starts_with("w256") && w[2].ends_with("w299"));
        let long: String = (0..2000).map(|i| format!("w{i}\n")).collect();
        assert_eq!(windows(&long).len(), MAX_WINDOWS);
        assert!(windows("  \n ").is_empty());
    }

    #[test]
    fn agreement_counts() {
        let a = agreement(&[0.9, 0.8, 0.2, 0.1], &[true, false, true, false], 0.5);
        assert_eq!((a.documents, a.positives), (4, 2));
        assert!((a.accuracy - 0.5).abs() < 1e-9);
        assert!((a.precision - 0.5).abs() < 1e-9 && (a.recall - 0.5).abs() < 1e-9);
        assert!((a.kept_share - 0.5).abs() < 1e-9);
    }
}
