//! Humpback segmenting (Li et al. 2023 §3, data): a segment is a heading with
//! everything under it, sub-headings included. Headings are recognised in
//! plain text as Markdown ATX headings (`#`…`######`) and reStructuredText
//! section titles (a title line underlined, optionally overlined, by a
//! repeated punctuation character; levels in order of first appearance, as
//! docutils assigns them).
//!
//! Written here because it is the method's own step: no crate splits text
//! into heading-scoped sections this way.

use serde::{Deserialize, Serialize};

/// How `prepare` cuts documents into candidates.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SegmentMode {
    /// Whole documents (back-and-forth, Nguyen et al. 2024).
    #[default]
    Whole,
    /// Heading-scoped segments (Humpback, Li et al. 2023).
    Headings,
}

/// The `[segment]` section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SegmentConfig {
    pub mode: SegmentMode,
    /// In `headings` mode, keep a document without headings as one candidate.
    pub fallback_whole: bool,
    /// `whole` mode: drop documents estimated at more than this many tokens
    /// (0 = no cap). Nguyen et al. 2024 drop documents near the model's
    /// context length (≈25% of their Dolma sample); leave room for the
    /// prompt and the generated instruction. In `whole` mode this replaces
    /// the segment character bounds `filter.min_chars`/`max_chars`, except
    /// that `filter.min_chars` still applies as a floor.
    pub max_tokens: usize,
    /// Characters per token used for the estimate (≈4 for English text with
    /// byte-level BPE vocabularies; set it from your tokenizer for other languages).
    pub chars_per_token: f64,
    /// Long documents without headings (speeches, transcripts, books): cut
    /// into windows of whole paragraphs within the bounds (`whole` mode: the
    /// token cap; `headings` mode: `filter.max_chars`) instead of dropping them.
    pub window_long: bool,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        SegmentConfig {
            mode: SegmentMode::Whole,
            fallback_whole: false,
            max_tokens: 3072,
            chars_per_token: 4.0,
            window_long: true,
        }
    }
}

