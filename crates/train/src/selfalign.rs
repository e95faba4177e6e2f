//! The pieces of Humpback's self-alignment loop (Li et al. 2023 §2) that
//! are not the pipeline: examples for each model, tokenizing them with the
//! base model's own tokenizer, training a model only when its data or
//! settings changed, and what one curation round kept. `backforth
//! selfalign` strings them together with `backforth::pipeline::run`.

use crate::data::{self, ChatTokenizer, Encoded, Example};
use crate::trainer::{self, TrainConfig, TrainSummary};
use anyhow::{bail, Context, Result};
use backforth_corpus::readers::InputStats;
use backforth_llama::{LlamaEngine, LlamaOptions};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which direction a model learns (Li et al. 2023 §2.2 / §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The backward model M_yx: response → instruction (seed pairs flipped).
    Backward,
    /// A forward model M_0, M_1…: instruction → response (seeds, curated data).
    Forward,
}

/// Examples for one model: seed pairs (`seeds`) and, forward only, chat
/// JSONL files (`datasets`: `messages` lines, e.g. a run's curated.jsonl),
/// each with Humpback's system tag when `system_tags`. Returns the examples
/// and the counts of skipped input lines. Errors: no data for the
/// direction, unreadable files.
pub fn examples(
    direction: Direction,
    seeds: Option<&Path>,
    datasets: &[PathBuf],
    system_tags: bool,
) -> Result<(Vec<Example>, InputStats)> {
    let mut stats = InputStats::default();
    let seeds = match seeds {
        Some(p) => backforth::seeds::read_seeds(p, data::MAX_LINE_BYTES, &mut stats)?,
        None => vec![],
    };
    let out = match direction {
        Direction::Backward => {
            if seeds.is_empty() {
                bail!("--data backward needs --seeds (seed pairs JSONL)");
            }
            if !datasets.is_empty() {
                bail!("--dataset is for --data forward");
            }
            data::backward(&seeds, None)?
        }
        Direction::Forward => {
            if seeds.is_empty() && datasets.is_empty() {
                bail!("--data forward needs --seeds and/or --dataset");
            }
            let tag = |t: &'static str| system_tags.then_some(t);
            let mut v = data::forward(&seeds, tag(data::SEED_TAG));
            for d in datasets {
                v.extend(data::from_messages_jsonl(
                    d,
                    tag(data::WEB_TAG),
                    data::MAX_LINE_BYTES,
                    &mut stats,
                )?);
            }
            v
        }
    };
    Ok((out, stats))
}

/// The model in llama.cpp with room for one sequence: for its tokenizer and
/// chat template, or to prove an adapter loads. Errors: the model does not load.
pub fn one_sequence_engine(model: &Path) -> Result<LlamaEngine> {
    LlamaEngine::load(
        model,
        LlamaOptions {
            batch_size: 1,
            ..Default::default()
        },
    )
}

/// Tokenize examples with the base model's own tokenizer and chat template
/// (training ids = inference ids). Errors: the model does not load; a
/// template cannot be applied (named by the example's source).
pub fn encode_all(model: &Path, examples: &[Example]) -> Result<Vec<Encoded>> {
    let engine = one_sequence_engine(model)?;
    examples
        .iter()
        .map(|e| {
            engine
                .encode(e)
                .with_context(|| format!("tokenizing {}", e.source))
        })
        .collect()
}

/// What [`ensure_model`] did.
#[derive(Debug)]
pub enum Ensured {
    /// The folder held this base, data and settings: nothing trained.
    UpToDate,
    /// Trained now (`replaced`: an adapter of other data or settings was removed first).
    Trained { summary: TrainSummary, replaced: bool },
}

/// The adapter in `dir` for `base` trained on `enc` under `cfg`, training
/// it only when the folder holds none for the same inputs (a changed one is
/// retrained from scratch). `progress`: where the trainer reports its steps.
/// Returns the adapter path. Errors: training's.
pub fn ensure_model(
    base: &Path,
    dir: &Path,
    enc: &[Encoded],
    cfg: &TrainConfig,
    progress: &mut dyn backforth_inference::progress::Progress,
) -> Result<(PathBuf, Ensured)> {
    let adapter = dir.join("adapter.gguf");
    let mut replaced = false;
    match trainer::same_run(dir, base, enc, cfg)? {
        Some(true) if adapter.exists() => return Ok((adapter, Ensured::UpToDate)),
        Some(false) => {
            std::fs::remove_dir_all(dir)?;
            replaced = true;
        }
        _ => {}
    }
    let summary = trainer::train(base, enc, cfg, dir, progress)?;
    Ok((adapter, Ensured::Trained { summary, replaced }))
}

/// One curation round of the loop, read back from its run folder.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// Pairs with a parsed curation score.
    pub scored: usize,
    /// Of those, scored ≥ the keep threshold.
    pub scored_at_keep: usize,
    /// Pairs exported to curated.jsonl (score ≥ keep and passing the checks): what the next model trains on.
    pub kept: BTreeSet<String>,
    /// Pairs per score.
    pub scores: BTreeMap<u8, u64>,
}

/// How the kept set changed from one round to the next.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Change {
    pub added: usize,
    pub dropped: usize,
    pub stayed: usize,
}

impl Round {
    /// The change from the previous round's kept ids.
    pub fn change(&self, prev: &BTreeSet<String>) -> Change {
        Change {
            added: self.kept.difference(prev).count(),
            dropped: prev.difference(&self.kept).count(),
            stayed: self.kept.intersection(prev).count(),
        }
    }

    /// Read a finished round's run folder. Errors: I/O.
    pub fn read(run: &Path, keep: u8) -> Result<Round> {
        let dir = backforth::store::RunDir(run.to_path_buf());
        let sc = backforth::store::curation_scores(&dir)?;
        let mut scores = BTreeMap::new();
        for s in sc.values() {
            *scores.entry(*s).or_insert(0u64) += 1;
        }
        Ok(Round {
            scored: sc.len(),
            scored_at_keep: sc.values().filter(|s| **s >= keep).count(),
            kept: backforth::export::exported_ids(&dir.export("curated"))?,
            scores,
        })
    }
}
