//! `backforth prepare`: the corpus crate's read → segment → filter →
//! decontaminate → deduplicate pass ([`backforth_corpus::prepare`]), written
//! as candidate records (`candidates.jsonl`, the same [`Record`] format every
//! stage reads, so `run` can take it as input) and `prepare_stats.json`.

use crate::config::Config;
use crate::docfilter::DocFilterModel;
use crate::record::Record;
use backforth_inference::encoder::SentenceEmbedder;
use anyhow::{Context, Result};
pub use backforth_corpus::prepare::PrepareStats;
use backforth_corpus::prepare::{prepare_stream, PrepareSettings};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Run prepare with `cfg` into `<output.dir>/candidates.jsonl` and
/// `<output.dir>/prepare_stats.json`; `embedder` runs the document filter
/// (`[doc_filter]`, needed when `doc_filter.model` is set). Errors: inputs
/// missing, I/O, a document filter without its embedder.
pub fn prepare(cfg: &Config, embedder: Option<&mut dyn SentenceEmbedder>) -> Result<PrepareStats> {
    prepare_with_progress(cfg, embedder, &mut |_, _| {})
}

/// [`prepare`], calling `progress(documents read, candidates kept)` every
/// 1,000 documents and once at the end (for a progress display).
pub fn prepare_with_progress(
    cfg: &Config,
    embedder: Option<&mut dyn SentenceEmbedder>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PrepareStats> {
    let dir = PathBuf::from(&cfg.output.dir);
    std::fs::create_dir_all(&dir)?;
    #[allow(unused_mut)] // only the `parquet` feature amends it
    let mut st = prepare_inner(cfg, &dir.join("candidates.jsonl"), embedder, progress)?;
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
    std::fs::write(
        dir.join("prepare_stats.json"),
        serde_json::to_string_pretty(&st)?,
    )?;
    Ok(st)
}

/// Read → segment → filter → decontaminate → deduplicate (→ document
/// filter) into `out` (JSONL of [`Record`]s, written to `<out>.tmp` and
/// renamed when complete, so a killed run leaves no partial file).
/// `input.limit` caps the documents read. Errors: inputs missing, I/O, a
/// document filter without its embedder.
pub fn prepare_to(
    cfg: &Config,
    out: &Path,
    embedder: Option<&mut dyn SentenceEmbedder>,
) -> Result<PrepareStats> {
    prepare_inner(cfg, out, embedder, &mut |_, _| {})
}

/// The corpus sections of `cfg` that prepare reads.
pub fn settings(cfg: &Config) -> PrepareSettings<'_> {
    PrepareSettings {
        input: &cfg.input,
        segment: &cfg.segment,
        filter: &cfg.filter,
        dedup: &cfg.dedup,
        decontam: &cfg.decontam,
    }
}

/// Candidates scored by the document filter together (the embedder batches their windows).
const FILTER_BATCH: usize = 32;

/// The document filter of `cfg` with its embedder, or `None` when
/// `doc_filter.model` is empty. Errors: the model does not load, or no
/// embedder was given.
fn document_filter<'e>(
    cfg: &Config,
    embedder: Option<&'e mut dyn SentenceEmbedder>,
) -> Result<Option<(DocFilterModel, &'e mut dyn SentenceEmbedder)>> {
    if cfg.doc_filter.model.is_empty() {
        return Ok(None);
    }
    let m = DocFilterModel::load(Path::new(&cfg.doc_filter.model))?;
    let e = embedder.with_context(|| {
        format!(
            "doc_filter.model needs doc_filter.embedding_model (the sentence embedder it was trained with: {})",
            m.embedder
        )
    })?;
    Ok(Some((m, e)))
}