/// Cut `text` into windows of at most `max_chars` characters made of whole
/// paragraphs (blank-line separated; single lines when the text has no blank
/// lines), packed greedily in order. A paragraph longer than `max_chars` is
/// cut at sentence ends (`. `, `! `, `? `), and a sentence longer than that
/// at a word boundary. No text is lost except the white space between
/// pieces. `max_chars = 0` returns the text whole.
pub fn windows(text: &str, max_chars: usize) -> Vec<String> {
    if max_chars == 0 || text.chars().count() <= max_chars {
        return vec![text.to_string()];
    }
    let paras: Vec<&str> = if text.contains("\n\n") {
        text.split("\n\n").collect()
    } else {
        text.lines().collect()
    };
    // pieces no longer than max_chars
    let mut pieces: Vec<String> = Vec::new();
    for p in paras.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        if p.chars().count() <= max_chars {
            pieces.push(p.to_string());
            continue;
        }
        let mut sent = String::new();
        let chars: Vec<char> = p.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            sent.push(c);
            let end =
                matches!(c, '.' | '!' | '?') && chars.get(i + 1).is_some_and(|n| n.is_whitespace());
            if end || i + 1 == chars.len() {
                let t = sent.trim().to_string();
                sent.clear();
                if t.chars().count() <= max_chars {
                    pieces.push(t);
                } else {
                    // a run-on "sentence": cut at word boundaries
                    let mut cur = String::new();
                    for w in t.split_whitespace() {
                        if !cur.is_empty()
                            && cur.chars().count() + 1 + w.chars().count() > max_chars
                        {
                            pieces.push(std::mem::take(&mut cur));
                        }
                        if !cur.is_empty() {
                            cur.push(' ');
                        }
                        cur.push_str(w);
                    }
                    if !cur.is_empty() {
                        pieces.push(cur);
                    }
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for p in pieces {
        if !cur.is_empty() && cur.chars().count() + 2 + p.chars().count() > max_chars {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push_str("\n\n");
        }
        cur.push_str(&p);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl SegmentConfig {
    /// Estimated tokens of `text`: characters / `chars_per_token`, rounded up.
    pub fn estimate_tokens(&self, text: &str) -> usize {
        (text.chars().count() as f64 / self.chars_per_token.max(0.1)).ceil() as usize
    }
}

/// One heading-scoped segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Heading text (without markup).
    pub heading: String,
    /// 1 = top level.
    pub level: usize,
    /// 0-based line of the heading in the document.
    pub line: usize,
    /// Heading line plus everything under it, up to the next heading of the same or a higher level.
    pub text: String,
}

struct Heading {
    title: String,
    level: usize,
    /// First line of the heading markup and first line after it.
    start: usize,
    body: usize,
}

const RST_CHARS: &str = "=-~^\"'`*+#:.<>_";

fn rst_underline(l: &str) -> Option<char> {
    let t = l.trim_end();
    let c = t.chars().next()?;
    (t.chars().count() >= 3 && RST_CHARS.contains(c) && t.chars().all(|x| x == c)).then_some(c)
}

fn find_headings(lines: &[&str]) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut rst_styles: Vec<(char, bool)> = Vec::new();
    let mut in_fence = false;
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        if l.trim_start().starts_with("```") {
            in_fence = !in_fence;
            i += 1;
            continue;
        }
        if in_fence {
            i += 1;
            continue;
        }
        // Markdown ATX
        let hashes = l.chars().take_while(|&c| c == '#').count();
        if (1..=6).contains(&hashes) && l[hashes..].starts_with(' ') {
            let title = l[hashes..].trim().trim_end_matches('#').trim().to_string();
            out.push(Heading {
                title,
                level: hashes,
                start: i,
                body: i + 1,
            });
            i += 1;
            continue;
        }
        // reStructuredText: [overline] title underline
        if i + 1 < lines.len() && !l.trim().is_empty() && rst_underline(l).is_none() {
            if let Some(c) = rst_underline(lines[i + 1]) {
                if lines[i + 1].trim_end().chars().count() >= l.trim_end().chars().count() {
                    let over = i > 0 && rst_underline(lines[i - 1]) == Some(c);
                    let style = (c, over);
                    let level = match rst_styles.iter().position(|s| *s == style) {
                        Some(p) => p + 1,
                        None => {
                            rst_styles.push(style);
                            rst_styles.len()
                        }
                    };
                    let start = if over { i - 1 } else { i };
                    out.push(Heading {
                        title: l.trim().to_string(),
                        level,
                        start,
                        body: i + 2,
                    });
                    i += 2;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Split a document into heading-scoped segments (nested sections overlap:
/// a section contains its subsections, and each subsection is also a segment).
/// A document without headings yields no segments.
pub fn segments(text: &str) -> Vec<Segment> {
    let lines: Vec<&str> = text.lines().collect();
    let hs = find_headings(&lines);
    let mut out = Vec::new();
    for (k, h) in hs.iter().enumerate() {
        let end = hs[k + 1..]
            .iter()
            .find(|n| n.level <= h.level)
            .map(|n| n.start)
            .unwrap_or(lines.len());
        let body = lines[h.body.min(end)..end].join("\n");
        let text = format!("{}\n\n{}", h.title, body.trim());
        out.push(Segment {
            heading: h.title.clone(),
            level: h.level,
            line: h.start,
            text: text.trim().to_string(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_sections_nest() {
        let doc = "intro\n# A\na text\n## A1\na1 text\n## A2\na2 text\n# B\nb text\n```\n# not a heading\n```\n";
        let s = segments(doc);
        let heads: Vec<_> = s.iter().map(|x| (x.heading.as_str(), x.level)).collect();
        assert_eq!(heads, [("A", 1), ("A1", 2), ("A2", 2), ("B", 1)]);
        assert!(
            s[0].text.contains("a1 text")
                && s[0].text.contains("a2 text")
                && !s[0].text.contains("b text")
        );
        assert_eq!(s[1].text, "A1\n\na1 text");
        assert!(s[3].text.contains("# not a heading"));
    }

    #[test]
    fn rst_titles_levels_by_first_appearance() {
        let doc = "=====\nTitle\n=====\n\nTop text.\n\nSection\n-------\n\nSec text.\n\nSub\n~~~\n\nsub text\n\nOther\n-----\n\nother text\n";
        let s = segments(doc);
        let heads: Vec<_> = s.iter().map(|x| (x.heading.as_str(), x.level)).collect();
        assert_eq!(
            heads,
            [("Title", 1), ("Section", 2), ("Sub", 3), ("Other", 2)]
        );
        assert!(s[1].text.contains("sub text") && !s[1].text.contains("other text"));
        assert!(s[0].text.contains("other text"));
        assert!(segments("no headings here\njust text").is_empty());
    }

    #[test]
    fn long_text_is_windowed_by_paragraphs_without_loss() {
        let paras: Vec<String> = (0..30)
            .map(|i| format!("Paragraph {i} says something. It has two sentences."))
            .collect();
        let text = paras.join("\n\n");
        let w = windows(&text, 200);
        assert!(w.len() > 1);
        assert!(w.iter().all(|x| x.chars().count() <= 200), "{w:?}");
        // every paragraph survives whole, in order
        assert_eq!(w.join("\n\n"), text);
        // one huge paragraph: cut at sentences, then words
        let run_on = "word ".repeat(100);
        let w = windows(&format!("Short one. {run_on}"), 60);
        assert!(w.iter().all(|x| x.chars().count() <= 60), "{w:?}");
        assert_eq!(w.join(" ").split_whitespace().count(), 102);
        assert_eq!(windows("tiny", 60), vec!["tiny".to_string()]);
    }
}
