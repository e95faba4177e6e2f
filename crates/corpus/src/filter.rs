//! Quality filters for candidate segments: Humpback's junk rules (Li et al.
//! 2023 §3: repetitive sentences, high capital-letter ratio, empty, all-caps or
//! navigation headings) and cheap Gopher-style heuristics (Rae et al. 2021,
//! "Scaling Language Models", appendix A: word counts, mean word length,
//! symbol ratio, bullet/ellipsis lines, duplicate lines and n-grams).
//! Each check returns the reason it failed, which the run counts.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Thresholds (the `[filter]` config section). A value of 0 disables a "max" rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FilterConfig {
    pub enabled: bool,
    /// Segment length in characters (Humpback: 600–3,000).
    pub min_chars: usize,
    pub max_chars: usize,
    /// Share of lines (or sentences) that repeat an earlier one.
    pub max_duplicate_line_frac: f64,
    /// Share of characters inside word 5-grams seen earlier in the text.
    pub max_duplicate_5gram_frac: f64,
    /// Share of characters covered by the most frequent word 2-gram.
    pub max_top_2gram_frac: f64,
    /// Uppercase letters / letters.
    pub max_capital_ratio: f64,
    /// Gopher word-count and mean-word-length bounds.
    pub min_words: usize,
    pub min_mean_word_len: f64,
    pub max_mean_word_len: f64,
    /// ('#' and '...' count) / words.
    pub max_symbol_word_ratio: f64,
    /// Share of lines starting with a bullet.
    pub max_bullet_line_frac: f64,
    /// Share of words with no letter.
    pub max_non_alpha_word_frac: f64,
    /// Headings (lowercase, trimmed) that mark navigation/boilerplate, matched as whole heading or prefix.
    pub navigation_headings: Vec<String>,
    /// FineWeb (Penedo et al. 2024, §3.3 custom filters): at least this share
    /// of non-empty lines must end in terminal punctuation (`.` `!` `?` `"` `:` …).
    pub min_line_punct_frac: f64,
    /// FineWeb: at most this share of non-empty lines may be shorter than 30 characters.
    pub max_short_line_frac: f64,
    /// At most this share of non-empty lines may look like message headers
    /// (`Received: ...`, `Content-Type: ...`: a hyphenated key, a colon, a
    /// value) — raw emails and HTTP dumps in crawls.
    pub max_header_line_frac: f64,
    /// Languages to keep, ISO 639-3 codes as `whatlang` names them (`eng`,
    /// `deu`, `fra`, ...); empty = keep all. Identification looks at the
    /// first 2,000 characters.
    pub languages: Vec<String>,
    /// A text is dropped as `language` only when the identifier's confidence
    /// (0–1) in a language outside `languages` is at least this.
    pub min_language_confidence: f64,
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig {
            enabled: true,
            min_chars: 600,
            max_chars: 3000,
            max_duplicate_line_frac: 0.3,
            max_duplicate_5gram_frac: 0.15,
            max_top_2gram_frac: 0.2,
            max_capital_ratio: 0.3,
            min_words: 50,
            min_mean_word_len: 3.0,
            max_mean_word_len: 10.0,
            max_symbol_word_ratio: 0.1,
            max_bullet_line_frac: 0.9,
            max_non_alpha_word_frac: 0.2,
            navigation_headings: [
                "advertisement",
                "quick links",
                "navigation",
                "menu",
                "related posts",
                "related articles",
                "share this",
                "follow us",
                "subscribe",
                "newsletter",
                "comments",
                "leave a reply",
                "footer",
                "sidebar",
                "search",
                "contact us",
                "cookie",
                "privacy policy",
                "terms of use",
                "copyright",
                "tags",
                "categories",
                "archives",
                "recent posts",
                "popular posts",
                "sign up",
                "log in",
                "login",
                "table of contents",
                "contents",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            min_line_punct_frac: 0.12,
            max_short_line_frac: 0.67,
            max_header_line_frac: 0.2,
            languages: vec!["eng".into()],
            min_language_confidence: 0.5,
        }
    }
}

