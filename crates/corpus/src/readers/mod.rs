//! Streaming corpus readers, one module per format: [`jsonl`] (Dolma /
//! FineWeb), plain lines, a folder of text/HTML files, [`html`] pages,
//! [`warc`] (WARC/WET), [`wiki`] (MediaWiki XML dumps) and [`parquet`] (feature
//! `parquet`), each plain, `.gz`, `.zst` or `.bz2` where it applies.
//! [`DocumentStream`] picks the reader per path, applies the length rules and
//! counts. Bad input never stops a run: each problem is reported with file and
//! line (or decompressed byte offset), the item is skipped, and the skip is
//! counted by reason in [`InputStats`].

pub mod html;
pub mod io;
pub mod jsonl;
pub mod lines;
#[cfg(feature = "parquet")]
pub mod parquet;
pub mod source;
pub mod textdir;
pub mod warc;
pub mod wiki;

use crate::document::{Document, SourceLoc};
use anyhow::{Context, Result};
use io::{open_decompressed, read_capped, read_line_counted};
use serde::{Deserialize, Serialize};
use source::NotDocument;
use std::collections::{BTreeMap, VecDeque};
use std::io::BufReader;
use std::path::{Path, PathBuf};

/// How to interpret an input path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum InputFormat {
    /// By extension (after `.gz`/`.zst`/`.bz2`): a directory → `text-dir`;
    /// `jsonl`/`json`/`ndjson` → `jsonl`; `warc`/`wet`/`arc` → `warc`;
    /// `html`/`htm` → `html`; `xml` (or a dump part `xml-p…`) → `wiki`; `parquet` → `parquet`; anything
    /// else → `lines`.
    #[default]
    Auto,
    /// One JSON object per line (Dolma / FineWeb style).
    Jsonl,
    /// One document per line of plain text.
    Lines,
    /// Every matching file under a folder is one document (`.html`/`.htm`
    /// files go through main-content extraction).
    TextDir,
    /// WARC or WET (Common Crawl), optionally gzip per record.
    Warc,
    /// One HTML page per file: main-content extraction.
    Html,
    /// MediaWiki XML export (`pages-articles*.xml[.bz2]`).
    Wiki,
    /// Parquet with a text column (needs the `parquet` feature).
    Parquet,
}

/// Reader settings (the `[input]` config section minus the paths).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ReaderOptions {
    /// Input files, folders or glob patterns, read in order.
    pub paths: Vec<String>,
    /// Set by a shard of a sharded run (from its plan), never by hand: read
    /// exactly these files and byte ranges instead of `paths`. Empty = `paths`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<InputPart>,
    /// Stop after this many valid documents (0 = no limit).
    pub limit: u64,
    pub format: InputFormat,
    /// JSONL field holding the document text.
    pub text_field: String,
    /// JSONL field holding the document id (string or number); missing → `<file>:<line>`.
    pub id_field: String,
    /// Lines longer than this many bytes are skipped without being held in memory.
    pub max_line_bytes: usize,
    /// File extensions (without dot) read in `text-dir` mode.
    pub extensions: Vec<String>,
    /// Documents shorter than this many characters (after trimming) are skipped.
    pub min_chars: usize,
    /// Documents longer than this many characters are skipped (Nguyen et al.
    /// 2024 drop documents near the model's context length).
    pub max_chars: usize,
}

impl ReaderOptions {
    /// The same settings without a shard's `parts`: the logical input, which
    /// every shard of a run shares (what keys and plans hash).
    pub fn without_parts(&self) -> ReaderOptions {
        ReaderOptions {
            parts: Vec::new(),
            ..self.clone()
        }
    }
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            paths: Vec::new(),
            parts: Vec::new(),
            limit: 0,
            format: InputFormat::Auto,
            text_field: "text".into(),
            id_field: "id".into(),
            max_line_bytes: 16 << 20,
            extensions: vec![
                "txt".into(),
                "md".into(),
                "rst".into(),
                "text".into(),
                "html".into(),
                "htm".into(),
            ],
            min_chars: 1,
            max_chars: 100_000,
        }
    }
}

