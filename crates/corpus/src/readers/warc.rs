//! WARC/WET (Common Crawl; ISO 28500 WARC 1.0/1.1) through the `warc`
//! crate's record framing. WET `conversion` records are documents as they
//! are; HTML `response` records go through [`super::html`] main-content
//! extraction; other records are ignored. Gzip per record is read by a
//! multi-member decoder ([`super::io::open_decompressed`]).

use super::html::{html_to_text, NoContent};
use super::io::Counting;
use super::source::{skip, NotDocument, SourceItem};
use crate::document::{Document, SourceLoc};
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

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
    let end = b
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| b.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2)))?;
    let head = String::from_utf8_lossy(&b[..end.0]);
    let ct = head
        .lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.trim().to_ascii_lowercase())
        })
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
                    return Some(skip(
                        "warc_bad_record",
                        format!(
                            "{}: record cut short at end of file (near byte {at}), skipped",
                            self.path
                        ),
                    ));
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
            let uri = rec
                .header(warc::WarcHeader::TargetURI)
                .map(|u| u.to_string());
            let loc = SourceLoc {
                path: self.path.clone(),
                line: Some(self.n),
            };
            let meta = serde_json::json!({ "url": uri, "warc_date": rec.date().to_rfc3339(), "warc_type": rec.warc_type().to_string() });
            let where_ = format!("{}: record {} ({id})", self.path, self.n);
            let (text, html) = match rec.warc_type() {
                warc::RecordType::Conversion => (rec.body(), false),
                warc::RecordType::Response | warc::RecordType::Resource => {
                    let (ct, body) = match http_payload(rec.body()) {
                        Some(x) => x,
                        None => (
                            rec.header(warc::WarcHeader::ContentType)
                                .map(|c| c.to_ascii_lowercase())
                                .unwrap_or_default(),
                            rec.body(),
                        ),
                    };
                    if ct.contains("html") {
                        (body, true)
                    } else if ct.starts_with("text/plain") {
                        (body, false)
                    } else {
                        return Some(Err(NotDocument::Ignore {
                            reason: "warc_not_text",
                        }));
                    }
                }
                _ => {
                    return Some(Err(NotDocument::Ignore {
                        reason: "warc_not_document",
                    }))
                }
            };
            let item = if html {
                match html_to_text(&String::from_utf8_lossy(text), uri.as_deref()) {
                    Ok((_, t)) => Ok(t),
                    Err(NoContent(why)) => Err(skip(
                        "html_no_content",
                        format!("{where_}: no main content ({why}), skipped"),
                    )),
                }
            } else {
                match std::str::from_utf8(text) {
                    Ok(t) => Ok(t.to_string()),
                    Err(e) => Err(skip(
                        "invalid_utf8",
                        format!(
                            "{where_}: invalid UTF-8 at byte {} of the payload, skipped",
                            e.valid_up_to()
                        ),
                    )),
                }
            };
            return Some(match item {
                Ok(text) => Ok(Document {
                    id,
                    source: loc,
                    text,
                    metadata: meta,
                }),
                Err(e) => e,
            });
        }
    }
}
