//! `backforth prepare`: read → segment → filter → deduplicate, writing
//! candidate records (`candidates.jsonl`, the same [`Record`] format every
//! stage reads, so `run` can take it as input) and `prepare_stats.json`.

use crate::config::{Config, SegmentMode};
use crate::dedup::{Deduper, Duplicate};
use crate::filter::{heading_problem, text_problem};
use crate::reader::{expand_paths, DocumentStream, InputStats};
use crate::record::Record;
use crate::segment::segments;
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    pub output: String,
    pub wall_s: f64,
    /// Documents per second read.
    pub documents_per_s: f64,
}

/// Run prepare with `cfg` into `<output.dir>/candidates.jsonl` and
/// `<output.dir>/prepare_stats.json`. Errors: inputs missing, I/O.
pub fn prepare(cfg: &Config) -> Result<PrepareStats> {
    prepare_with_progress(cfg, &mut |_, _| {})
}

/// [`prepare`], calling `progress(documents read, candidates kept)` every
/// 1,000 documents and once at the end (for a progress display).
pub fn prepare_with_progress(cfg: &Config, progress: &mut dyn FnMut(u64, u64)) -> Result<PrepareStats> {
    let dir = PathBuf::from(&cfg.output.dir);
    std::fs::create_dir_all(&dir)?;
    #[allow(unused_mut)] // only the `parquet` feature amends it
    let mut st = prepare_inner(cfg, &dir.join("candidates.jsonl"), progress)?;
    if cfg.output.candidates_parquet {
        #[cfg(feature = "parquet")]
        {
            let p = dir.join("candidates.parquet");
            write_parquet(&dir.join("candidates.jsonl"), &p)?;
            st.output = format!("{} (+ {})", st.output, p.display());
        }
        #[cfg(not(feature = "parquet"))]
        anyhow::bail!("output.candidates_parquet needs backforth built with the `parquet` feature");
    }
    std::fs::write(dir.join("prepare_stats.json"), serde_json::to_string_pretty(&st)?)?;
    Ok(st)
}

/// Read → segment → filter → decontaminate → deduplicate into `out` (JSONL of
/// [`Record`]s, written to `<out>.tmp` and renamed when complete, so a killed
/// run leaves no partial file). `input.limit` caps the documents read.
/// Errors: inputs missing, I/O.
pub fn prepare_to(cfg: &Config, out: &Path) -> Result<PrepareStats> {
    prepare_inner(cfg, out, &mut |_, _| {})
}

