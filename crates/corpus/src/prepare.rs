//! Corpus preparation: read → segment → filter → decontaminate →
//! deduplicate, streaming the kept candidates (documents, or heading-scoped
//! segments of them) to a callback with counts of what was dropped and why.
//! `backforth prepare` (in the method crate) writes them as records to
//! `candidates.jsonl`; `backforth run` with `run.prepare = true` uses them as
//! the run's documents.

use crate::decontam::{DecontamConfig, Decontaminator};
use crate::dedup::{DedupConfig, Deduper, Duplicate};
use crate::document::Document;
use crate::filter::{heading_problem, text_problem, FilterConfig};
use crate::readers::{input_parts, DocumentStream, InputStats, ReaderOptions};
use crate::segment::{segments, windows, SegmentConfig, SegmentMode};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeMap;

/// What `prepare` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrepareStats {
    pub input: InputStats,
    /// Candidates produced by segmenting (before filters).
    pub segments: u64,
    /// Dropped candidates by reason (filter rules, `exact_duplicate`, `near_duplicate`, `no_headings`).
    pub dropped: BTreeMap<String, u64>,
    /// Candidates written.
    pub kept: u64,
    /// Eval items indexed for decontamination, and the first dropped candidates with the item they matched.
    pub eval_items: u64,
    pub contaminated: Vec<(String, String)>,
    /// Long documents cut into paragraph windows (`segment.window_long`) instead of dropped.
    #[serde(default)]
    pub windowed_documents: u64,
    /// Where the candidates went (set by the writer).
    pub output: String,
    pub wall_s: f64,
    /// Documents per second read.
    pub documents_per_s: f64,
}

/// The configuration sections `prepare` reads (`[input]`, `[segment]`,
/// `[filter]`, `[dedup]`, `[decontam]`).
#[derive(Debug, Clone, Copy)]
pub struct PrepareSettings<'a> {
    pub input: &'a ReaderOptions,
    pub segment: &'a SegmentConfig,
    pub filter: &'a FilterConfig,
    pub dedup: &'a DedupConfig,
    pub decontam: &'a DecontamConfig,
}