/// Counts of what was read and skipped, with the first problem messages.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct InputStats {
    pub files: u64,
    pub documents: u64,
    /// Skipped items by reason (`invalid_json`, `invalid_utf8`, `empty`, `too_long`, ...).
    pub skipped: BTreeMap<String, u64>,
    /// The first [`MAX_MESSAGES`] problem messages, each with file and line/offset.
    pub messages: Vec<String>,
    /// Items that are not documents by design, by reason (`warc_not_document`,
    /// `wiki_redirect`, `wiki_not_article`, ...): not problems, not skips.
    #[serde(default)]
    pub ignored: BTreeMap<String, u64>,
}

/// Cap on stored problem messages.
pub const MAX_MESSAGES: usize = 200;

impl InputStats {
    /// Count a skip and keep (and log) its message.
    pub fn skip(&mut self, reason: &str, msg: String) {
        *self.skipped.entry(reason.to_string()).or_default() += 1;
        if self.messages.len() < MAX_MESSAGES {
            tracing::warn!("{msg}");
            self.messages.push(msg);
        }
    }
    /// Add another part's counts (a shard's): counts and reasons add,
    /// messages stay capped at [`MAX_MESSAGES`].
    pub fn absorb(&mut self, o: &InputStats) {
        self.files += o.files;
        self.documents += o.documents;
        for (k, v) in &o.skipped {
            *self.skipped.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.ignored {
            *self.ignored.entry(k.clone()).or_default() += v;
        }
        let room = MAX_MESSAGES.saturating_sub(self.messages.len());
        self.messages.extend(o.messages.iter().take(room).cloned());
    }
    /// Total skipped items.
    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// Call `f(at, line, stats)` for each non-blank line of the (decompressed)
/// file at `path`, `at` being `path:line` (1-based) for messages. A line
/// over `max_line_bytes` is skipped and counted as `<kind>_line_too_long`; a
/// read error is counted as `<kind>_read_error` and ends the file (what was
/// read stays). `noun` names the file in those messages (`"seed "` gives
/// "seed line of N bytes", "rest of the seed file"). For small JSONL side
/// inputs (seed pairs, training data); the corpus readers stream instead.
/// Errors: the file cannot be opened.
pub fn for_each_line(
    path: &Path,
    max_line_bytes: usize,
    stats: &mut InputStats,
    kind: &str,
    noun: &str,
    mut f: impl FnMut(String, &[u8], &mut InputStats),
) -> std::io::Result<()> {
    let mut r = std::io::BufReader::new(io::open_decompressed(path)?);
    let mut buf = Vec::new();
    let p = path.display();
    for line in 1u64.. {
        let at = format!("{p}:{line}");
        match io::read_line_bounded(&mut r, &mut buf, max_line_bytes) {
            Ok(io::Line::Eof) => break,
            Ok(io::Line::TooLong(n)) => stats.skip(
                &format!("{kind}_line_too_long"),
                format!("{at}: {noun}line of {n} bytes skipped"),
            ),
            Ok(io::Line::Full) => {
                if !buf.iter().all(|b| b.is_ascii_whitespace()) {
                    f(at, &buf, stats);
                }
            }
            Err(e) => {
                stats.skip(
                    &format!("{kind}_read_error"),
                    format!("{at}: read error ({e}); rest of the {noun}file skipped"),
                );
                break;
            }
        }
    }
    Ok(())
}

/// Expand globs and check existence; keeps the given order, sorts each glob's matches.
/// Errors: a pattern that matches nothing or a missing path.
pub fn expand_paths(paths: &[String]) -> Result<Vec<PathBuf>> {
    Ok(expand_sized(paths)?.into_iter().map(|(p, _)| p).collect())
}

/// [`expand_paths`] with each input's size in bytes (a folder: the sum of
/// its files). Object-store URLs (`s3://bucket/dir/*.jsonl.gz`, a prefix
/// ending in `/`) are listed through the store with the `object-store`
/// feature; their sizes come from the listing. Errors: as
/// [`expand_paths`], a size that cannot be read.
pub fn expand_sized(paths: &[String]) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    for p in paths {
        if io::is_url(Path::new(p)) {
            out.extend(expand_url(p)?);
        } else if p.contains(['*', '?', '[']) {
            let mut m: Vec<PathBuf> = glob::glob(p)
                .with_context(|| format!("bad glob {p}"))?
                .filter_map(|r| r.ok())
                .collect();
            anyhow::ensure!(!m.is_empty(), "input pattern {p} matches no file");
            m.sort();
            for f in m {
                let n = io::input_size(&f).with_context(|| format!("size of {}", f.display()))?;
                out.push((f, n));
            }
        } else {
            let pb = PathBuf::from(p);
            anyhow::ensure!(pb.exists(), "input {p} does not exist");
            let n = io::input_size(&pb).with_context(|| format!("size of {p}"))?;
            out.push((pb, n));
        }
    }
    Ok(out)
}

#[cfg(feature = "object-store")]
fn expand_url(p: &str) -> Result<Vec<(PathBuf, u64)>> {
    Ok(backforth_objstore::expand(p)?
        .into_iter()
        .map(|(l, n)| (PathBuf::from(l.url()), n))
        .collect())
}

#[cfg(not(feature = "object-store"))]
fn expand_url(p: &str) -> Result<Vec<(PathBuf, u64)>> {
    anyhow::bail!(
        "input {p}: object-store URLs need backforth built with the `object-store` feature"
    )
}

/// One input as a reader takes it: a whole file or folder, or the byte range
/// `[start, end)` of an uncompressed line-oriented file (JSONL or lines). A
/// range owns the lines that *begin* inside it (the rule of Hadoop's line
/// splits): a reader starting mid-line skips to the next line, and the line
/// that crosses `end` belongs to this range. Ranges that tile a file
/// therefore read every line exactly once, and line numbers (and the ids
/// made from them) are the same as reading the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputPart {
    pub path: PathBuf,
    /// Byte range in the file; `None` = the whole input.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<(u64, u64)>,
}

