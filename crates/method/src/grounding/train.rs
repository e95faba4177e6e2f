//! Training a [`GroundingModel`] on a corpus, resumable:
//!
//! 1. weak examples from the documents and their TF-IDF neighbours
//!    ([`super::weak`]) → `<out>/items.jsonl` (written once);
//! 2. features, document by document (the embedder is the cost) →
//!    `<out>/features.jsonl`, appended and flushed per document; a killed
//!    run keeps every finished document and drops a torn last line;
//! 3. the two networks ([`super::mlp`]) with a checkpoint after every epoch
//!    (`<out>/fit-claim.json`, `<out>/fit-instruction.json`);
//! 4. held-out documents (one in ten, chosen by seed) measure the result;
//!    `<out>/grounding.json` is written last.
//!
//! `<out>/train.json` records the settings and the corpus hash; a folder
//! made for other documents or settings is refused rather than mixed.

use super::features::{claim_features, embed_all, instruction_features, DocView, Idf};
use super::mlp::{self, FitOptions, FitState};
use super::weak::{self, Kind, WeakItem};
use super::model::{GroundingModel, TrainingReport, FORMAT};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

/// Settings of `backforth checks train`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainOptions {
    /// Claims per document (about a third good).
    pub claims_per_document: usize,
    /// Near documents each document draws its hard negatives from.
    pub neighbours: usize,
    /// Seed of every random choice (examples, held-out split, weights).
    pub seed: u64,
    /// Documents used at most (the first N readable ones with ≥ 3 sentences).
    pub max_documents: usize,
    /// Network settings (the seed above overrides `fit.seed`).
    pub fit: FitOptions,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            claims_per_document: 9,
            neighbours: 5,
            seed: 42,
            max_documents: 2_000,
            fit: FitOptions::default(),
        }
    }
}

