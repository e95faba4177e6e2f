//! Readers for web-scale corpus formats, each a [`DocumentSource`] over one
//! input file: WARC/WET (Common Crawl, ISO 28500 WARC 1.0/1.1; gzip per
//! record is read by a multi-member decoder), single HTML pages (main-content
//! extraction), MediaWiki XML dumps (`.xml`, `.xml.bz2`; export schema 0.10+)
//! and Parquet shards (feature `parquet`).
//!
//! Parsing is done by maintained crates: `warc` (record framing), `dom_smoothie`
//! (a port of Mozilla Readability: main-content extraction, Markdown output so
//! the heading structure survives for segmenting), `quick-xml` (dump XML),
//! `parse-wiki-text-2` (wikitext AST) and `parquet` (columnar files). What is
//! ours: turning those outputs into [`Document`]s — rendering the wikitext AST
//! to plain text with Markdown headings, cleaning Markdown link syntax — and
//! reporting problems with file and offset without stopping the run.

use crate::reader::Document;
use crate::record::SourceLoc;
use std::io::{self, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Why an item from a source was not a document: a problem (counted as a
/// skip, with a message giving file and offset) or an item that is simply not
/// a document (a WARC request record, a wiki redirect; counted as ignored).
#[derive(Debug, Clone, PartialEq)]
pub enum NotDocument {
    /// Bad or unusable input. `reason` is the summary key (`warc_bad_record`, `html_no_content`, ...).
    Skip { reason: &'static str, message: String },
    /// Not a document by design; `reason` is the summary key (`warc_request`, `wiki_redirect`, ...).
    Ignore { reason: &'static str },
}

/// One item from a [`DocumentSource`].
pub type SourceItem = Result<Document, NotDocument>;

/// A streaming reader over one input file. Every corpus format implements it;
/// [`crate::reader::DocumentStream`] applies the length rules and counts.
pub trait DocumentSource: Iterator<Item = SourceItem> {}
impl<T: Iterator<Item = SourceItem>> DocumentSource for T {}

fn skip(reason: &'static str, message: String) -> SourceItem {
    Err(NotDocument::Skip { reason, message })
}

/// Counts bytes read through it (shared counter), to report decompressed offsets.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    /// Wrap `inner`; returns the reader and its counter.
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (Counting { inner, count: count.clone() }, count)
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

// ---------------------------------------------------------------- HTML

/// Why [`html_to_text`] found no text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoContent(pub String);

/// Extract the main content of an HTML page as plain text with Markdown ATX
/// headings (`#`, `##`, ...) so [`crate::segment::segments`] can split it.
/// Boilerplate (navigation, sidebars, footers) is removed by Readability's
/// scoring (dom_smoothie); links are reduced to their text, images dropped,
/// Markdown escapes undone outside code fences. The page title becomes a
/// level-1 heading when the extracted text does not start with a heading.
/// Returns `(title, text)`. Errors: the page has no extractable main content
/// (e.g. no `<body>`, only scripts).
pub fn html_to_text(html: &str, url: Option<&str>) -> Result<(String, String), NoContent> {
    let cfg = dom_smoothie::Config { text_mode: dom_smoothie::TextMode::Markdown, ..Default::default() };
    let mut r = dom_smoothie::Readability::new(html, url, Some(cfg)).map_err(|e| NoContent(e.to_string()))?;
    let a = r.parse().map_err(|e| NoContent(e.to_string()))?;
    let body = clean_markdown(&a.text_content);
    if body.trim().is_empty() {
        return Err(NoContent("extracted text is empty".into()));
    }
    let title = a.title.trim().to_string();
    let text = if body.trim_start().starts_with('#') || title.is_empty() { body } else { format!("# {title}\n\n{body}") };
    Ok((title, text))
}

fn link_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    // [text](target "title") and ![alt](src): text may hold escaped brackets.
    RE.get_or_init(|| regex::Regex::new(r#"(!?)\[((?:\\.|[^\]\\])*)\]\((?:[^()\s]|\([^)]*\))*(?:\s+"[^"]*")?\)"#).unwrap())
}

/// Markdown from Readability → plain text: links to their text, images and
/// permalink marks (`¶`) removed, backslash escapes undone outside code fences.
fn clean_markdown(md: &str) -> String {
    let mut out = String::with_capacity(md.len());
    let mut in_fence = false;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        if in_fence {
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let l = link_re().replace_all(line, |c: &regex::Captures| if &c[1] == "!" { String::new() } else { c[2].to_string() });
        let mut s = String::with_capacity(l.len());
        let mut it = l.chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next() {
                    Some(n) if n.is_ascii_punctuation() => s.push(n),
                    Some(n) => {
                        s.push('\\');
                        s.push(n)
                    }
                    None => s.push('\\'),
                },
                '¶' => {}
                c => s.push(c),
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    collapse_blank_lines(&out)
}

fn collapse_blank_lines(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for l in s.lines() {
        if l.trim().is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(l.trim_end());
        out.push('\n');
    }
    out.trim().to_string()
}

/// One HTML file as a source of at most one document (id = the path relative
/// to the input root, given by the caller).
pub fn html_document(bytes: &[u8], id: String, path: &Path) -> SourceItem {
    let p = path.display().to_string();
    let html = String::from_utf8_lossy(bytes);
    match html_to_text(&html, None) {
        Ok((title, text)) => Ok(Document {
            id,
            source: SourceLoc { path: p, line: None },
            text,
            metadata: serde_json::json!({ "title": title }),
        }),
        Err(NoContent(why)) => skip("html_no_content", format!("{p}: no main content ({why}), file skipped")),
    }
}

/// Word tokens for extraction scoring: lowercase runs of letters/digits;
/// ideographs and kana count one token each (those scripts do not separate words).
pub fn score_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        let cjk = matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0xAC00..=0xD7AF);
        if cjk {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else if c.is_alphanumeric() {
            cur.extend(c.to_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Bag-of-tokens F1 of an extracted text against a reference text (the usual
/// boilerplate-removal score, e.g. Barbaresi's trafilatura evaluation):
/// precision = shared tokens / extracted tokens, recall = shared / reference,
/// tokens from [`score_tokens`], multiset overlap. Returns (precision, recall, F1), each 0–1.
pub fn token_f1(extracted: &str, reference: &str) -> (f64, f64, f64) {
    let count = |t: &str| {
        let mut m = std::collections::HashMap::<String, i64>::new();
        for w in score_tokens(t) {
            *m.entry(w).or_default() += 1;
        }
        m
    };
    let (e, r) = (count(extracted), count(reference));
    let ne: i64 = e.values().sum();
    let nr: i64 = r.values().sum();
    let shared: i64 = e.iter().map(|(k, v)| (*v).min(*r.get(k).unwrap_or(&0))).sum();
    if ne == 0 || nr == 0 || shared == 0 {
        return (0.0, 0.0, 0.0);
    }
    let (p, rc) = (shared as f64 / ne as f64, shared as f64 / nr as f64);
    (p, rc, 2.0 * p * rc / (p + rc))
}

// ---------------------------------------------------------------- WARC

/// WARC/WET records as documents. `conversion` records (WET) are taken as
/// text; `response`/`resource` records with an HTML payload go through
/// [`html_to_text`] (plain-text payloads are taken as is); other record types
/// are ignored. Id: the `WARC-Record-ID`; metadata: target URI and date.
/// A record whose header cannot be parsed is skipped and reading resumes at
/// the next record; a read error (truncated gzip) ends the file.
pub struct WarcSource {
    path: String,
    records: warc::RecordIter<BufReader<Counting<Box<dyn Read>>>>,
    offset: Arc<AtomicU64>,
    n: u64,
    /// Set after a header error, so a run of garbage is reported once.
    resyncing: bool,
    done: bool,
}

impl WarcSource {
    /// Open a decompressed WARC stream.
    pub fn new(path: &Path, r: Box<dyn Read>) -> Self {
        let (c, offset) = Counting::new(r);
        WarcSource {
            path: path.display().to_string(),
            records: warc::WarcReader::new(BufReader::with_capacity(1 << 16, c)).iter_records(),
            offset,
            n: 0,
            resyncing: false,
            done: false,
        }
    }
}

/// Split an HTTP response into (content-type, body); `None` if it is not one.
fn http_payload(b: &[u8]) -> Option<(String, &[u8])> {
    if !b.starts_with(b"HTTP/") {
        return None;
    }
    let end = b.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4)).or_else(|| b.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)))?;
    let head = String::from_utf8_lossy(&b[..end.0]);
    let ct = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type")).map(|(_, v)| v.trim().to_ascii_lowercase()))
        .unwrap_or_default();
    Some((ct, &b[end.1..]))
}

impl Iterator for WarcSource {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        loop {
            if self.done {
                return None;
            }
            let rec = self.records.next()?;
            let at = self.offset.load(Ordering::Relaxed);
            let rec = match rec {
                Ok(r) => {
                    self.resyncing = false;
                    r
                }
                Err(warc::Error::ReadData(e)) => {
                    self.done = true;
                    return Some(skip("read_error", format!("{}: read error near decompressed byte {at} ({e}); rest of the file skipped", self.path)));
                }
                Err(warc::Error::UnexpectedEOB) => {
                    self.done = true;
                    return Some(skip("warc_bad_record", format!("{}: record cut short at end of file (near byte {at}), skipped", self.path)));
                }
                Err(e) => {
                    if self.resyncing {
                        continue;
                    }
                    self.resyncing = true;
                    return Some(skip(
                        "warc_bad_record",
                        format!("{}: bad WARC record after record {} near decompressed byte {at} ({e}); skipped up to the next valid record", self.path, self.n),
                    ));
                }
            };
            self.n += 1;
            let id = rec.warc_id().trim_matches(['<', '>']).to_string();
            let uri = rec.header(warc::WarcHeader::TargetURI).map(|u| u.to_string());
            let loc = SourceLoc { path: self.path.clone(), line: Some(self.n) };
            let meta = serde_json::json!({ "url": uri, "warc_date": rec.date().to_rfc3339(), "warc_type": rec.warc_type().to_string() });
            let where_ = format!("{}: record {} ({id})", self.path, self.n);
            let (text, html) = match rec.warc_type() {
                warc::RecordType::Conversion => (rec.body(), false),
                warc::RecordType::Response | warc::RecordType::Resource => {
                    let (ct, body) = match http_payload(rec.body()) {
                        Some(x) => x,
                        None => (rec.header(warc::WarcHeader::ContentType).map(|c| c.to_ascii_lowercase()).unwrap_or_default(), rec.body()),
                    };
                    if ct.contains("html") {
                        (body, true)
                    } else if ct.starts_with("text/plain") {
                        (body, false)
                    } else {
                        return Some(Err(NotDocument::Ignore { reason: "warc_not_text" }));
                    }
                }
                _ => return Some(Err(NotDocument::Ignore { reason: "warc_not_document" })),
            };
            let item = if html {
                match html_to_text(&String::from_utf8_lossy(text), uri.as_deref()) {
                    Ok((_, t)) => Ok(t),
                    Err(NoContent(why)) => Err(skip("html_no_content", format!("{where_}: no main content ({why}), skipped"))),
                }
            } else {
                match std::str::from_utf8(text) {
                    Ok(t) => Ok(t.to_string()),
                    Err(e) => Err(skip("invalid_utf8", format!("{where_}: invalid UTF-8 at byte {} of the payload, skipped", e.valid_up_to()))),
                }
            };
            return Some(match item {
                Ok(text) => Ok(Document { id, source: loc, text, metadata: meta }),
                Err(e) => e,
            });
        }
    }
}

// ---------------------------------------------------------------- MediaWiki

/// Pages of a MediaWiki XML export (`<page><title/><ns/><id/><revision><text/>`)
/// rendered to plain text: article namespace (0) only, redirects ignored.
/// Id: `wiki:<page id>`; metadata: title. The page title is a level-1 heading
/// and wiki headings (`== H ==` = level 2) keep their level, so segmenting
/// follows the article's sections. XML errors end the file with a message
/// giving the byte offset; pages before it are kept.
pub struct WikiSource {
    path: String,
    xml: quick_xml::Reader<BufReader<Box<dyn Read>>>,
    buf: Vec<u8>,
    done: bool,
    max_page_bytes: usize,
}

impl WikiSource {
    /// Read a (decompressed) dump; pages whose wikitext exceeds `max_page_bytes` are skipped.
    pub fn new(path: &Path, r: Box<dyn Read>, max_page_bytes: usize) -> Self {
        let mut xml = quick_xml::Reader::from_reader(BufReader::with_capacity(1 << 16, r));
        xml.config_mut().trim_text(false);
        WikiSource { path: path.display().to_string(), xml, buf: Vec::new(), done: false, max_page_bytes }
    }
}

#[derive(Default)]
struct Page {
    title: String,
    ns: String,
    id: String,
    text: String,
    redirect: bool,
    /// Some text was not kept because a field reached `max_page_bytes`.
    over_cap: bool,
}

impl Iterator for WikiSource {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        use quick_xml::events::Event;
        let mut page: Option<Page> = None;
        let mut field: Option<&'static str> = None;
        let mut depth_in_page = 0usize;
        loop {
            if self.done {
                return None;
            }
            self.buf.clear();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => {
                    self.done = true;
                    let at = self.xml.buffer_position();
                    return Some(skip("wiki_bad_xml", format!("{}: XML error near decompressed byte {at} ({e}); rest of the file skipped", self.path)));
                }
            };
            match ev {
                Event::Eof => {
                    self.done = true;
                    return None;
                }
                Event::Start(s) => {
                    let name = s.local_name();
                    match name.as_ref() {
                        b"page" => {
                            page = Some(Page::default());
                            depth_in_page = 0;
                        }
                        _ if page.is_some() => {
                            depth_in_page += 1;
                            field = match (name.as_ref(), depth_in_page) {
                                (b"title", 1) => Some("title"),
                                (b"ns", 1) => Some("ns"),
                                (b"id", 1) => Some("id"),
                                (b"text", _) => Some("text"),
                                _ => None,
                            };
                        }
                        _ => {}
                    }
                }
                Event::Empty(s) => {
                    if let Some(p) = page.as_mut() {
                        if s.local_name().as_ref() == b"redirect" {
                            p.redirect = true;
                        }
                    }
                }
                Event::Text(t) => {
                    if let (Some(p), Some(f)) = (page.as_mut(), field) {
                        let s = match t.unescape() {
                            Ok(s) => s.into_owned(),
                            Err(_) => String::from_utf8_lossy(&t).into_owned(),
                        };
                        let dst = match f {
                            "title" => &mut p.title,
                            "ns" => &mut p.ns,
                            "id" => &mut p.id,
                            _ => &mut p.text,
                        };
                        if dst.len() + s.len() <= self.max_page_bytes {
                            dst.push_str(&s);
                        } else {
                            p.over_cap = true;
                        }
                    }
                }
                Event::CData(t) => {
                    if let (Some(p), Some("text")) = (page.as_mut(), field) {
                        p.text.push_str(&String::from_utf8_lossy(&t));
                    }
                }
                Event::End(e) => {
                    if e.local_name().as_ref() == b"page" {
                        if let Some(p) = page.take() {
                            return Some(self.finish(p));
                        }
                    } else if page.is_some() {
                        field = None;
                        depth_in_page = depth_in_page.saturating_sub(1);
                    }
                }
                _ => {}
            }
        }
    }
}

impl WikiSource {
    fn finish(&self, p: Page) -> SourceItem {
        if p.ns.trim() != "0" {
            return Err(NotDocument::Ignore { reason: "wiki_not_article" });
        }
        if p.redirect || p.text.trim_start().to_ascii_lowercase().starts_with("#redirect") {
            return Err(NotDocument::Ignore { reason: "wiki_redirect" });
        }
        let id = format!("wiki:{}", p.id.trim());
        if p.over_cap {
            return skip("too_long", format!("{}: page {id} ({}) has over {} bytes of wikitext, skipped", self.path, p.title, self.max_page_bytes));
        }
        match wikitext_to_text(&p.text) {
            Ok(body) => Ok(Document {
                id,
                source: SourceLoc { path: self.path.clone(), line: None },
                text: format!("# {}\n\n{}", p.title.trim(), body),
                metadata: serde_json::json!({ "title": p.title.trim() }),
            }),
            Err(e) => skip("wiki_parse_error", format!("{}: page {id} ({}): {e}, skipped", self.path, p.title)),
        }
    }
}

fn wiki_config() -> &'static parse_wiki_text_2::Configuration {
    static CFG: OnceLock<parse_wiki_text_2::Configuration> = OnceLock::new();
    CFG.get_or_init(parse_wiki_text_2::Configuration::default)
}

/// Render wikitext to plain text: headings as Markdown (`== H ==` → `## H`),
/// link labels kept, templates, references, tables, images, categories and
/// comments dropped, list items as `- ` lines. Parsing gives up after 5 s
/// (pathological markup). Errors: the parser's timeout.
pub fn wikitext_to_text(wikitext: &str) -> Result<String, String> {
    let out = wiki_config()
        .parse_with_timeout(wikitext, std::time::Duration::from_secs(5))
        .map_err(|_| "wikitext parser timed out".to_string())?;
    let mut s = String::with_capacity(wikitext.len() / 2);
    let mut skipping = 0usize;
    render_wiki(&out.nodes, &mut s, &mut skipping);
    Ok(collapse_blank_lines(&s.lines().map(str::trim).collect::<Vec<_>>().join("\n")))
}

/// Tags whose content is not prose.
const WIKI_DROP_TAGS: &[&str] = &["ref", "references", "gallery", "math", "timeline", "imagemap", "score", "syntaxhighlight", "templatedata", "graph"];

fn render_wiki(nodes: &[parse_wiki_text_2::Node], out: &mut String, skipping: &mut usize) {
    use parse_wiki_text_2::Node;
    for n in nodes {
        // inside an unpaired <ref>...</ref> the parser gives StartTag/EndTag around plain nodes
        match n {
            Node::StartTag { name, .. } if WIKI_DROP_TAGS.contains(&name.as_ref()) => {
                *skipping += 1;
                continue;
            }
            Node::EndTag { name, .. } if WIKI_DROP_TAGS.contains(&name.as_ref()) => {
                *skipping = skipping.saturating_sub(1);
                continue;
            }
            _ if *skipping > 0 => continue,
            _ => {}
        }
        match n {
            Node::Text { value, .. } => out.push_str(value),
            Node::CharacterEntity { character, .. } => out.push(*character),
            Node::ParagraphBreak { .. } => out.push_str("\n\n"),
            Node::Heading { level, nodes, .. } => {
                out.push_str("\n\n");
                out.push_str(&"#".repeat(*level as usize));
                out.push(' ');
                let mut h = String::new();
                render_wiki(nodes, &mut h, skipping);
                out.push_str(h.trim());
                out.push_str("\n\n");
            }
            Node::Link { text, target, .. } => {
                if text.is_empty() {
                    out.push_str(target);
                } else {
                    render_wiki(text, out, skipping);
                }
            }
            Node::ExternalLink { nodes, .. } => {
                let mut t = String::new();
                render_wiki(nodes, &mut t, skipping);
                // "[url label]" → label
                if let Some((_, label)) = t.split_once(char::is_whitespace) {
                    out.push_str(label.trim());
                }
            }
            Node::UnorderedList { items, .. } | Node::OrderedList { items, .. } => {
                for it in items {
                    out.push_str("\n- ");
                    render_wiki(&it.nodes, out, skipping);
                }
                out.push('\n');
            }
            Node::DefinitionList { items, .. } => {
                for it in items {
                    out.push('\n');
                    render_wiki(&it.nodes, out, skipping);
                }
                out.push('\n');
            }
            Node::Preformatted { nodes, .. } => {
                out.push('\n');
                render_wiki(nodes, out, skipping);
                out.push('\n');
            }
            Node::Tag { name, nodes, .. } => {
                if !WIKI_DROP_TAGS.contains(&name.as_ref()) {
                    render_wiki(nodes, out, skipping);
                }
            }
            // templates, tables, images, categories, comments, magic words, formatting marks
            _ => {}
        }
    }
}

// ---------------------------------------------------------------- Parquet

/// Rows of a Parquet file (FineWeb-style shards): the text column and the id
/// column (names configurable; a missing id becomes `<file>:row<N>`), other
/// columns ignored. Only the two columns are read (projection); rows stream
/// one row group page at a time. Compression: snappy, zstd, gzip.
#[cfg(feature = "parquet")]
pub struct ParquetSource {
    path: String,
    rows: Option<parquet::record::reader::RowIter<'static>>,
    text_field: String,
    id_field: String,
    n: u64,
    error: Option<String>,
}

#[cfg(feature = "parquet")]
impl ParquetSource {
    /// Open `path`; an unreadable file or a missing text column is reported by the first `next()`.
    pub fn new(path: &Path, text_field: &str, id_field: &str) -> Self {
        let p = path.display().to_string();
        let mut s = ParquetSource { path: p.clone(), rows: None, text_field: text_field.into(), id_field: id_field.into(), n: 0, error: None };
        match Self::open(path, text_field, id_field) {
            Ok(r) => s.rows = Some(r),
            Err(e) => s.error = Some(format!("{p}: cannot read as Parquet ({e}); file skipped")),
        }
        s
    }

    fn open(path: &Path, text_field: &str, id_field: &str) -> Result<parquet::record::reader::RowIter<'static>, String> {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let f = std::fs::File::open(path).map_err(|e| e.to_string())?;
        let r = SerializedFileReader::new(f).map_err(|e| e.to_string())?;
        let schema = r.metadata().file_metadata().schema();
        let fields: Vec<_> = schema.get_fields().iter().filter(|t| t.name() == text_field || t.name() == id_field).cloned().collect();
        if !fields.iter().any(|t| t.name() == text_field) {
            return Err(format!("no column `{text_field}`"));
        }
        let proj = parquet::schema::types::Type::group_type_builder(schema.name()).with_fields(fields).build().map_err(|e| e.to_string())?;
        let r: Box<dyn FileReader> = Box::new(r);
        parquet::record::reader::RowIter::from_file_into(r).project(Some(proj)).map_err(|e| e.to_string())
    }
}