/// Read → segment → filter → decontaminate → deduplicate, calling `emit` with
/// each kept candidate in input order (segment ids are `<document id>#s<i>`;
/// `metadata` holds `document_id`, the segment's `heading`/`level` and the
/// document's own metadata as `document_metadata`) and `progress(documents
/// read, candidates kept)` every 1,000 documents and once at the end.
/// `input.limit` caps the documents read. Errors: inputs missing, an
/// unreadable decontamination file, or an error returned by `emit`.
pub fn prepare_stream(
    cfg: &PrepareSettings<'_>,
    progress: &mut dyn FnMut(u64, u64),
    emit: &mut dyn FnMut(Document) -> Result<()>,
) -> Result<PrepareStats> {
    let t0 = std::time::Instant::now();
    let mut stream = DocumentStream::from_parts(input_parts(cfg.input)?, cfg.input.clone());
    let mut st = PrepareStats::default();
    let mut dedup = Deduper::new(cfg.dedup.clone());
    let decontam = Decontaminator::load(cfg.decontam)?;
    st.eval_items = decontam.as_ref().map_or(0, |d| d.len() as u64);
    let drop = |st: &mut PrepareStats, r: &str| *st.dropped.entry(r.to_string()).or_default() += 1;
    let whole_filter = FilterConfig {
        max_chars: 0,
        ..cfg.filter.clone()
    };
    let mut n_docs = 0u64;
    let mut seen_ids = std::collections::HashSet::new();
    while let Some(doc) = stream.next() {
        n_docs += 1;
        if n_docs % 1000 == 0 {
            progress(n_docs, st.kept);
        }
        if cfg.input.limit > 0 && n_docs > cfg.input.limit {
            stream.stats.documents -= 1;
            break;
        }
        let whole = cfg.segment.mode == SegmentMode::Whole;
        // paragraph windows of a long document (`segment.window_long`)
        let windowed = |st: &mut PrepareStats,
                        max_chars: usize|
         -> Vec<(String, Option<(String, usize)>, String)> {
            st.windowed_documents += 1;
            windows(&doc.text, max_chars)
                .into_iter()
                .enumerate()
                .map(|(i, w)| (format!("{}#w{i}", doc.id), None, w))
                .collect()
        };
        let cands: Vec<(String, Option<(String, usize)>, String)> = match cfg.segment.mode {
            SegmentMode::Whole => {
                let t = cfg.segment.estimate_tokens(&doc.text);
                if cfg.segment.max_tokens == 0 || t <= cfg.segment.max_tokens {
                    vec![(doc.id.clone(), None, doc.text.clone())]
                } else if !cfg.segment.window_long {
                    st.segments += 1;
                    drop(&mut st, "over_max_tokens");
                    vec![]
                } else if let Some(r) = cfg
                    .filter
                    .enabled
                    .then(|| text_problem(&doc.text, &whole_filter))
                    .flatten()
                {
                    // windowed only if it passes the quality filters as a
                    // whole: windows must not launder a junk document
                    st.segments += 1;
                    drop(&mut st, r);
                    vec![]
                } else {
                    windowed(
                        &mut st,
                        (cfg.segment.max_tokens as f64 * cfg.segment.chars_per_token.max(0.1))
                            as usize,
                    )
                }
            }
            SegmentMode::Headings => {
                let segs = segments(&doc.text);
                if segs.is_empty() {
                    let max = cfg.filter.max_chars;
                    if cfg.segment.window_long && max > 0 && doc.text.chars().count() > max {
                        windowed(&mut st, max)
                    } else if cfg.segment.fallback_whole {
                        vec![(doc.id.clone(), None, doc.text.clone())]
                    } else {
                        drop(&mut st, "no_headings");
                        vec![]
                    }
                } else {
                    segs.into_iter()
                        .enumerate()
                        .map(|(i, s)| {
                            (
                                format!("{}#s{i}", doc.id),
                                Some((s.heading, s.level)),
                                s.text,
                            )
                        })
                        .collect()
                }
            }
        };
        for (id, heading, text) in cands {
            st.segments += 1;
            if cfg.filter.enabled {
                if let Some((h, _)) = &heading {
                    if let Some(r) = heading_problem(h, &cfg.filter) {
                        drop(&mut st, r);
                        continue;
                    }
                }
                // whole documents: the token cap replaces the segment length bounds
                let f = if whole { &whole_filter } else { cfg.filter };
                if let Some(r) = text_problem(&text, f) {
                    drop(&mut st, r);
                    continue;
                }
            }
            if let Some(item) = decontam.as_ref().and_then(|d| d.check(&text)) {
                drop(&mut st, "contaminated");
                if st.contaminated.len() < 1000 {
                    st.contaminated.push((id.clone(), item.to_string()));
                }
                continue;
            }
            match dedup.check(&id, &text) {
                Some(Duplicate::Exact(_)) => {
                    drop(&mut st, "exact_duplicate");
                    continue;
                }
                Some(Duplicate::Near(_)) => {
                    drop(&mut st, "near_duplicate");
                    continue;
                }
                None => {}
            }
            if !seen_ids.insert(id.clone()) {
                drop(&mut st, "duplicate_id");
                tracing::warn!("{}: duplicate record id {id}, skipped", doc.source.path);
                continue;
            }
            let mut meta = serde_json::Map::new();
            meta.insert("document_id".into(), doc.id.clone().into());
            if let Some((h, l)) = &heading {
                meta.insert("heading".into(), h.clone().into());
                meta.insert("level".into(), (*l).into());
            }
            if !doc.metadata.is_null() {
                meta.insert("document_metadata".into(), doc.metadata.clone());
            }
            emit(Document {
                id,
                source: doc.source.clone(),
                text,
                metadata: serde_json::Value::Object(meta),
            })?;
            st.kept += 1;
        }
    }
    progress(stream.stats.documents, st.kept);
    st.input = stream.stats;
    st.wall_s = t0.elapsed().as_secs_f64();
    st.documents_per_s = st.input.documents as f64 / st.wall_s.max(1e-9);
    Ok(st)
}