fn prepare_inner(cfg: &Config, out: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<PrepareStats> {
    let t0 = std::time::Instant::now();
    anyhow::ensure!(!cfg.input.paths.is_empty(), "no input: set input.paths (or pass --input)");
    let mut stream = DocumentStream::new(expand_paths(&cfg.input.paths)?, cfg.input.clone());
    let out = out.to_path_buf();
    let tmp = out.with_extension("jsonl.tmp");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
    let mut st = PrepareStats::default();
    let mut dedup = Deduper::new(cfg.dedup.clone());
    let decontam = crate::decontam::Decontaminator::load(&cfg.decontam)?;
    st.eval_items = decontam.as_ref().map_or(0, |d| d.len() as u64);
    let drop = |st: &mut PrepareStats, r: &str| *st.dropped.entry(r.to_string()).or_default() += 1;
    let mut ordinal = 0u64;
    let whole_filter = crate::filter::FilterConfig { max_chars: 0, ..cfg.filter.clone() };
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
        let cands: Vec<(String, Option<(String, usize)>, String)> = match cfg.segment.mode {
            SegmentMode::Whole => {
                let t = cfg.segment.estimate_tokens(&doc.text);
                if cfg.segment.max_tokens > 0 && t > cfg.segment.max_tokens {
                    st.segments += 1;
                    drop(&mut st, "over_max_tokens");
                    vec![]
                } else {
                    vec![(doc.id.clone(), None, doc.text.clone())]
                }
            }
            SegmentMode::Headings => {
                let segs = segments(&doc.text);
                if segs.is_empty() {
                    if cfg.segment.fallback_whole {
                        vec![(doc.id.clone(), None, doc.text.clone())]
                    } else {
                        drop(&mut st, "no_headings");
                        vec![]
                    }
                } else {
                    segs.into_iter().enumerate().map(|(i, s)| (format!("{}#s{i}", doc.id), Some((s.heading, s.level)), s.text)).collect()
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
                let f = if whole { &whole_filter } else { &cfg.filter };
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
            let r = Record::new(id, ordinal, doc.source.clone(), text, serde_json::Value::Object(meta));
            ordinal += 1;
            serde_json::to_writer(&mut w, &r)?;
            w.write_all(b"\n")?;
            st.kept += 1;
        }
    }
    progress(stream.stats.documents, st.kept);
    w.flush()?;
    std::mem::drop(w);
    std::fs::rename(&tmp, &out)?;
    st.input = stream.stats;
    st.output = out.display().to_string();
    st.wall_s = t0.elapsed().as_secs_f64();
    st.documents_per_s = st.input.documents as f64 / st.wall_s.max(1e-9);
    Ok(st)
}

/// Convert a JSONL file of [`Record`]s to Parquet (one row group per 8,192
/// records, zstd): `id`, `text`, `source` (UTF-8), `line` (INT64, null when
/// absent), `metadata` (JSON text). Written to `<out>.tmp`, then renamed.
/// Errors: I/O, a line that is not a Record.
#[cfg(feature = "parquet")]
pub fn write_parquet(jsonl: &Path, out: &Path) -> Result<()> {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use std::io::BufRead;
    let schema = std::sync::Arc::new(parquet::schema::parser::parse_message_type(
        "message candidate { REQUIRED BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY text (UTF8); REQUIRED BYTE_ARRAY source (UTF8); OPTIONAL INT64 line; REQUIRED BYTE_ARRAY metadata (UTF8); }",
    )?);
    let props = std::sync::Arc::new(WriterProperties::builder().set_compression(parquet::basic::Compression::ZSTD(Default::default())).build());
    let tmp = out.with_extension("parquet.tmp");
    let mut w = SerializedFileWriter::new(std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?, schema, props)?;
    let mut batch: Vec<Record> = Vec::with_capacity(8192);
    let flush = |w: &mut SerializedFileWriter<std::fs::File>, batch: &mut Vec<Record>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut rg = w.next_row_group()?;
        let cols: [Vec<ByteArray>; 2] = [
            batch.iter().map(|r| ByteArray::from(r.id.as_str())).collect(),
            batch.iter().map(|r| ByteArray::from(r.text.as_str())).collect(),
        ];
        for c in cols {
            let mut cw = rg.next_column()?.context("schema has fewer columns")?;
            cw.typed::<ByteArrayType>().write_batch(&c, None, None)?;
            cw.close()?;
        }
        let src: Vec<ByteArray> = batch.iter().map(|r| ByteArray::from(r.source.path.as_str())).collect();
        let mut cw = rg.next_column()?.context("schema has fewer columns")?;
        cw.typed::<ByteArrayType>().write_batch(&src, None, None)?;
        cw.close()?;
        let lines: Vec<i64> = batch.iter().filter_map(|r| r.source.line.map(|l| l as i64)).collect();
        let defs: Vec<i16> = batch.iter().map(|r| r.source.line.is_some() as i16).collect();
        let mut cw = rg.next_column()?.context("schema has fewer columns")?;
        cw.typed::<Int64Type>().write_batch(&lines, Some(&defs), None)?;
        cw.close()?;
        let meta: Vec<ByteArray> = batch.iter().map(|r| ByteArray::from(r.metadata.to_string().as_str())).collect();
        let mut cw = rg.next_column()?.context("schema has fewer columns")?;
        cw.typed::<ByteArrayType>().write_batch(&meta, None, None)?;
        cw.close()?;
        rg.close()?;
        batch.clear();
        Ok(())
    };
    let f = std::fs::File::open(jsonl).with_context(|| format!("opening {}", jsonl.display()))?;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let r: Record = serde_json::from_str(&line).with_context(|| format!("{}:{}", jsonl.display(), i + 1))?;
        batch.push(r);
        if batch.len() == 8192 {
            flush(&mut w, &mut batch)?;
        }
    }
    flush(&mut w, &mut batch)?;
    w.close()?;
    std::fs::rename(&tmp, out)?;
    Ok(())
}