/// What training is doing, for a progress display.
#[derive(Debug, Clone, Copy)]
pub enum Phase {
    /// Documents featurised (done, total).
    Features(usize, usize),
    /// Epochs of one network (name, done, total, mean loss).
    Fit(&'static str, usize, usize, f32),
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct TrainMeta {
    options: TrainOptions,
    corpus_hash: String,
    documents: usize,
    embedder: String,
}

#[derive(Serialize, Deserialize)]
struct FeatureLine {
    doc: usize,
    /// One row per weak item of this document, in item order.
    rows: Vec<Vec<f32>>,
}

fn held_out(doc: usize, seed: u64) -> bool {
    let h = blake3::hash(format!("{seed}:{doc}").as_bytes());
    h.as_bytes()[0] % 10 == 0
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    crate::store::write_atomic(path, |w| {
        serde_json::to_writer_pretty(&mut *w, v)?;
        Ok(())
    })
}

/// Train a checker on `documents` (documents with fewer than 3 sentences
/// are skipped; at most `opts.max_documents` are used) with the sentence
/// embedder `emb`, in the folder `out` (resumed when it holds an earlier
/// run of the same documents and settings). Returns the model, also written
/// to `<out>/grounding.json`. Errors: fewer than 10 usable documents, a
/// folder made for other documents or settings, I/O, the embedder failed.
pub fn train(
    documents: &[String],
    emb: &mut dyn backforth_inference::encoder::SentenceEmbedder,
    out: &Path,
    opts: &TrainOptions,
    progress: &mut dyn FnMut(Phase),
) -> Result<GroundingModel> {
    let docs: Vec<String> = documents
        .iter()
        .filter(|d| crate::text::sentences(d).len() >= 3)
        .take(opts.max_documents)
        .cloned()
        .collect();
    anyhow::ensure!(
        docs.len() >= 10,
        "{} documents with 3 sentences or more; the checker needs at least 10 to find near documents",
        docs.len()
    );
    let mut hasher = blake3::Hasher::new();
    for d in &docs {
        hasher.update(d.as_bytes());
        hasher.update(&[0]);
    }
    let meta = TrainMeta {
        options: opts.clone(),
        corpus_hash: hasher.finalize().to_hex().to_string(),
        documents: docs.len(),
        embedder: emb.embedder_id(),
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let meta_path = out.join("train.json");
    if meta_path.exists() {
        let old: TrainMeta = serde_json::from_str(&std::fs::read_to_string(&meta_path)?)
            .with_context(|| format!("{}: not a training record", meta_path.display()))?;
        anyhow::ensure!(
            old == meta,
            "{} holds training for other documents or settings ({} documents, corpus {}…); use another --out or delete it",
            out.display(),
            old.documents,
            &old.corpus_hash[..12]
        );
    } else {
        write_json(&meta_path, &meta)?;
    }

    // 1. weak examples
    let idf = Idf::from_documents(docs.iter().map(String::as_str));
    let items_path = out.join("items.jsonl");
    let items: Vec<WeakItem> = if items_path.exists() {
        std::fs::read_to_string(&items_path)?
            .lines()
            .map(serde_json::from_str)
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("{}: unreadable; delete it to rebuild", items_path.display()))?
    } else {
        let nb = weak::neighbours(&docs, &idf, opts.neighbours);
        let items = weak::generate(&docs, &nb, &idf, opts.claims_per_document, opts.seed);
        crate::store::write_atomic(&items_path, |w| {
            for it in &items {
                serde_json::to_writer(&mut *w, it)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        items
    };
    let mut by_doc: BTreeMap<usize, Vec<&WeakItem>> = BTreeMap::new();
    for it in &items {
        by_doc.entry(it.doc).or_default().push(it);
    }

    // 2. features, resumable per document
    let feat_path = out.join("features.jsonl");
    let mut rows: BTreeMap<usize, Vec<Vec<f32>>> = BTreeMap::new();
    if feat_path.exists() {
        let f = std::fs::File::open(&feat_path)?;
        let mut good_bytes = 0u64;
        for line in std::io::BufReader::new(f).split(b'\n') {
            let line = line?;
            match serde_json::from_slice::<FeatureLine>(&line) {
                Ok(l) => {
                    good_bytes += line.len() as u64 + 1;
                    rows.insert(l.doc, l.rows);
                }
                Err(_) => break, // a line torn by a kill: redo that document
            }
        }
        let f = std::fs::OpenOptions::new().write(true).open(&feat_path)?;
        f.set_len(good_bytes)?;
    }
    let mut fw = std::io::BufWriter::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&feat_path)?,
    );
    let total = by_doc.len();
    progress(Phase::Features(rows.len(), total));
    for (&d, its) in &by_doc {
        if rows.contains_key(&d) {
            continue;
        }
        let view = DocView::new(&docs[d], emb)?;
        let texts: Vec<&str> = its.iter().map(|i| i.text.as_str()).collect();
        let vecs = embed_all(emb, &texts)?;
        let r: Vec<Vec<f32>> = its
            .iter()
            .zip(&vecs)
            .map(|(it, v)| match it.kind {
                Kind::Claim => claim_features(&it.text, v, &view, &idf),
                Kind::Instruction => instruction_features(&it.text, v, &view, &idf),
            })
            .collect();
        serde_json::to_writer(&mut fw, &FeatureLine { doc: d, rows: r.clone() })?;
        fw.write_all(b"\n")?;
        fw.flush()?;
        rows.insert(d, r);
        progress(Phase::Features(rows.len(), total));
    }
    drop(fw);

    // 3. fit both networks on the training documents
    let mut report = TrainingReport {
        documents: docs.len(),
        held_out_documents: (0..docs.len()).filter(|&d| held_out(d, opts.seed)).count(),
        seed: opts.seed,
        corpus_hash: meta.corpus_hash.clone(),
        ..Default::default()
    };
    let mut nets = Vec::new();
    for (kind, name) in [(Kind::Claim, "claim"), (Kind::Instruction, "instruction")] {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for (&d, its) in &by_doc {
            if held_out(d, opts.seed) {
                continue;
            }
            for (it, row) in its.iter().zip(&rows[&d]) {
                if it.kind == kind {
                    *report.items.entry(format!("{name}/{}", it.class)).or_default() += 1;
                    xs.push(row.clone());
                    ys.push(it.good());
                }
            }
        }
        anyhow::ensure!(
            ys.iter().any(|y| *y) && ys.iter().any(|y| !*y),
            "no {name} examples of both kinds from these documents"
        );
        let ckpt = out.join(format!("fit-{name}.json"));
        let fit_opts = FitOptions { seed: opts.seed, ..opts.fit };
        let mut state: FitState = match std::fs::read_to_string(&ckpt) {
            Ok(t) => serde_json::from_str(&t)
                .with_context(|| format!("{}: unreadable checkpoint; delete it", ckpt.display()))?,
            Err(_) => mlp::init(&xs, &fit_opts),
        };
        let label: &'static str = if kind == Kind::Claim { "claim" } else { "instruction" };
        mlp::fit(&mut state, &xs, &ys, |s, loss| {
            write_json(&ckpt, s)?;
            progress(Phase::Fit(label, s.epochs_done, s.options.epochs, loss));
            Ok(())
        })?;
        nets.push(state.net);
    }
    let instruction = nets.pop().expect("two nets");
    let claim = nets.pop().expect("two nets");

    // 4. held-out weak labels
    for (kind, name, net) in [
        (Kind::Claim, "claim", &claim),
        (Kind::Instruction, "instruction", &instruction),
    ] {
        let (mut scores, mut ys) = (Vec::new(), Vec::new());
        let mut per: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for (&d, its) in &by_doc {
            if !held_out(d, opts.seed) {
                continue;
            }
            for (it, row) in its.iter().zip(&rows[&d]) {
                if it.kind != kind {
                    continue;
                }
                let p = net.predict(row);
                scores.push(p);
                ys.push(it.good());
                let e = per.entry(format!("{name}/{}", it.class)).or_default();
                e.0 += 1;
                e.1 += ((p >= 0.5) == it.good()) as usize;
            }
        }
        for (k, (n, ok)) in per {
            report.held_out_accuracy.insert(k, ok as f64 / n as f64);
        }
        let a = mlp::auc(&scores, &ys);
        match kind {
            Kind::Claim => report.held_out_auc_claim = a,
            Kind::Instruction => report.held_out_auc_instruction = a,
        }
    }
    let model = GroundingModel {
        format: FORMAT,
        embedder: meta.embedder,
        claim_features: super::features::CLAIM_FEATURES.iter().map(|s| s.to_string()).collect(),
        instruction_features: super::features::INSTRUCTION_FEATURES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        claim,
        instruction,
        idf,
        training: report,
    };
    write_json(&out.join("grounding.json"), &model)?;
    Ok(model)
}