impl InputPart {
    /// A whole file or folder.
    pub fn whole(path: PathBuf) -> Self {
        InputPart { path, range: None }
    }
}

/// Whether `path` can be read by byte ranges under `opts.format`: an
/// uncompressed JSONL or lines file (compressed streams and record formats
/// such as WARC or Parquet are taken whole).
pub fn splittable(path: &Path, format: InputFormat) -> bool {
    let fmt = match format {
        InputFormat::Auto => detect_format(path),
        f => f,
    };
    matches!(fmt, InputFormat::Jsonl | InputFormat::Lines)
        && !io::compressed(path)
        && (io::is_url(path) || path.is_file())
}

/// The parts `opts` names: `opts.parts` when set (a shard), else every path
/// of `opts.paths` expanded ([`expand_paths`]) and taken whole.
/// Errors: no input at all, as [`expand_paths`].
pub fn input_parts(opts: &ReaderOptions) -> Result<Vec<InputPart>> {
    if !opts.parts.is_empty() {
        return Ok(opts.parts.clone());
    }
    anyhow::ensure!(
        !opts.paths.is_empty(),
        "no input: set input.paths (or pass --input)"
    );
    Ok(expand_paths(&opts.paths)?
        .into_iter()
        .map(InputPart::whole)
        .collect())
}

