//! Decontamination: drop candidates that overlap evaluation prompts.
//!
//! An evaluation item is contaminated into a candidate when at least
//! `threshold` of the item's word `ngram`-grams (normalised text, as in
//! [`crate::dedup::normalise`]) occur in the candidate. An item shorter than
//! `ngram` words matches when its whole normalised text occurs in the
//! candidate as a word sequence, provided it has at least `min_words` words:
//! a two- or three-word prompt ("Rewrite it", "Summarize this") occurs in
//! ordinary text by chance and is no evidence of contamination, so such items
//! are skipped (counted in [`Decontaminator::skipped_short`]). Eval sets: AlpacaEval JSON
//! (a list of records with `instruction`), MT-bench `question.jsonl` (`turns`),
//! or any JSONL with `instruction`, `prompt`, `question` or `text`.

use crate::dedup::normalise;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;

/// The `[decontam]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DecontamConfig {
    /// Eval-set files; empty = no decontamination.
    pub paths: Vec<String>,
    pub ngram: usize,
    /// Share of an eval item's n-grams that must appear in a candidate.
    pub threshold: f64,
    /// Eval items with fewer words than this are not used at all (too short
    /// to be evidence); items between this and `ngram` words match as a whole phrase.
    pub min_words: usize,
}

impl Default for DecontamConfig {
    fn default() -> Self {
        DecontamConfig {
            paths: vec![],
            ngram: 8,
            threshold: 0.5,
            min_words: 6,
        }
    }
}

/// Prompts of one eval file, by format.
pub fn read_eval_prompts(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading eval set {}", path.display()))?;
    let fields = |v: &serde_json::Value| -> Vec<String> {
        if let Some(t) = v["turns"].as_array() {
            return t
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect();
        }
        for f in ["instruction", "prompt", "question", "text"] {
            if let Some(s) = v[f].as_str() {
                return vec![s.to_string()];
            }
        }
        vec![]
    };
    let trimmed = text.trim_start();
    if trimmed.starts_with('[') {
        let v: Vec<serde_json::Value> = serde_json::from_str(trimmed)
            .with_context(|| format!("{}: not a JSON list", path.display()))?;
        return Ok(v.iter().flat_map(fields).collect());
    }
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(l)
            .with_context(|| format!("{}:{}: invalid JSON", path.display(), i + 1))?;
        out.extend(fields(&v));
    }
    Ok(out)
}

fn grams(text: &str, n: usize) -> HashSet<u64> {
    let norm = normalise(text);
    let ws: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
    let h = |s: &str| {
        u64::from_le_bytes(
            blake3::hash(s.as_bytes()).as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        )
    };
    if ws.len() < n {
        return if ws.is_empty() {
            HashSet::new()
        } else {
            HashSet::from([h(&ws.join(" "))])
        };
    }
    ws.windows(n).map(|g| h(&g.join(" "))).collect()
}

/// An index of eval-item n-grams.
pub struct Decontaminator {
    n: usize,
    threshold: f64,
    items: Vec<(String, usize)>,
    index: HashMap<u64, Vec<u32>>,
    /// Items shorter than n words: (" normalised text ", opening text).
    short: Vec<(String, String)>,
    /// Eval items skipped for having fewer than `min_words` words.
    pub skipped_short: usize,
}

impl Decontaminator {
    /// Load every configured eval file. Errors: unreadable or malformed files.
    pub fn load(cfg: &DecontamConfig) -> Result<Option<Self>> {
        if cfg.paths.is_empty() {
            return Ok(None);
        }
        let mut prompts = Vec::new();
        for p in crate::readers::expand_paths(&cfg.paths)? {
            prompts.extend(read_eval_prompts(&p)?);
        }
        let d = Self::with_min_words(&prompts, cfg.ngram, cfg.threshold, cfg.min_words);
        if d.skipped_short > 0 {
            tracing::info!(
                "decontam: {} eval items under {} words skipped (too short to be evidence)",
                d.skipped_short,
                cfg.min_words
            );
        }
        Ok(Some(d))
    }

