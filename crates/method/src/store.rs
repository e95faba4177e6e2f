//! Append-only JSONL stage files that make runs resumable.
//!
//! Each completed record is written as one line with a single `write` call
//! as soon as its generation finishes. A SIGKILL can at worst leave one
//! partial last line; [`StageFile::open`] truncates it. Records are keyed by
//! id + stage key, so a rerun skips exactly the work already on disk and a
//! config change (new key) redoes it without touching the old lines.

use crate::record::Record;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Run-folder layout: `documents.jsonl`, `stages/<stage>.jsonl`,
/// `summary.json` under one folder.
pub struct RunDir(pub PathBuf);
impl RunDir {
    /// The run's documents (records before any stage).
    pub fn documents(&self) -> PathBuf {
        self.0.join("documents.jsonl")
    }
    /// One stage's output file, by stage name.
    pub fn stage(&self, name: &str) -> PathBuf {
        self.0.join("stages").join(format!("{name}.jsonl"))
    }
    /// The run summary.
    pub fn summary(&self) -> PathBuf {
        self.0.join("summary.json")
    }
    /// An export by name (`dataset`, `curated`, `distilled`, a defined stage's): `<name>.jsonl`.
    pub fn export(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.jsonl"))
    }
    /// The per-pair check results.
    pub fn checks(&self) -> PathBuf {
        self.0.join("checks.jsonl")
    }
    /// The saved configuration of the run.
    pub fn config(&self) -> PathBuf {
        self.0.join("config.toml")
    }
}

/// Curation score per record id of a run's `stages/curate.jsonl` (the last
/// record per id: the file is append-only, so a rerun under a new key comes
/// after the old lines; unparsed scores and unreadable lines left out).
/// Errors: I/O.
pub fn curation_scores(run: &RunDir) -> Result<std::collections::BTreeMap<String, u8>> {
    let mut out = std::collections::BTreeMap::new();
    for r in RecordLines::open(&run.stage("curate"))?.flatten() {
        if let Some(s) = r.score() {
            out.insert(r.id, s);
        }
    }
    Ok(out)
}

/// Cut a partial trailing line (no final `\n`) left by a killed writer. Returns bytes removed.
pub fn truncate_partial_tail(path: &Path) -> Result<u64> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    // scan backwards for the last newline
    let mut pos = len;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let start = pos.saturating_sub(buf.len() as u64);
        let n = (pos - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        std::io::Read::read_exact(&mut f, &mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            let keep = start + i as u64 + 1;
            if keep < len {
                f.set_len(keep)?;
            }
            return Ok(len - keep);
        }
        if start == 0 {
            f.set_len(0)?;
            return Ok(len);
        }
        pos = start;
    }
}

/// Read the records of a stage file that carry `key` for the stage named `stage` (or, with
/// `stage = None`, all records), first occurrence of each id, in file order;
/// a record holding several pairs comes out as one record per pair
/// ([`crate::pairs::fan_out`]).
/// Lines that are not valid records are counted in the returned tuple's second field.
pub fn read_records(path: &Path, stage: Option<&str>, key: &str) -> Result<(Vec<Record>, u64)> {
    let mut out = Vec::new();
    let mut bad = 0;
    let mut seen = HashSet::new();
    for_each_record(path, |r| {
        match r {
            Ok(rec) => {
                let matches = match stage {
                    None => true,
                    Some(s) => rec.generation(s).is_some_and(|g| g.stage_key == key),
                };
                if matches && seen.insert(rec.id.clone()) {
                    out.extend(crate::pairs::fan_out(rec));
                }
            }
            Err(_) => bad += 1,
        }
        Ok(())
    })?;
    Ok((out, bad))
}

/// Call `f` on every line of a JSONL record file (missing file = no lines).
pub fn for_each_record(
    path: &Path,
    mut f: impl FnMut(Result<Record, String>) -> Result<()>,
) -> Result<()> {
    for r in RecordLines::open(path)? {
        f(r)?;
    }
    Ok(())
}

/// Streaming iterator over the records of a JSONL file: `Err(message)` for a
/// line that is not a record (message has file:line). A missing file yields nothing.
pub struct RecordLines {
    path: String,
    lines: Option<std::io::Lines<BufReader<std::io::Take<File>>>>,
    line: u64,
}

impl RecordLines {
    /// Open `path`. Errors: the file exists but cannot be opened.
    pub fn open(path: &Path) -> Result<RecordLines> {
        Self::open_until(path, u64::MAX)
    }

    /// Open `path` and read only its first `len` bytes (a file that is
    /// being appended to, read as it stood). Errors: as [`Self::open`].
    pub fn open_until(path: &Path, len: u64) -> Result<RecordLines> {
        let lines = match File::open(path) {
            Ok(f) => Some(BufReader::with_capacity(1 << 16, f.take(len)).lines()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        Ok(RecordLines {
            path: path.display().to_string(),
            lines,
            line: 0,
        })
    }
}

impl Iterator for RecordLines {
    type Item = Result<Record, String>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let l = self.lines.as_mut()?.next()?;
            self.line += 1;
            match l {
                Ok(l) if l.trim().is_empty() => continue,
                Ok(l) => {
                    return Some(
                        serde_json::from_str(&l)
                            .map_err(|e| format!("{}:{}: {e}", self.path, self.line)),
                    )
                }
                Err(e) => return Some(Err(format!("{}:{}: {e}", self.path, self.line))),
            }
        }
    }
}