fn detect_format(path: &Path) -> InputFormat {
    if !io::is_url(path) && path.is_dir() {
        return InputFormat::TextDir;
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    let base = io::strip_compression(&name);
    let ext = base.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    // Wikimedia names dump parts `...-pages-articles1.xml-p10p30302.bz2`
    if ext.starts_with("xml-p") {
        return InputFormat::Wiki;
    }
    match ext {
        "jsonl" | "json" | "ndjson" => InputFormat::Jsonl,
        "warc" | "wet" | "arc" => InputFormat::Warc,
        "html" | "htm" | "xhtml" => InputFormat::Html,
        "xml" => InputFormat::Wiki,
        "parquet" => InputFormat::Parquet,
        _ => InputFormat::Lines,
    }
}

/// The input being read: every format is a [`source::DocumentSource`].
type Current = Box<dyn source::DocumentSource>;

/// A streaming iterator of valid documents over many inputs; problems go to [`InputStats`].
pub struct DocumentStream {
    opts: ReaderOptions,
    paths: VecDeque<InputPart>,
    cur: Option<Current>,
    /// What has been read and skipped so far.
    pub stats: InputStats,
}

impl DocumentStream {
    /// Stream over already-expanded paths (see [`expand_paths`]).
    pub fn new(paths: Vec<PathBuf>, opts: ReaderOptions) -> Self {
        Self::from_parts(paths.into_iter().map(InputPart::whole).collect(), opts)
    }

    /// Stream over parts (whole inputs or byte ranges, see [`InputPart`]).
    pub fn from_parts(parts: Vec<InputPart>, opts: ReaderOptions) -> Self {
        DocumentStream {
            opts,
            paths: parts.into(),
            cur: None,
            stats: InputStats::default(),
        }
    }

    fn open(&mut self, part: InputPart) {
        let path = part.path;
        let fmt = match self.opts.format {
            InputFormat::Auto => detect_format(&path),
            f => f,
        };
        self.stats.files += 1;
        if let Some(range) = part.range {
            if !splittable(&path, fmt) {
                self.stats.skip(
                    "open_error",
                    format!("{}: a byte range was asked of a file that cannot be split (compressed or not line-oriented); part skipped", path.display()),
                );
                return;
            }
            match open_range(&path, range.0) {
                Ok((reader, pos, line)) => {
                    let fields = (fmt == InputFormat::Jsonl)
                        .then_some((self.opts.text_field.as_str(), self.opts.id_field.as_str()));
                    self.cur = Some(Box::new(lines::LineSource::new(
                        path,
                        reader,
                        (line, pos, Some(range.1)),
                        fields,
                        self.opts.max_line_bytes,
                    )))
                }
                Err(e) => self.stats.skip(
                    "open_error",
                    format!(
                        "{}: cannot open byte range {}..{}: {e}",
                        path.display(),
                        range.0,
                        range.1
                    ),
                ),
            }
            return;
        }
        match fmt {
            InputFormat::TextDir => {
                let mut files = Vec::new();
                if let Err(e) = walk(&path, &self.opts.extensions, &mut files) {
                    self.stats.skip("open_error", format!("{}: cannot list folder: {e}", path.display()));
                    return;
                }
                files.sort();
                self.cur = Some(Box::new(textdir::TextDirSource::new(
                    path,
                    files,
                    self.opts.max_line_bytes as u64,
                )));
            }
            InputFormat::Html => {
                let id = path.display().to_string();
                let item = read_capped(&path, self.opts.max_line_bytes as u64).map_err(|e| NotDocument::Skip {
                    reason: "read_error",
                    message: format!("{}: {e}, file skipped", path.display()),
                });
                let item = item.and_then(|b| html::html_document(&b, id, &path));
                self.cur = Some(Box::new(std::iter::once(item)));
            }
            InputFormat::Warc | InputFormat::Wiki => match open_decompressed(&path) {
                Ok(r) => {
                    self.cur = Some(if fmt == InputFormat::Warc {
                        Box::new(warc::WarcSource::new(&path, r))
                    } else {
                        Box::new(wiki::WikiSource::new(&path, r, self.opts.max_line_bytes))
                    })
                }
                Err(e) => self.stats.skip("open_error", format!("{}: cannot open: {e}", path.display())),
            },
            #[cfg(feature = "parquet")]
            InputFormat::Parquet => {
                self.cur = Some(Box::new(parquet::ParquetSource::new(&path, &self.opts.text_field, &self.opts.id_field)))
            }
            #[cfg(not(feature = "parquet"))]
            InputFormat::Parquet => self.stats.skip(
                "open_error",
                format!("{}: Parquet input needs backforth built with the `parquet` feature; file skipped", path.display()),
            ),
            _ => match open_decompressed(&path) {
                Ok(r) => {
                    let fields = (fmt == InputFormat::Jsonl)
                        .then_some((self.opts.text_field.as_str(), self.opts.id_field.as_str()));
                    self.cur = Some(Box::new(lines::LineSource::new(
                        path,
                        BufReader::with_capacity(1 << 16, r),
                        (0, 0, None),
                        fields,
                        self.opts.max_line_bytes,
                    )))
                }
                Err(e) => self.stats.skip("open_error", format!("{}: cannot open: {e}", path.display())),
            },
        }
    }

    /// Check length rules; Some(doc) if it passes.
    fn admit(&mut self, doc: Document) -> Option<Document> {
        let trimmed = doc.text.trim();
        let where_ = fmt_loc(&doc.source);
        if trimmed.is_empty() {
            self.stats
                .skip("empty", format!("{where_}: empty document skipped"));
            return None;
        }
        let n = trimmed.chars().count();
        if n < self.opts.min_chars {
            self.stats.skip(
                "too_short",
                format!(
                    "{where_}: document of {n} chars is under min_chars={}, skipped",
                    self.opts.min_chars
                ),
            );
            return None;
        }
        if n > self.opts.max_chars {
            self.stats.skip(
                "too_long",
                format!(
                    "{where_}: document of {n} chars is over max_chars={}, skipped",
                    self.opts.max_chars
                ),
            );
            return None;
        }
        self.stats.documents += 1;
        Some(doc)
    }
}

impl DocumentStream {
    /// Count a source item: admit a document, record a skip or an ignored item.
    fn take(&mut self, item: source::SourceItem) -> Option<Document> {
        match item {
            Ok(d) => self.admit(d),
            Err(NotDocument::Skip { reason, message }) => {
                self.stats.skip(reason, message);
                None
            }
            Err(NotDocument::Ignore { reason }) => {
                *self.stats.ignored.entry(reason.to_string()).or_default() += 1;
                None
            }
        }
    }
}

/// A line file opened inside a byte range: the reader, the byte offset of
/// its first line and the number of lines before that.
type RangeStart = (BufReader<Box<dyn std::io::Read>>, u64, u64);

/// Open `path` at the first line starting in `[start, end)`: returns the
/// reader there, that line's byte offset and the number of lines before it
/// (counted from the file's start, so line numbers match a whole-file read).
fn open_range(path: &Path, start: u64) -> std::io::Result<RangeStart> {
    use std::io::Read;
    let mut pos = 0u64;
    if start > 0 {
        // the line holding byte start-1 ends at or after start-1: skip through
        // its newline (a limit of 0 bytes holds none of it)
        let mut r = BufReader::new(io::open_at(path, start - 1)?);
        let (_, n) = read_line_counted(&mut r, &mut Vec::new(), 0)?;
        pos = start - 1 + n;
    }
    // lines before `pos`: count newlines in [0, pos) (for an object, a
    // streamed read of its head, never held)
    let mut head = io::open_at(path, 0)?.take(pos);
    let mut lines = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let got = head.read(&mut buf)?;
        if got == 0 {
            break;
        }
        lines += buf[..got].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok((
        BufReader::with_capacity(1 << 16, io::open_at(path, pos)?),
        pos,
        lines,
    ))
}

fn fmt_loc(s: &SourceLoc) -> String {
    match s.line {
        Some(l) => format!("{}:{l}", s.path),
        None => s.path.clone(),
    }
}

fn walk(dir: &Path, exts: &[String], out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            walk(&p, exts, out)?;
        } else {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            if exts
                .iter()
                .any(|x| name.ends_with(&format!(".{}", x.to_ascii_lowercase())))
            {
                out.push(p);
            }
        }
    }
    Ok(())
}

