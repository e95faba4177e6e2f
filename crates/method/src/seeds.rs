//! Seed pairs (x, y): human-written instruction → response examples (Li et
//! al. 2023 §2.1 use 3,200 OpenAssistant pairs). Shown as few-shot examples to
//! an instruct model standing in for the backward model.

use anyhow::{Context, Result};
use backforth_corpus::readers::for_each_line;
use backforth_corpus::readers::InputStats;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub instruction: String,
    pub response: String,
}

/// Read seed pairs from JSONL (`instruction` + `response`, or Alpaca's `output`).
/// Bad lines are skipped and counted in `stats` under `seed_*` reasons.
/// Errors: the file cannot be opened.
pub fn read_seeds(path: &Path, max_line_bytes: usize, stats: &mut InputStats) -> Result<Vec<Seed>> {
    let mut out = Vec::new();
    for_each_line(
        path,
        max_line_bytes,
        stats,
        "seed",
        "seed ",
        |at, buf, stats| {
            #[derive(Deserialize)]
            struct Raw {
                instruction: Option<String>,
                response: Option<String>,
                output: Option<String>,
            }
            match serde_json::from_slice::<Raw>(buf) {
                Ok(Raw {
                    instruction: Some(i),
                    response,
                    output,
                }) if response.is_some() || output.is_some() => {
                    let resp = response.or(output).unwrap_or_default();
                    if i.trim().is_empty() || resp.trim().is_empty() {
                        stats.skip(
                            "seed_empty",
                            format!("{at}: empty instruction or response, skipped"),
                        );
                    } else {
                        out.push(Seed {
                            instruction: i,
                            response: resp,
                        });
                    }
                }
                Ok(_) => stats.skip(
                    "seed_missing_field",
                    format!("{at}: needs `instruction` and `response`, skipped"),
                ),
                Err(e) => stats.skip(
                    "seed_invalid_json",
                    format!("{at}: invalid seed JSON ({e}), skipped"),
                ),
            }
        },
    )
    .with_context(|| format!("opening seeds {}", path.display()))?;
    Ok(out)
}

/// How few-shot seed pairs are chosen per document (`backtranslate.seed_selection`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum SeedSelection {
    /// k pairs drawn at random per document (seeded by run seed and document id).
    #[default]
    Random,
    /// The k pairs most similar to the document (TF-IDF cosine over word
    /// stems of the seed's instruction and response), so a news story is not
    /// shown only programming questions.
    Nearest,
}

/// A TF-IDF index of seed pairs for [`SeedSelection::Nearest`]: built once
/// per run, queried per document; deterministic (ties go to the earlier seed).
///
/// Lexical rather than embedding similarity: it needs no model in the method
/// crate, costs microseconds per document, and word overlap is what
/// "same topic" means for the few-shot failure it targets.
pub struct SeedIndex {
    idf: std::collections::HashMap<String, f32>,
    vecs: Vec<Vec<(String, f32)>>,
}

fn tf(text: &str) -> std::collections::HashMap<String, f32> {
    let mut m = std::collections::HashMap::new();
    for w in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
    {
        *m.entry(crate::text::stem(w)).or_insert(0.0) += 1.0;
    }
    m
}

impl SeedIndex {
    /// Index `seeds` (instruction + response text).
    pub fn new(seeds: &[Seed]) -> Self {
        let tfs: Vec<_> = seeds
            .iter()
            .map(|s| tf(&format!("{} {}", s.instruction, s.response)))
            .collect();
        let mut df: std::collections::HashMap<String, f32> = std::collections::HashMap::new();
        for t in &tfs {
            for k in t.keys() {
                *df.entry(k.clone()).or_insert(0.0) += 1.0;
            }
        }
        let n = seeds.len().max(1) as f32;
        let idf: std::collections::HashMap<String, f32> = df
            .into_iter()
            .map(|(k, d)| (k, (n / d).ln() + 1.0))
            .collect();
        let vecs = tfs
            .into_iter()
            .map(|t| {
                normalised(
                    t.into_iter()
                        .map(|(k, c)| {
                            let w = (1.0 + c.ln()) * idf[&k];
                            (k, w)
                        })
                        .collect(),
                )
            })
            .collect();
        SeedIndex { idf, vecs }
    }

    /// Indices of the `k` seeds most similar to `text`, best first.
    pub fn nearest(&self, text: &str, k: usize) -> Vec<usize> {
        let q: std::collections::HashMap<String, f32> = tf(text)
            .into_iter()
            .filter_map(|(t, c)| self.idf.get(&t).map(|i| (t, (1.0 + c.ln()) * i)))
            .collect();
        let norm = q.values().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
        let mut scored: Vec<(usize, f32)> = self
            .vecs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    i,
                    v.iter()
                        .map(|(t, w)| q.get(t).copied().unwrap_or(0.0) * w)
                        .sum::<f32>()
                        / norm,
                )
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.into_iter().take(k).map(|(i, _)| i).collect()
    }
}

fn normalised(mut v: Vec<(String, f32)>) -> Vec<(String, f32)> {
    let n = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt().max(1e-12);
    for (_, w) in &mut v {
        *w /= n;
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_seeds_share_the_topic() {
        let seeds: Vec<Seed> = [
            (
                "How do I sort a list in Python?",
                "Use sorted() or list.sort().",
            ),
            (
                "What causes bushfires to spread?",
                "Hot dry winds push bushfires across dry land.",
            ),
            (
                "Who decides national honours?",
                "Honours lists are chosen by a committee.",
            ),
        ]
        .iter()
        .map(|(i, r)| Seed {
            instruction: i.to_string(),
            response: r.to_string(),
        })
        .collect();
        let ix = SeedIndex::new(&seeds);
        assert_eq!(
            ix.nearest("Strong winds pushed the bushfire towards the town.", 1),
            vec![1]
        );
        assert_eq!(
            ix.nearest("He was named in the New Year honours list.", 2)[0],
            2
        );
        assert_eq!(ix.nearest("nothing in common", 3).len(), 3);
    }

    #[test]
    fn seeds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, "{\"instruction\":\"Q\",\"response\":\"A\"}\n\n{\"instruction\":\"Q2\",\"output\":\"A2\"}\nnot json\n{\"instruction\":\"Q3\"}\n").unwrap();
        let mut st = InputStats::default();
        let s = read_seeds(&p, 1 << 20, &mut st).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].response, "A2");
        assert_eq!(st.skipped["seed_invalid_json"], 1);
        assert_eq!(st.skipped["seed_missing_field"], 1);
    }
}