/// An open stage output file.
pub struct StageFile {
    pub path: PathBuf,
    file: File,
    /// Ids already done under the current key.
    pub done: HashSet<String>,
    /// Bytes of a partial last line removed at open.
    pub truncated_bytes: u64,
}

impl StageFile {
    /// Open (creating) `path`, repair a partial tail, and collect ids done under `key`.
    pub fn open(path: &Path, stage: &str, key: &str) -> Result<StageFile> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d)?;
        }
        let truncated_bytes = truncate_partial_tail(path)?;
        if truncated_bytes > 0 {
            tracing::warn!("{}: removed a partial last line ({truncated_bytes} bytes) left by an interrupted run", path.display());
        }
        // only the ids are kept, so a stage file of any size fits in memory
        let mut done = HashSet::new();
        for rec in RecordLines::open(path)?.flatten() {
            if rec.generation(stage).is_some_and(|g| g.stage_key == key) {
                done.insert(rec.id);
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(StageFile {
            path: path.to_path_buf(),
            file,
            done,
            truncated_bytes,
        })
    }

    /// Append one record as one line (a single write call).
    pub fn append(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(r)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.done.insert(r.id.clone());
        Ok(())
    }
}

/// Write `path` through `f` into a temp file beside it, then rename it into
/// place: readers see the old file or the whole new one, never a part.
pub fn write_atomic(path: &Path, f: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
    f(&mut w)?;
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::*;

    fn rec(id: &str, key: &str) -> Record {
        let mut r = Record::new(
            id.into(),
            0,
            SourceLoc::default(),
            "t".into(),
            serde_json::Value::Null,
        );
        r.backtranslation = Some(Generation {
            value: Some("x".into()),
            score: None,
            parse: ParseStatus::Ok,
            raw: "x".into(),
            model: "m".into(),
            sampling: Sampling {
                temperature: 1.0,
                top_p: 0.9,
                max_tokens: 8,
                seed: 1,
                stop: vec![],
            },
            template: "t".into(),
            template_hash: "h".into(),
            stage_key: key.into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish_reason: "stop".into(),
            verdict: None,
            salvaged: false,
            pairs: vec![],
        });
        r
    }

    #[test]
    fn resume_after_partial_write() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s/backtranslate.jsonl");
        let mut f = StageFile::open(&p, "backtranslate", "k1").unwrap();
        f.append(&rec("a", "k1")).unwrap();
        f.append(&rec("b", "k0")).unwrap(); // stale key
        drop(f);
        // simulate a kill in the middle of a line
        let mut raw = OpenOptions::new().append(true).open(&p).unwrap();
        raw.write_all(b"{\"id\":\"c\",\"ordin").unwrap();
        drop(raw);
        let mut f = StageFile::open(&p, "backtranslate", "k1").unwrap();
        assert!(f.truncated_bytes > 0);
        assert_eq!(f.done, HashSet::from(["a".to_string()]));
        f.append(&rec("c", "k1")).unwrap();
        drop(f);
        let (recs, bad) = read_records(&p, Some("backtranslate"), "k1").unwrap();
        assert_eq!(bad, 0);
        assert_eq!(
            recs.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["a", "c"]
        );
    }

    #[test]
    fn truncate_whole_file_without_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jsonl");
        std::fs::write(&p, "partial").unwrap();
        assert_eq!(truncate_partial_tail(&p).unwrap(), 7);
        assert_eq!(std::fs::read(&p).unwrap().len(), 0);
        assert_eq!(
            truncate_partial_tail(&dir.path().join("missing")).unwrap(),
            0
        );
    }
}

/// Records of an upstream file: with `Some((stage, key))` only that key's
/// records; first occurrence per id; unreadable lines logged and skipped; a
/// record holding several pairs comes out as one record per pair
/// ([`crate::pairs::fan_out`]: what the stages after it and the exports read).
pub fn upstream_records(
    path: &Path,
    filter: Option<(String, String)>,
) -> Result<impl Iterator<Item = Record>> {
    upstream_records_until(path, filter, u64::MAX)
}

/// [`upstream_records`] of the first `len` bytes of `path` (the file as it
/// stood at some moment, while it is appended to).
pub fn upstream_records_until(
    path: &Path,
    filter: Option<(String, String)>,
    len: u64,
) -> Result<impl Iterator<Item = Record>> {
    let mut seen = HashSet::new();
    Ok(RecordLines::open_until(path, len)?.filter_map(move |r| match r {
        Ok(rec) => {
            if let Some((s, k)) = &filter {
                if !rec.generation(s).is_some_and(|g| &g.stage_key == k) {
                    return None;
                }
            }
            seen.insert(rec.id.clone()).then_some(rec)
        }
        Err(e) => {
            tracing::warn!("skipping unreadable record line {e}");
            None
        }
    })
    .flat_map(crate::pairs::fan_out))
}