impl Iterator for DocumentStream {
    type Item = Document;

    fn next(&mut self) -> Option<Document> {
        loop {
            let Some(cur) = self.cur.as_mut() else {
                let p = self.paths.pop_front()?;
                self.open(p);
                continue;
            };
            match cur.next() {
                None => self.cur = None,
                Some(item) => {
                    if let Some(d) = self.take(item) {
                        return Some(d);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::io::Write;

    fn stream(paths: Vec<PathBuf>, opts: ReaderOptions) -> (Vec<Document>, InputStats) {
        let mut s = DocumentStream::new(paths, opts);
        let docs: Vec<_> = s.by_ref().collect();
        (docs, s.stats)
    }

    #[test]
    fn jsonl_good_and_bad_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("docs.jsonl");
        let mut f = File::create(&p).unwrap();
        writeln!(
            f,
            r#"{{"id":"a","text":"hello world","source":"cc","metadata":{{"url":"u"}}}}"#
        )
        .unwrap();
        writeln!(f, r#"{{"id":"b","text":"#).unwrap(); // malformed
        f.write_all(b"{\"id\":\"c\",\"text\":\"bad \xff utf8\"}\n")
            .unwrap();
        writeln!(f, r#"{{"id":7,"text":"numeric id"}}"#).unwrap();
        writeln!(f, r#"{{"id":"e","text":"   "}}"#).unwrap();
        writeln!(f, r#"{{"id":"f","body":"no text"}}"#).unwrap();
        writeln!(f, r#"{{"text":"no id"}}"#).unwrap();
        drop(f);
        let (docs, st) = stream(vec![p.clone()], ReaderOptions::default());
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["a", "7", &format!("{}:7", p.display())]);
        assert_eq!(docs[0].metadata["metadata"]["url"], "u");
        assert_eq!(docs[0].source.line, Some(1));
        assert_eq!(st.skipped["invalid_json"], 1);
        assert_eq!(st.skipped["invalid_utf8"], 1);
        assert_eq!(st.skipped["empty"], 1);
        assert_eq!(st.skipped["missing_text"], 1);
        assert!(
            st.messages
                .iter()
                .any(|m| m.contains("docs.jsonl:2: invalid JSON")),
            "{:?}",
            st.messages
        );
        assert!(
            st.messages
                .iter()
                .any(|m| m.contains("docs.jsonl:3: invalid UTF-8 at byte 22")),
            "{:?}",
            st.messages
        );
    }

    #[test]
    fn gzip_zstd_and_truncated_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let lines: String = (0..50)
            .map(|i| {
                format!(
                    "{{\"id\":\"d{i}\",\"text\":\"document number {i} {}\"}}\n",
                    "x".repeat(200)
                )
            })
            .collect();
        let gz = dir.path().join("a.jsonl.gz");
        let mut e = flate2::write::GzEncoder::new(
            File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        e.write_all(lines.as_bytes()).unwrap();
        e.finish().unwrap();
        let zs = dir.path().join("b.jsonl.zst");
        std::fs::write(&zs, zstd::encode_all(lines.as_bytes(), 3).unwrap()).unwrap();
        let (docs, st) = stream(vec![gz.clone(), zs], ReaderOptions::default());
        assert_eq!(docs.len(), 100);
        assert_eq!(st.skipped_total(), 0);
        // truncate the gzip file: some docs come out, then a read error is counted, the next file still read
        let bytes = std::fs::read(&gz).unwrap();
        let cut = dir.path().join("cut.jsonl.gz");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let txt = dir.path().join("c.txt");
        std::fs::write(&txt, "one doc\n\nanother doc\n").unwrap();
        let (docs, st) = stream(vec![cut, txt], ReaderOptions::default());
        assert_eq!(st.skipped["read_error"], 1);
        assert!(
            st.messages[0].contains("cut.jsonl.gz:")
                && st.messages[0].contains("rest of the file skipped"),
            "{:?}",
            st.messages
        );
        let n_gz = docs.iter().filter(|d| d.id.starts_with('d')).count();
        assert!(n_gz < 50);
        assert_eq!(
            docs.iter().filter(|d| d.id.starts_with("c.txt:")).count(),
            2
        );
        assert_eq!(docs.last().unwrap().id, "c.txt:3");
    }

    #[test]
    fn long_lines_and_long_documents() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.jsonl");
        let mut f = File::create(&p).unwrap();
        writeln!(f, "{{\"id\":\"huge\",\"text\":\"{}\"}}", "y".repeat(3000)).unwrap();
        writeln!(f, "{{\"id\":\"long\",\"text\":\"{}\"}}", "z".repeat(500)).unwrap();
        writeln!(f, "{{\"id\":\"ok\",\"text\":\"fine\"}}").unwrap();
        drop(f);
        let opts = ReaderOptions {
            max_line_bytes: 2000,
            max_chars: 100,
            ..Default::default()
        };
        let (docs, st) = stream(vec![p], opts);
        assert_eq!(docs.len(), 1);
        assert_eq!(st.skipped["line_too_long"], 1);
        assert_eq!(st.skipped["too_long"], 1);
    }

    #[test]
    fn text_dir_and_globs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("b.txt"), "bee").unwrap();
        std::fs::write(dir.path().join("sub/a.rst"), "ay").unwrap();
        std::fs::write(dir.path().join("skip.bin"), "no").unwrap();
        std::fs::write(dir.path().join("bad.txt"), b"\xfe\xff").unwrap();
        let (docs, st) = stream(vec![dir.path().to_path_buf()], ReaderOptions::default());
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, ["b.txt", "sub/a.rst"]);
        assert_eq!(st.skipped["invalid_utf8"], 1);
        let g = format!("{}/*.txt", dir.path().display());
        assert_eq!(expand_paths(&[g]).unwrap().len(), 2);
        assert!(expand_paths(&[format!("{}/*.nothing", dir.path().display())]).is_err());
        // empty file: no documents, no error
        let e = dir.path().join("empty.jsonl");
        std::fs::write(&e, "").unwrap();
        let (docs, st) = stream(vec![e], ReaderOptions::default());
        assert!(docs.is_empty() && st.skipped_total() == 0);
    }
}
