//! `backforth prepare`: the corpus crate's read → segment → filter →
//! decontaminate → deduplicate pass ([`backforth_corpus::prepare`]), written
//! as candidate records (`candidates.jsonl`, the same [`Record`] format every
//! stage reads, so `run` can take it as input) and `prepare_stats.json`.

use crate::config::Config;
use crate::record::Record;
use anyhow::{Context, Result};
pub use backforth_corpus::prepare::PrepareStats;
use backforth_corpus::prepare::{prepare_stream, PrepareSettings};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Run prepare with `cfg` into `<output.dir>/candidates.jsonl` and
/// `<output.dir>/prepare_stats.json`. Errors: inputs missing, I/O.
pub fn prepare(cfg: &Config) -> Result<PrepareStats> {
    prepare_with_progress(cfg, &mut |_, _| {})
}

/// [`prepare`], calling `progress(documents read, candidates kept)` every
/// 1,000 documents and once at the end (for a progress display).
pub fn prepare_with_progress(
    cfg: &Config,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PrepareStats> {
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
    std::fs::write(
        dir.join("prepare_stats.json"),
        serde_json::to_string_pretty(&st)?,
    )?;
    Ok(st)
}

/// Read → segment → filter → decontaminate → deduplicate into `out` (JSONL of
/// [`Record`]s, written to `<out>.tmp` and renamed when complete, so a killed
/// run leaves no partial file). `input.limit` caps the documents read.
/// Errors: inputs missing, I/O.
pub fn prepare_to(cfg: &Config, out: &Path) -> Result<PrepareStats> {
    prepare_inner(cfg, out, &mut |_, _| {})
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

fn prepare_inner(
    cfg: &Config,
    out: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<PrepareStats> {
    let tmp = out.with_extension("jsonl.tmp");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let mut ordinal = cfg.run.ordinal_base;
    let mut st = prepare_stream(&settings(cfg), progress, &mut |d| {
        let r = Record::new(d.id, ordinal, d.source, d.text, d.metadata);
        ordinal += 1;
        serde_json::to_writer(&mut w, &r)?;
        w.write_all(b"\n")?;
        Ok(())
    })?;
    w.flush()?;
    std::mem::drop(w);
    std::fs::rename(&tmp, out)?;
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