/// Convenience for tests and callers: the candidates file of a run folder.
pub fn candidates_path(dir: &Path) -> PathBuf {
    dir.join("candidates.jsonl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_mode_filters_and_dedups() {
        let dir = tempfile::tempdir().unwrap();
        let para = |topic: &str| {
            format!(
                "Growing {topic} at home takes patience and a sunny spot. Water the plants in the morning so the leaves dry before night, \
                 feed them every second week with a mild fertiliser, and pick off damaged leaves early. When the weather turns cold, \
                 move the pots indoors or cover the beds with straw. Most gardeners find that {topic} grown this way give a steady harvest \
                 through the season, and the plants stay healthy for several years if the soil is refreshed each spring with compost."
            )
        };
        let doc1 = format!("# Growing tomatoes\n\n{}\n\n# Quick Links\n\n{}\n\n# SALE NOW ON\n\n{}\n", para("tomatoes"), para("links"), para("sale"));
        let doc2 = format!("# Growing tomatoes again\n\n{}\n\n# Peppers\n\n{}\n", para("tomatoes"), para("peppers"));
        let p = dir.path().join("docs.jsonl");
        std::fs::write(&p, format!("{}\n{}\n{}\n", serde_json::json!({"id": "d1", "text": doc1}), serde_json::json!({"id": "d2", "text": doc2}), serde_json::json!({"id": "d3", "text": "no headings at all"}))).unwrap();
        let cfg = Config::load(
            None,
            &[
                format!("input.paths=[\"{}\"]", p.display()),
                format!("output.dir=\"{}\"", dir.path().join("out").display()),
                "segment.mode=\"headings\"".into(),
                "filter.min_chars=300".into(),
            ],
        )
        .unwrap();
        let st = prepare(&cfg).unwrap();
        assert_eq!(st.dropped.get("navigation_heading"), Some(&1));
        assert_eq!(st.dropped.get("all_caps_heading"), Some(&1));
        assert_eq!(st.dropped.get("exact_duplicate").or(st.dropped.get("near_duplicate")), Some(&1), "{:?}", st.dropped);
        assert_eq!(st.dropped.get("no_headings"), Some(&1));
        assert_eq!(st.kept, 2);
        let recs: Vec<Record> = std::fs::read_to_string(candidates_path(&dir.path().join("out"))).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let ids: Vec<_> = recs.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["d1#s0", "d2#s1"]);
        assert_eq!(recs[1].metadata["heading"], "Peppers");
        assert!(recs[0].text.starts_with("Growing tomatoes\n\n"));

        // Parquet copy of the candidates, read back by our own Parquet reader
        #[cfg(feature = "parquet")]
        {
            let mut c2 = cfg.clone();
            c2.output.candidates_parquet = true;
            prepare(&c2).unwrap();
            let pq = dir.path().join("out/candidates.parquet");
            let docs: Vec<_> = crate::reader::DocumentStream::new(vec![pq], Default::default()).collect();
            assert_eq!(docs.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(), ["d1#s0", "d2#s1"]);
            assert_eq!(docs[1].text, recs[1].text);
        }

        // `run` with run.prepare = true: the same candidates become the run's documents,
        // and a changed filter setting invalidates them (new key)
        let mut cfg = cfg;
        cfg.run.prepare = true;
        let run = crate::pipeline::RunDir(dir.path().join("run"));
        std::fs::create_dir_all(&run.0).unwrap();
        let (k1, _) = crate::pipeline::prepare_documents(&cfg, &run).unwrap();
        let docs: Vec<Record> = std::fs::read_to_string(run.documents()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(docs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["d1#s0", "d2#s1"]);
        assert!(run.0.join("prepare_stats.json").exists());
        cfg.filter.min_chars = 100_000;
        let (k2, _) = crate::pipeline::prepare_documents(&cfg, &run).unwrap();
        assert_ne!(k1, k2);
        assert_eq!(std::fs::read_to_string(run.documents()).unwrap(), "");
    }
}