/// Why a heading is rejected, if it is.
pub fn heading_problem(heading: &str, cfg: &FilterConfig) -> Option<&'static str> {
    let h = heading.trim();
    let letters: Vec<char> = h.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.is_empty() {
        return Some("empty_heading");
    }
    if letters.len() > 3 && letters.iter().all(|c| c.is_uppercase()) {
        return Some("all_caps_heading");
    }
    let lower = h.to_lowercase();
    let lower = lower.trim_end_matches(':').trim();
    if cfg
        .navigation_headings
        .iter()
        .any(|n| lower == n || lower.starts_with(&format!("{n} ")))
    {
        return Some("navigation_heading");
    }
    None
}

fn words(text: &str) -> Vec<&str> {
    text.split_whitespace().collect()
}

/// Share of characters in word n-grams that already appeared earlier (Gopher's duplicate n-gram fraction).
pub fn duplicate_ngram_frac(ws: &[&str], n: usize) -> f64 {
    if ws.len() < n {
        return 0.0;
    }
    let total: usize = ws.iter().map(|w| w.len()).sum();
    let mut seen = HashSet::new();
    let mut covered = vec![false; ws.len()];
    for i in 0..=ws.len() - n {
        let g = &ws[i..i + n];
        if !seen.insert(g) {
            for c in covered.iter_mut().skip(i).take(n) {
                *c = true;
            }
        }
    }
    let dup: usize = ws
        .iter()
        .zip(&covered)
        .filter(|(_, c)| **c)
        .map(|(w, _)| w.len())
        .sum();
    dup as f64 / total.max(1) as f64
}

/// Share of characters covered by the most frequent word n-gram.
pub fn top_ngram_frac(ws: &[&str], n: usize) -> f64 {
    if ws.len() < n {
        return 0.0;
    }
    let total: usize = ws.iter().map(|w| w.len()).sum();
    let mut counts: HashMap<&[&str], usize> = HashMap::new();
    for i in 0..=ws.len() - n {
        *counts.entry(&ws[i..i + n]).or_default() += 1;
    }
    let (g, c) = counts
        .into_iter()
        .max_by_key(|(g, c)| (*c, g.iter().map(|w| w.len()).sum::<usize>()))
        .unwrap_or((&[], 0));
    if c < 2 {
        return 0.0;
    }
    (g.iter().map(|w| w.len()).sum::<usize>() * c) as f64 / total.max(1) as f64
}

/// Share of non-empty lines (and sentences, whichever is higher) that repeat an earlier one.
pub fn duplicate_line_frac(text: &str) -> f64 {
    let frac = |items: Vec<String>| {
        let n = items.len();
        if n == 0 {
            return 0.0;
        }
        let mut seen = HashSet::new();
        let dups = items
            .into_iter()
            .filter(|s| !seen.insert(s.clone()))
            .count();
        dups as f64 / n as f64
    };
    let lines = text
        .lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    let sentences = text
        .split(['.', '!', '?', '\n'])
        .map(|s| {
            s.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        })
        .filter(|s| s.len() > 10)
        .collect();
    frac(lines).max(frac(sentences))
}