fn prepare_inner(
    cfg: &Config,
    out: &Path,
    embedder: Option<&mut dyn SentenceEmbedder>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PrepareStats> {
    let mut filter = document_filter(cfg, embedder)?;
    let tmp = out.with_extension("jsonl.tmp");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let mut ordinal = cfg.run.ordinal_base;
    let mut pending: Vec<Record> = Vec::new();
    let mut filtered = 0u64;
    // Score the pending candidates (when a filter is set) and write those it
    // keeps, with their probability in `metadata.doc_filter`; ordinals count
    // written records only, so they stay contiguous.
    let mut flush = |pending: &mut Vec<Record>, filtered: &mut u64| -> Result<()> {
        let scores: Vec<Option<f32>> = match filter.as_mut() {
            Some((m, e)) => {
                let texts: Vec<&str> = pending.iter().map(|r| r.text.as_str()).collect();
                m.score(&mut **e, &texts)?.into_iter().map(Some).collect()
            }
            None => vec![None; pending.len()],
        };
        for (mut r, p) in pending.drain(..).zip(scores) {
            if let Some(p) = p {
                if (p as f64) < cfg.doc_filter.min_probability {
                    *filtered += 1;
                    continue;
                }
                if let Some(o) = r.metadata.as_object_mut() {
                    // unrounded, so that a threshold read back from it selects exactly
                    o.insert("doc_filter".into(), serde_json::json!(p as f64));
                }
            }
            r.ordinal = ordinal;
            ordinal += 1;
            serde_json::to_writer(&mut w, &r)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    };
    let mut st = prepare_stream(&settings(cfg), progress, &mut |d| {
        if !cfg.doc_filter.model.is_empty() && d.text.trim().is_empty() {
            // nothing to rate (the corpus filters normally drop these first)
            filtered += 1;
            return Ok(());
        }
        pending.push(Record::new(d.id, 0, d.source, d.text, d.metadata));
        if pending.len() >= FILTER_BATCH {
            flush(&mut pending, &mut filtered)?;
        }
        Ok(())
    })?;
    flush(&mut pending, &mut filtered)?;
    drop(flush);
    w.flush()?;
    std::mem::drop(w);
    std::fs::rename(&tmp, out)?;
    if filtered > 0 {
        *st.dropped.entry("doc_filter".into()).or_insert(0) += filtered;
        st.kept -= filtered;
    }
    st.output = out.display().to_string();
    Ok(st)
}

/// Convert a JSONL file of [`Record`]s to Parquet (one row group per 8,192
/// records, zstd): `id`, `text`, `source` (UTF-8), `line` (INT64, null when
/// absent), `metadata` (JSON text). Written to `<out>.tmp`, then renamed.
/// Errors: I/O, a line that is not a Record.
#[cfg(feature = "parquet")]
pub fn write_parquet(jsonl: &Path, out: &Path) -> Result<()> {
    use crate::parquet_out::{optional_column, utf8_column, ParquetOut};
    use std::io::BufRead;
    let mut pq = ParquetOut::create(
        out,
        "message candidate { REQUIRED BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY text (UTF8); REQUIRED BYTE_ARRAY source (UTF8); OPTIONAL INT64 line; REQUIRED BYTE_ARRAY metadata (UTF8); }",
    )?;
    let mut batch: Vec<Record> = Vec::with_capacity(8192);
    let flush = |pq: &mut ParquetOut, batch: &mut Vec<Record>| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut rg = pq.writer.next_row_group()?;
        utf8_column(&mut rg, batch.iter().map(|r| r.id.as_str()))?;
        utf8_column(&mut rg, batch.iter().map(|r| r.text.as_str()))?;
        utf8_column(&mut rg, batch.iter().map(|r| r.source.path.as_str()))?;
        optional_column::<parquet::data_type::Int64Type>(
            &mut rg,
            batch.iter().map(|r| r.source.line.map(|l| l as i64)),
        )?;
        let meta: Vec<String> = batch.iter().map(|r| r.metadata.to_string()).collect();
        utf8_column(&mut rg, meta.iter().map(String::as_str))?;
        rg.close()?;
        batch.clear();
        Ok(())
    };
    let f = std::fs::File::open(jsonl).with_context(|| format!("opening {}", jsonl.display()))?;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        let r: Record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}", jsonl.display(), i + 1))?;
        batch.push(r);
        if batch.len() == 8192 {
            flush(&mut pq, &mut batch)?;
        }
    }
    flush(&mut pq, &mut batch)?;
    pq.finish()
}

/// Convenience for tests and callers: the candidates file of a run folder.
pub fn candidates_path(dir: &Path) -> PathBuf {
    dir.join("candidates.jsonl")
}
