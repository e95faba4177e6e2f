//! HTML pages: main-content extraction with `dom_smoothie` (a port of
//! Mozilla Readability) to Markdown, so the heading structure survives for
//! segmenting; Markdown link syntax reduced to its text. Also the token F1
//! used to score extraction against reference texts (`bench-extract`).

use super::source::{skip, SourceItem};
use crate::document::{Document, SourceLoc};
use std::path::Path;
use std::sync::OnceLock;

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
    let cfg = dom_smoothie::Config {
        text_mode: dom_smoothie::TextMode::Markdown,
        ..Default::default()
    };
    let mut r = dom_smoothie::Readability::new(html, url, Some(cfg))
        .map_err(|e| NoContent(e.to_string()))?;
    let a = r.parse().map_err(|e| NoContent(e.to_string()))?;
    let body = clean_markdown(&a.text_content);
    if body.trim().is_empty() {
        return Err(NoContent("extracted text is empty".into()));
    }
    let title = a.title.trim().to_string();
    let text = if body.trim_start().starts_with('#') || title.is_empty() {
        body
    } else {
        format!("# {title}\n\n{body}")
    };
    Ok((title, text))
}

fn link_re() -> &'static regex::Regex {
    static RE: OnceLock<regex::Regex> = OnceLock::new();
    // [text](target "title") and ![alt](src): text may hold escaped brackets.
    RE.get_or_init(|| {
        regex::Regex::new(r#"(!?)\[((?:\\.|[^\]\\])*)\]\((?:[^()\s]|\([^)]*\))*(?:\s+"[^"]*")?\)"#)
            .unwrap()
    })
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
        let l = link_re().replace_all(line, |c: &regex::Captures| {
            if &c[1] == "!" {
                String::new()
            } else {
                c[2].to_string()
            }
        });
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

pub(crate) fn collapse_blank_lines(s: &str) -> String {
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
            source: SourceLoc {
                path: p,
                line: None,
            },
            text,
            metadata: serde_json::json!({ "title": title }),
        }),
        Err(NoContent(why)) => skip(
            "html_no_content",
            format!("{p}: no main content ({why}), file skipped"),
        ),
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
    let shared: i64 = e
        .iter()
        .map(|(k, v)| (*v).min(*r.get(k).unwrap_or(&0)))
        .sum();
    if ne == 0 || nr == 0 || shared == 0 {
        return (0.0, 0.0, 0.0);
    }
    let (p, rc) = (shared as f64 / ne as f64, shared as f64 / nr as f64);
    (p, rc, 2.0 * p * rc / (p + rc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_links_become_text() {
        let md = "## Basic Usage[¶](#basic-usage \"Permalink to this heading\")\n\nSee [json](#module-json \"json: x\") and ![img](a.png) \\_\\_init\\_\\_ [\\[1\\]](#rfc) (f(x)).\n\n```\na\\_b [x](y)\n```";
        let t = clean_markdown(md);
        assert_eq!(
            t,
            "## Basic Usage\n\nSee json and  __init__ [1] (f(x)).\n\n```\na\\_b [x](y)\n```"
        );
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