/// Check a segment's text; `None` = keep, `Some(reason)` = drop.
pub fn text_problem(text: &str, cfg: &FilterConfig) -> Option<&'static str> {
    let n = text.chars().count();
    if n < cfg.min_chars {
        return Some("too_short");
    }
    if cfg.max_chars > 0 && n > cfg.max_chars {
        return Some("too_long");
    }
    let ws = words(text);
    if ws.len() < cfg.min_words {
        return Some("too_few_words");
    }
    let mean = ws.iter().map(|w| w.chars().count()).sum::<usize>() as f64 / ws.len() as f64;
    if mean < cfg.min_mean_word_len || mean > cfg.max_mean_word_len {
        return Some("mean_word_length");
    }
    let letters = text.chars().filter(|c| c.is_alphabetic()).count();
    let caps = text.chars().filter(|c| c.is_uppercase()).count();
    if letters > 0 && caps as f64 / letters as f64 > cfg.max_capital_ratio {
        return Some("capital_ratio");
    }
    let symbols =
        text.matches('#').count() + text.matches("...").count() + text.matches('…').count();
    if symbols as f64 / ws.len() as f64 > cfg.max_symbol_word_ratio {
        return Some("symbol_ratio");
    }
    let non_alpha = ws
        .iter()
        .filter(|w| !w.chars().any(|c| c.is_alphabetic()))
        .count();
    if non_alpha as f64 / ws.len() as f64 > cfg.max_non_alpha_word_frac {
        return Some("non_alpha_words");
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let bullets = lines
        .iter()
        .filter(|l| l.trim_start().starts_with(['-', '*', '•', '·', '–']))
        .count();
    if !lines.is_empty() && bullets as f64 / lines.len() as f64 > cfg.max_bullet_line_frac {
        return Some("bullet_lines");
    }
    if !lines.is_empty() {
        let n = lines.len() as f64;
        let punct = lines
            .iter()
            .filter(|l| {
                l.trim_end()
                    .ends_with(['.', '!', '?', '"', '\'', ':', ';', ')', '…', '”'])
            })
            .count();
        if (punct as f64) / n < cfg.min_line_punct_frac {
            return Some("line_punctuation");
        }
        let short = lines
            .iter()
            .filter(|l| l.trim().chars().count() < 30)
            .count();
        if cfg.max_short_line_frac > 0.0 && short as f64 / n > cfg.max_short_line_frac {
            return Some("short_lines");
        }
        let headers = lines.iter().filter(|l| is_header_line(l)).count();
        if cfg.max_header_line_frac > 0.0 && headers as f64 / n > cfg.max_header_line_frac {
            return Some("header_lines");
        }
    }
    if duplicate_line_frac(text) > cfg.max_duplicate_line_frac {
        return Some("repeated_lines");
    }
    if duplicate_ngram_frac(&ws, 5) > cfg.max_duplicate_5gram_frac {
        return Some("repeated_ngrams");
    }
    if top_ngram_frac(&ws, 2) > cfg.max_top_2gram_frac {
        return Some("top_ngram");
    }
    if language_problem(text, cfg) {
        return Some("language");
    }
    None
}