    /// Index `prompts`, every item used however short (see [`Self::with_min_words`]).
    pub fn new(prompts: &[String], n: usize, threshold: f64) -> Self {
        Self::with_min_words(prompts, n, threshold, 1)
    }

    /// Index `prompts`, skipping items of fewer than `min_words` words.
    pub fn with_min_words(prompts: &[String], n: usize, threshold: f64, min_words: usize) -> Self {
        let mut skipped_short = 0;
        let mut index: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut items = Vec::new();
        let mut short = Vec::new();
        for p in prompts {
            let norm = normalise(p);
            if norm.is_empty() {
                continue;
            }
            let words = norm.split(' ').count();
            if words < min_words {
                skipped_short += 1;
                continue;
            }
            if words < n.max(1) {
                short.push((format!(" {norm} "), p.chars().take(80).collect()));
                continue;
            }
            let g = grams(p, n.max(1));
            if g.is_empty() {
                continue;
            }
            let id = items.len() as u32;
            items.push((p.chars().take(80).collect(), g.len()));
            for x in g {
                index.entry(x).or_default().push(id);
            }
        }
        Decontaminator {
            n: n.max(1),
            threshold,
            items,
            index,
            short,
            skipped_short,
        }
    }

    /// Number of indexed eval items.
    pub fn len(&self) -> usize {
        self.items.len() + self.short.len()
    }

    /// True when no item was indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first eval item (its opening text) this candidate overlaps, if any.
    pub fn check(&self, text: &str) -> Option<&str> {
        if !self.short.is_empty() {
            let padded = format!(" {} ", normalise(text));
            if let Some((_, open)) = self.short.iter().find(|(s, _)| padded.contains(s.as_str())) {
                return Some(open);
            }
        }
        let mut hits: HashMap<u32, usize> = HashMap::new();
        for g in grams(text, self.n) {
            if let Some(ids) = self.index.get(&g) {
                for &i in ids {
                    *hits.entry(i).or_default() += 1;
                }
            }
        }
        hits.into_iter()
            .filter(|(i, c)| *c as f64 >= self.threshold * self.items[*i as usize].1 as f64)
            .min_by_key(|(i, _)| *i)
            .map(|(i, _)| self.items[i as usize].0.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_detection_and_formats() {
        let dir = tempfile::tempdir().unwrap();
        let alpaca = dir.path().join("alpaca.json");
        std::fs::write(&alpaca, r#"[{"instruction": "Explain how photosynthesis turns sunlight water and carbon dioxide into sugar", "output": "x", "generator": "g", "dataset": "d"}]"#).unwrap();
        let mt = dir.path().join("question.jsonl");
        std::fs::write(&mt, "{\"question_id\": 81, \"turns\": [\"Compose an engaging travel blog post about a recent trip to Hawaii\", \"Rewrite it\"]}\n").unwrap();
        let cfg = DecontamConfig {
            paths: vec![alpaca.display().to_string(), mt.display().to_string()],
            ..Default::default()
        };
        let d = Decontaminator::load(&cfg).unwrap().unwrap();
        // "Rewrite it" is two words: no evidence, not indexed
        assert_eq!(d.len(), 2);
        assert_eq!(d.skipped_short, 1);
        let leaked = "Intro text. Explain how photosynthesis turns sunlight, water and carbon dioxide into sugar! More text follows here.";
        assert!(d
            .check(leaked)
            .unwrap()
            .starts_with("Explain how photosynthesis"));
        assert!(d.check("Compose an engaging travel blog post about a recent trip to Hawaii and its beaches").is_some());
        assert_eq!(
            d.check(
                "A page about gardening tools and how to keep them sharp through the winter months"
            ),
            None
        );
        assert!(d.check("then: rewrite it, please").is_none());
        // with every item used (the old behaviour) short items match as a whole phrase
        let all = Decontaminator::new(&["Rewrite it".to_string()], 8, 0.5);
        assert!(all.check("then: rewrite it, please").is_some());
    }
}
