//! MediaWiki XML dumps (`pages-articles*.xml[.bz2]`, export schema 0.10+):
//! `quick-xml` for the dump, `parse-wiki-text-2` for the wikitext AST; ours is
//! the rendering of that AST to plain text with Markdown headings. Articles
//! only (namespace 0); redirects and other namespaces are ignored.

use super::html::collapse_blank_lines;
use super::source::{skip, NotDocument, SourceItem};
use crate::document::{Document, SourceLoc};
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::OnceLock;

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
        WikiSource {
            path: path.display().to_string(),
            xml,
            buf: Vec::new(),
            done: false,
            max_page_bytes,
        }
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
            return Err(NotDocument::Ignore {
                reason: "wiki_not_article",
            });
        }
        if p.redirect
            || p.text
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("#redirect")
        {
            return Err(NotDocument::Ignore {
                reason: "wiki_redirect",
            });
        }
        let id = format!("wiki:{}", p.id.trim());
        if p.over_cap {
            return skip(
                "too_long",
                format!(
                    "{}: page {id} ({}) has over {} bytes of wikitext, skipped",
                    self.path, p.title, self.max_page_bytes
                ),
            );
        }
        match wikitext_to_text(&p.text) {
            Ok(body) => Ok(Document {
                id,
                source: SourceLoc {
                    path: self.path.clone(),
                    line: None,
                },
                text: format!("# {}\n\n{}", p.title.trim(), body),
                metadata: serde_json::json!({ "title": p.title.trim() }),
            }),
            Err(e) => skip(
                "wiki_parse_error",
                format!("{}: page {id} ({}): {e}, skipped", self.path, p.title),
            ),
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
    Ok(collapse_blank_lines(
        &s.lines().map(str::trim).collect::<Vec<_>>().join("\n"),
    ))
}

/// Tags whose content is not prose.
const WIKI_DROP_TAGS: &[&str] = &[
    "ref",
    "references",
    "gallery",
    "math",
    "timeline",
    "imagemap",
    "score",
    "syntaxhighlight",
    "templatedata",
    "graph",
];

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wiki_page_over_the_cap_is_reported_not_truncated() {
        let xml = "<mediawiki><page><title>Big</title><ns>0</ns><id>7</id><revision><id>9</id><text>Some article text that is longer than the cap.</text></revision></page></mediawiki>";
        let items: Vec<_> = WikiSource::new(
            Path::new("t.xml"),
            Box::new(std::io::Cursor::new(xml.as_bytes().to_vec())),
            20,
        )
        .collect();
        assert!(
            matches!(
                &items[..],
                [Err(NotDocument::Skip {
                    reason: "too_long",
                    ..
                })]
            ),
            "{items:?}"
        );
        let items: Vec<_> = WikiSource::new(
            Path::new("t.xml"),
            Box::new(std::io::Cursor::new(xml.as_bytes().to_vec())),
            1000,
        )
        .collect();
        assert_eq!(items[0].as_ref().unwrap().id, "wiki:7");
    }

    #[test]
    fn wikitext_rendering() {
        let w = "'''Anarchism''' is a [[political philosophy|philosophy]] that rejects {{lang|en|rulers}} [[hierarchy]].<ref>Source 1</ref> See [http://x.org the site].\n\n== History ==\nEarly text.<ref name=\"a\"/>\n{| class=\"wikitable\"\n|-\n| cell\n|}\n* one\n* two\n[[Category:Things]]\n[[File:X.png|thumb|caption]]\n=== Sub ===\nMore &amp; more.";
        let t = wikitext_to_text(w).unwrap();
        assert!(
            t.starts_with("Anarchism is a philosophy that rejects  hierarchy. See the site."),
            "{t}"
        );
        assert!(t.contains("## History\n\nEarly text."), "{t}");
        assert!(t.contains("- one\n- two"), "{t}");
        assert!(t.contains("### Sub\n\nMore & more."), "{t}");
        for bad in [
            "Source 1",
            "cell",
            "Category",
            "thumb",
            "wikitable",
            "lang",
            "http",
        ] {
            assert!(!t.contains(bad), "{bad} in {t}");
        }
    }
}