#[cfg(feature = "parquet")]
impl Iterator for ParquetSource {
    type Item = SourceItem;

    fn next(&mut self) -> Option<SourceItem> {
        use parquet::record::Field;
        if let Some(e) = self.error.take() {
            self.rows = None;
            return Some(skip("read_error", e));
        }
        let row = match self.rows.as_mut()?.next()? {
            Ok(r) => r,
            Err(e) => {
                self.rows = None;
                return Some(skip("read_error", format!("{}: row {}: {e}; rest of the file skipped", self.path, self.n + 1)));
            }
        };
        self.n += 1;
        let (mut text, mut id) = (None, None);
        let mut bad_text = None;
        for (name, f) in row.get_column_iter() {
            let v = match f {
                Field::Str(s) => Some(s.clone()),
                Field::Bytes(b) => match std::str::from_utf8(b.data()) {
                    Ok(s) => Some(s.to_string()),
                    Err(e) => {
                        bad_text = Some(format!("invalid UTF-8 at byte {}", e.valid_up_to()));
                        None
                    }
                },
                Field::Long(i) => Some(i.to_string()),
                Field::Int(i) => Some(i.to_string()),
                Field::ULong(i) => Some(i.to_string()),
                Field::Null => None,
                other => {
                    if name == &self.text_field {
                        bad_text = Some(format!("column `{name}` is not a string ({other})"));
                    }
                    None
                }
            };
            if name == &self.text_field {
                text = v;
            } else if name == &self.id_field {
                id = v;
            }
        }
        let loc = SourceLoc { path: self.path.clone(), line: Some(self.n) };
        Some(match text {
            Some(t) => Ok(Document { id: id.filter(|s| !s.is_empty()).unwrap_or_else(|| format!("{}:row{}", self.path, self.n)), source: loc, text: t, metadata: serde_json::Value::Null }),
            None => skip(
                "missing_text",
                format!("{}: row {}: {}, row skipped", self.path, self.n, bad_text.unwrap_or_else(|| format!("`{}` is null", self.text_field))),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_links_become_text() {
        let md = "## Basic Usage[¶](#basic-usage \"Permalink to this heading\")\n\nSee [json](#module-json \"json: x\") and ![img](a.png) \\_\\_init\\_\\_ [\\[1\\]](#rfc) (f(x)).\n\n```\na\\_b [x](y)\n```";
        let t = clean_markdown(md);
        assert_eq!(t, "## Basic Usage\n\nSee json and  __init__ [1] (f(x)).\n\n```\na\\_b [x](y)\n```");
    }

    #[test]
    fn token_f1_by_hand() {
        // extracted: a b b c (4), reference: a b c d (4), shared a b c = 3
        let (p, r, f) = token_f1("A b, b c", "a B c d");
        assert!((p - 0.75).abs() < 1e-12 && (r - 0.75).abs() < 1e-12 && (f - 0.75).abs() < 1e-12);
        assert_eq!(score_tokens("東京 is big"), ["東", "京", "is", "big"]);
        assert_eq!(token_f1("", "x"), (0.0, 0.0, 0.0));
    }

    #[test]
    fn wiki_page_over_the_cap_is_reported_not_truncated() {
        let xml = "<mediawiki><page><title>Big</title><ns>0</ns><id>7</id><revision><id>9</id><text>Some article text that is longer than the cap.</text></revision></page></mediawiki>";
        let items: Vec<_> = WikiSource::new(Path::new("t.xml"), Box::new(std::io::Cursor::new(xml.as_bytes().to_vec())), 20).collect();
        assert!(matches!(&items[..], [Err(NotDocument::Skip { reason: "too_long", .. })]), "{items:?}");
        let items: Vec<_> = WikiSource::new(Path::new("t.xml"), Box::new(std::io::Cursor::new(xml.as_bytes().to_vec())), 1000).collect();
        assert_eq!(items[0].as_ref().unwrap().id, "wiki:7");
    }

    #[test]
    fn wikitext_rendering() {
        let w = "'''Anarchism''' is a [[political philosophy|philosophy]] that rejects {{lang|en|rulers}} [[hierarchy]].<ref>Source 1</ref> See [http://x.org the site].\n\n== History ==\nEarly text.<ref name=\"a\"/>\n{| class=\"wikitable\"\n|-\n| cell\n|}\n* one\n* two\n[[Category:Things]]\n[[File:X.png|thumb|caption]]\n=== Sub ===\nMore &amp; more.";
        let t = wikitext_to_text(w).unwrap();
        assert!(t.starts_with("Anarchism is a philosophy that rejects  hierarchy. See the site."), "{t}");
        assert!(t.contains("## History\n\nEarly text."), "{t}");
        assert!(t.contains("- one\n- two"), "{t}");
        assert!(t.contains("### Sub\n\nMore & more."), "{t}");
        for bad in ["Source 1", "cell", "Category", "thumb", "wikitable", "lang", "http"] {
            assert!(!t.contains(bad), "{bad} in {t}");
        }
    }

    #[test]
    fn html_main_content_keeps_headings() {
        let html = "<html><head><title>Guide to Pots</title></head><body><nav><a href=/>Home</a> | <a href=/about>About</a></nav>\
            <article><h1>Guide to Pots</h1><p>Clay pots breathe, which keeps roots cool and lets extra water escape through the walls. \
            They are heavier than plastic and can crack in frost, so bring them inside in winter.</p><h2>Choosing a size</h2>\
            <p>Pick a pot about five centimetres wider than the root ball. A pot that is too large holds wet soil around the roots \
            for days, and the plant may rot before it fills the space. Repot in spring when roots circle the bottom.</p></article>\
            <footer>Copyright 2024 Example Ltd. All rights reserved.</footer></body></html>";
        let (title, t) = html_to_text(html, None).unwrap();
        assert_eq!(title, "Guide to Pots");
        assert!(t.starts_with("# Guide to Pots"), "{t}");
        assert!(t.contains("## Choosing a size"), "{t}");
        assert!(!t.contains("Copyright") && !t.contains("About"), "{t}");
        assert!(html_to_text("<html><head><title>x</title></head></html>", None).is_err());
    }
}