/// `Key-Name: value` at the start of a line, the key one word of letters and
/// hyphens starting with a capital (RFC 5322 / HTTP header shape).
fn is_header_line(l: &str) -> bool {
    let Some((k, v)) = l.split_once(": ") else {
        return false;
    };
    !k.is_empty()
        && k.len() <= 40
        && !v.trim().is_empty()
        && k.starts_with(|c: char| c.is_ascii_uppercase())
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// True when `text` is confidently identified (whatlang, trigram model) as a
/// language outside `cfg.languages`. An empty list keeps everything.
pub fn language_problem(text: &str, cfg: &FilterConfig) -> bool {
    if cfg.languages.is_empty() {
        return false;
    }
    let head: String = text.chars().take(2000).collect();
    match whatlang::detect(&head) {
        Some(info) => {
            info.confidence() >= cfg.min_language_confidence
                && !cfg.languages.iter().any(|l| l == info.lang().code())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_identification() {
        let cfg = FilterConfig::default();
        let de = "Die Stadt liegt am Ufer des Flusses und ist seit dem Mittelalter ein wichtiger Handelsplatz gewesen. Heute leben dort etwa zwanzigtausend Menschen, die meisten arbeiten in kleinen Betrieben oder pendeln in die nahe Großstadt.";
        let en = "The town lies on the bank of the river and has been an important trading place since the Middle Ages. Today about twenty thousand people live there, and most of them work in small firms or commute to the nearby city.";
        assert!(language_problem(de, &cfg));
        assert!(!language_problem(en, &cfg));
        let all = FilterConfig {
            languages: vec![],
            ..cfg.clone()
        };
        assert!(!language_problem(de, &all));
        let deu = FilterConfig {
            languages: vec!["deu".into()],
            ..cfg
        };
        assert!(!language_problem(de, &deu) && language_problem(en, &deu));
    }

    fn prose(n: usize) -> String {
        let s = "The river rises in the northern hills and flows south through farmland before it reaches the coast. \
                 Farmers along its banks grow wheat, barley and apples, and the towns hold a market every week. \
                 In spring the water runs high and fast, while in late summer it slows and warms. ";
        let mut out = String::new();
        let mut i = 0;
        while out.len() < n {
            out += &s
                .replace("river", &format!("river{i}"))
                .replace("week", &format!("week{i}"));
            i += 1;
        }
        out
    }

    #[test]
    fn good_prose_passes_and_rules_fire() {
        let cfg = FilterConfig::default();
        let good = prose(1200);
        // each paragraph differs a little, so the line/5-gram rules see repeats; loosen them for the clean case
        let loose = FilterConfig {
            max_duplicate_5gram_frac: 1.0,
            max_duplicate_line_frac: 1.0,
            max_top_2gram_frac: 1.0,
            ..cfg.clone()
        };
        let good = &good[..=good[..1000].rfind('.').unwrap()];
        assert_eq!(text_problem(good, &loose), None);
        assert_eq!(text_problem("short", &cfg), Some("too_short"));
        assert_eq!(
            text_problem(&format!("{}end.", "word ".repeat(150)), &cfg),
            Some("repeated_ngrams")
        );
        assert_eq!(
            text_problem(&good.to_uppercase(), &loose),
            Some("capital_ratio")
        );
        // FineWeb line rules and the header-line rule
        assert_eq!(
            text_problem(&good.replace('.', ""), &loose),
            Some("line_punctuation")
        );
        let ws: Vec<&str> = good.split_whitespace().collect();
        let short_lines = ws
            .chunks(4)
            .map(|c| c.join(" ") + ".")
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(
            text_problem(&short_lines, &loose),
            Some("short_lines"),
            "{short_lines}"
        );
        let email = format!("Received: from mail.example.com\nContent-Type: text/plain\nSubject: Hello there.\n\n{good}");
        assert_eq!(text_problem(&email, &loose), Some("header_lines"));
        let spammy = "Buy cheap pills now. ".repeat(40);
        assert!(text_problem(&spammy, &cfg).is_some());
        assert_eq!(text_problem(&"x ".repeat(2000), &cfg), Some("too_long"));
    }

    #[test]
    fn repetition_measures() {
        let ws: Vec<&str> = "a b c d e a b c d e".split(' ').collect();
        assert!((duplicate_ngram_frac(&ws, 5) - 0.5).abs() < 1e-9);
        let uniq: Vec<&str> = "a b c d e f g h i j".split(' ').collect();
        assert_eq!(duplicate_ngram_frac(&uniq, 5), 0.0);
        assert_eq!(top_ngram_frac(&uniq, 2), 0.0);
        assert!(
            (duplicate_line_frac("one line here\none line here\nother line is here\n") - 1.0 / 3.0)
                .abs()
                < 1e-9
        );
    }

    #[test]
    fn headings() {
        let cfg = FilterConfig::default();
        assert_eq!(heading_problem("  ", &cfg), Some("empty_heading"));
        assert_eq!(heading_problem("123", &cfg), Some("empty_heading"));
        assert_eq!(
            heading_problem("BREAKING NEWS", &cfg),
            Some("all_caps_heading")
        );
        assert_eq!(
            heading_problem("Quick Links", &cfg),
            Some("navigation_heading")
        );
        assert_eq!(
            heading_problem("Advertisement:", &cfg),
            Some("navigation_heading")
        );
        assert_eq!(heading_problem("How to prune apple trees", &cfg), None);
        assert_eq!(heading_problem("FAQ", &cfg), None);
    }
}
