//! Distribution analyses of text sets (`backforth analyze`): lengths,
//! lexical diversity, and a run's curation and parse statistics. Embeddings,
//! MAUVE and the 2-D map are added by the CLI (they need the embedding model);
//! this module owns everything that is plain counting.
//!
//! Diversity measures (Nguyen et al. 2024 §4 compare web-grounded and
//! distilled responses by diversity):
//! - `distinct_3`: unique word trigrams / all word trigrams in the set
//!   (Li et al. 2016, "distinct-n", arXiv:1510.03055), plus the raw count of
//!   unique trigrams;
//! - `ttr`: word types / word tokens over the whole set (depends on set size);
//! - `mattr`: moving-average type/token ratio over a 500-word window running
//!   across the concatenated set (Covington & McFall 2010), which does not
//!   grow or shrink with the set's size.
//!
//! Words are lower-cased runs of alphanumeric characters (Unicode), so
//! "tokens" here are words, not model tokens; `chars` are Unicode scalar values.

use anyhow::{Context, Result};
use backforth::config::Config;
use backforth::record::{ParseStatus, Record, Stage};
use backforth::store::{self, RunDir};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// Window of the moving-average type/token ratio, in words.
pub const MATTR_WINDOW: usize = 500;

/// A named set of texts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextSet {
    pub name: String,
    pub texts: Vec<String>,
}

/// Summary of a length distribution.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Dist {
    pub mean: f64,
    pub median: f64,
    pub p10: f64,
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    /// All values, for plots (one per text, in set order).
    pub values: Vec<f64>,
}

impl Dist {
    /// Summary of `values` (empty → all zeros). Percentiles by nearest rank.
    pub fn of(values: Vec<f64>) -> Dist {
        if values.is_empty() {
            return Dist::default();
        }
        let mut s = values.clone();
        s.sort_by(f64::total_cmp);
        let q = |p: f64| s[(((s.len() - 1) as f64) * p).round() as usize];
        Dist {
            mean: s.iter().sum::<f64>() / s.len() as f64,
            median: q(0.5),
            p10: q(0.1),
            p90: q(0.9),
            min: s[0],
            max: s[s.len() - 1],
            values,
        }
    }
}

/// Lengths and diversity of one set.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TextStats {
    pub name: String,
    pub n: usize,
    /// Texts with no words.
    pub empty: usize,
    pub chars: Dist,
    pub words: Dist,
    pub unique_trigrams: usize,
    pub distinct_3: f64,
    pub ttr: f64,
    pub mattr: f64,
}

/// Lower-cased words (runs of alphanumerics).
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect()
}

/// Statistics of one set (see the module docs).
pub fn text_stats(set: &TextSet) -> TextStats {
    let mut trigrams: HashSet<u64> = HashSet::new();
    let mut trigram_total = 0usize;
    let mut types: HashSet<String> = HashSet::new();
    let mut all_words: Vec<u64> = Vec::new();
    let mut chars = Vec::with_capacity(set.texts.len());
    let mut lens = Vec::with_capacity(set.texts.len());
    let mut empty = 0;
    let h = |s: &str| {
        u64::from_le_bytes(
            blake3::hash(s.as_bytes()).as_bytes()[..8]
                .try_into()
                .expect("8 bytes"),
        )
    };
    for t in &set.texts {
        let ws = words(t);
        chars.push(t.chars().count() as f64);
        lens.push(ws.len() as f64);
        if ws.is_empty() {
            empty += 1;
        }
        for g in ws.windows(3) {
            trigrams.insert(h(&g.join(" ")));
            trigram_total += 1;
        }
        for w in ws {
            all_words.push(h(&w));
            types.insert(w);
        }
    }
    TextStats {
        name: set.name.clone(),
        n: set.texts.len(),
        empty,
        chars: Dist::of(chars),
        words: Dist::of(lens),
        unique_trigrams: trigrams.len(),
        distinct_3: if trigram_total > 0 {
            trigrams.len() as f64 / trigram_total as f64
        } else {
            0.0
        },
        ttr: if all_words.is_empty() {
            0.0
        } else {
            types.len() as f64 / all_words.len() as f64
        },
        mattr: mattr(&all_words, MATTR_WINDOW),
    }
}

/// Moving-average type/token ratio of a word-id sequence over windows of `w`
/// (the plain TTR when the sequence is shorter than `w`).
pub fn mattr(ids: &[u64], w: usize) -> f64 {
    if ids.is_empty() {
        return 0.0;
    }
    if ids.len() <= w {
        return ids.iter().collect::<HashSet<_>>().len() as f64 / ids.len() as f64;
    }
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for id in &ids[..w] {
        *counts.entry(*id).or_default() += 1;
    }
    let mut sum = counts.len() as f64;
    for i in w..ids.len() {
        *counts.entry(ids[i]).or_default() += 1;
        let old = ids[i - w];
        let c = counts.get_mut(&old).expect("in window");
        *c -= 1;
        if *c == 0 {
            counts.remove(&old);
        }
        sum += counts.len() as f64;
    }
    sum / (ids.len() - w + 1) as f64 / w as f64
}

/// Parse outcomes of one stage (current key only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ParseCounts {
    pub total: usize,
    pub ok: usize,
    pub failed: usize,
    pub errors: usize,
    /// `failed / (ok + failed)`: share of answers that did not parse.
    pub failure_rate: f64,
    /// Failure reasons (first 60 characters) and their counts.
    pub reasons: BTreeMap<String, usize>,
}

/// A run's curation and parse statistics.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunStats {
    /// Curation scores: index 0 = no score (unparsed or error), 1..=5 = score.
    pub score_histogram: [usize; 6],
    pub keep_min_score: u8,
    pub scored: usize,
    pub kept: usize,
    /// kept / scored.
    pub share_kept: f64,
    pub parse: BTreeMap<String, ParseCounts>,
    /// Relevance and grounding checks per export (`summary.json`
    /// `outputs.<name>.checks`: checked, passed, failed, reasons, examples).
    #[serde(default)]
    pub checks: BTreeMap<String, serde_json::Value>,
}

/// Everything a report shows per kept example, from the run's stage files.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Example {
    pub id: String,
    pub document: String,
    pub instruction: Option<String>,
    pub score: Option<u8>,
    /// The curation judge's raw text (its reasoning).
    pub curation: Option<String>,
    pub rewrite: Option<String>,
    pub distilled: Option<String>,
    pub kept: bool,
    /// The rewrite cut at the learned grounding checker's scored sentences
    /// (from `checks.jsonl`), in order, covering the whole rewrite; empty
    /// when the checker did not run on this pair.
    #[serde(default)]
    pub rewrite_spans: Vec<RewriteSpan>,
    /// The learned checker's instruction relevance (0–1), where it ran.
    #[serde(default)]
    pub relevance: Option<f64>,
    /// Why the rewrite export left this pair out (check reason codes).
    #[serde(default)]
    pub check_reasons: Vec<String>,
    /// Parsed outputs of the stages defined in the config (`[stage.NAME]`), by stage name.
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
}

/// A piece of a rewrite for the report's example browser.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RewriteSpan {
    pub text: String,
    /// The learned checker's support (0–1) for a scored sentence.
    pub support: Option<f64>,
    /// Under `checks.min_sentence_support`: shown highlighted.
    pub unsupported: bool,
}

/// Cut `text` at the scored sentences' byte ranges (`[{start, end,
/// support}]` from `checks.jsonl`); ranges that do not fit the text (a
/// stale file) give one plain span.
pub fn rewrite_spans(text: &str, sentences: &[serde_json::Value], min_support: f64) -> Vec<RewriteSpan> {
    let mut out = Vec::new();
    let mut at = 0usize;
    for s in sentences {
        let (Some(a), Some(b), Some(p)) = (
            s["start"].as_u64().map(|v| v as usize),
            s["end"].as_u64().map(|v| v as usize),
            s["support"].as_f64(),
        ) else {
            continue;
        };
        if a < at || b > text.len() || a > b || !text.is_char_boundary(a) || !text.is_char_boundary(b) {
            return vec![RewriteSpan { text: text.to_string(), support: None, unsupported: false }];
        }
        if a > at {
            out.push(RewriteSpan { text: text[at..a].to_string(), support: None, unsupported: false });
        }
        out.push(RewriteSpan { text: text[a..b].to_string(), support: Some(p), unsupported: p < min_support });
        at = b;
    }
    if at < text.len() {
        out.push(RewriteSpan { text: text[at..].to_string(), support: None, unsupported: false });
    }
    out
}

/// A run read back from its folder: records of the current keys, merged by id.
pub struct RunData {
    pub stats: RunStats,
    pub examples: Vec<Example>,
    pub summary: serde_json::Value,
}

/// Read a run folder (`summary.json` for the stage keys, `config.toml` for the
/// keep threshold, `stages/*.jsonl`). Missing stages are simply absent.
/// Errors: no readable `summary.json`.
pub fn read_run(dir: &Path) -> Result<RunData> {
    let run = RunDir(dir.to_path_buf());
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.summary())
            .with_context(|| format!("{}: not a run folder (no summary.json)", dir.display()))?,
    )
    .with_context(|| format!("{}: invalid JSON", run.summary().display()))?;
    let run_cfg = Config::load(Some(&dir.join("config.toml")), &[]).ok();
    let keep = run_cfg.as_ref().map(|c| c.curate.keep_min_score).unwrap_or(5);
    let min_support = run_cfg
        .as_ref()
        .map(|c| c.checks.min_sentence_support)
        .unwrap_or(0.5);
    // the rewrite export's checks by record id (learned scores, reasons)
    let mut checks: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    if let Ok(t) = std::fs::read_to_string(dir.join("checks.jsonl")) {
        for l in t.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if v["export"] == "dataset" {
                    if let Some(id) = v["id"].as_str() {
                        checks.insert(id.to_string(), v["checks"].clone());
                    }
                }
            }
        }
    }
    let mut stats = RunStats {
        keep_min_score: keep,
        ..Default::default()
    };
    let mut by_id: BTreeMap<(u64, String), Record> = BTreeMap::new();
    // built-in stages first, then those the config defined (every stage the summary keys)
    let mut names: Vec<String> = Stage::ALL.iter().map(|s| s.name().to_string()).collect();
    if let Some(k) = summary["keys"].as_object() {
        names.extend(k.keys().filter(|n| Stage::builtin(n).is_none()).cloned());
    }
    for stage in names.iter().map(String::as_str) {
        let Some(key) = summary["keys"][stage].as_str() else {
            continue;
        };
        let (recs, _) = store::read_records(&run.stage(stage), Some(stage), key)?;
        let mut pc = ParseCounts::default();
        for r in recs {
            if let Some(g) = r.generation(stage) {
                pc.total += 1;
                match &g.parse {
                    ParseStatus::Ok => pc.ok += 1,
                    ParseStatus::Failed { reason } => {
                        pc.failed += 1;
                        *pc.reasons
                            .entry(reason.chars().take(60).collect())
                            .or_default() += 1;
                    }
                    ParseStatus::Error { .. } => pc.errors += 1,
                }
                if stage == Stage::Curate.name() {
                    stats.score_histogram[g.score.unwrap_or(0).min(5) as usize] += 1;
                }
                let entry = by_id
                    .entry((r.ordinal, r.id.clone()))
                    .or_insert_with(|| r.clone());
                entry.set_generation(stage, g.clone());
            }
        }
        pc.failure_rate = if pc.ok + pc.failed > 0 {
            pc.failed as f64 / (pc.ok + pc.failed) as f64
        } else {
            0.0
        };
        stats.parse.insert(stage.to_string(), pc);
    }
    if let Some(outs) = summary["outputs"].as_object() {
        for (name, o) in outs {
            if o["checks"].is_object() {
                stats.checks.insert(name.clone(), o["checks"].clone());
            }
        }
    }
    stats.scored = stats.score_histogram[1..].iter().sum();
    stats.kept = stats.score_histogram[keep.clamp(1, 5) as usize..]
        .iter()
        .sum();
    stats.share_kept = if stats.scored > 0 {
        stats.kept as f64 / stats.scored as f64
    } else {
        0.0
    };
    let examples = by_id
        .into_values()
        .map(|r| {
            let val = |s: Stage| r.generation(s.name()).and_then(|g| g.value.clone());
            let c = checks.get(&r.id);
            let rewrite = val(Stage::Rewrite);
            let rewrite_spans = match (c.and_then(|c| c["grounding"]["sentences"].as_array()), &rewrite) {
                (Some(ss), Some(t)) if !ss.is_empty() => rewrite_spans(t, ss, min_support),
                _ => vec![],
            };
            Example {
                rewrite_spans,
                relevance: c.and_then(|c| c["grounding"]["relevance"].as_f64()),
                check_reasons: c
                    .and_then(|c| c["reasons"].as_array())
                    .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
                id: r.id.clone(),
                instruction: r.instruction().map(String::from),
                score: r.score(),
                curation: r.curation.as_ref().map(|g| g.raw.clone()),
                rewrite,
                distilled: val(Stage::Distill),
                outputs: r
                    .outputs
                    .iter()
                    .filter_map(|(k, g)| g.value.clone().map(|v| (k.clone(), v)))
                    .collect(),
                kept: r.score().is_some_and(|s| s >= keep),
                document: r.text,
            }
        })
        .collect();
    Ok(RunData {
        stats,
        examples,
        summary,
    })
}

/// The standard text sets of a run, over kept examples: `documents` (the
/// original segments), `instructions`, `rewrite` and `distill` responses.
/// Empty sets are left out.
pub fn run_sets(data: &RunData) -> Vec<TextSet> {
    let kept: Vec<&Example> = data.examples.iter().filter(|e| e.kept).collect();
    let mk = |name: &str, f: &dyn Fn(&Example) -> Option<String>| TextSet {
        name: name.into(),
        texts: kept.iter().filter_map(|e| f(e)).collect(),
    };
    [
        mk("documents", &|e| Some(e.document.clone())),
        mk("instructions", &|e| e.instruction.clone()),
        mk("rewrite", &|e| e.rewrite.clone()),
        mk("distill", &|e| e.distilled.clone()),
    ]
    .into_iter()
    .filter(|s| !s.texts.is_empty())
    .collect()
}

/// Read a text set from a file: a JSON list or JSONL of objects, taking
/// `field` (default: the first of `output`, `text`, `response`, `instruction`
/// present), or plain text with one text per line for other extensions.
/// Items without the field are counted in the second value.
pub fn read_text_set(name: &str, path: &Path, field: Option<&str>) -> Result<(TextSet, usize)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let is_json = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("json" | "jsonl")
    );
    if !is_json {
        return Ok((
            TextSet {
                name: name.into(),
                texts: text
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(String::from)
                    .collect(),
            },
            0,
        ));
    }
    let items: Vec<serde_json::Value> = if text.trim_start().starts_with('[') {
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a valid JSON list", path.display()))?
    } else {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or(serde_json::Value::Null))
            .collect()
    };
    let mut missing = 0;
    let mut texts = Vec::new();
    for v in items {
        let got = match field {
            Some(f) => v.get(f).and_then(|x| x.as_str()),
            None => ["output", "text", "response", "instruction"]
                .iter()
                .find_map(|f| v.get(*f).and_then(|x| x.as_str())),
        };
        match got {
            Some(s) => texts.push(s.to_string()),
            None => missing += 1,
        }
    }
    Ok((
        TextSet {
            name: name.into(),
            texts,
        },
        missing,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diversity_by_hand() {
        let s = TextSet {
            name: "s".into(),
            texts: vec![
                "the cat sat on the mat".into(),
                "The cat sat!".into(),
                "".into(),
            ],
        };
        let t = text_stats(&s);
        assert_eq!(t.n, 3);
        assert_eq!(t.empty, 1);
        // trigrams: the cat sat / cat sat on / sat on the / on the mat / the cat sat → 4 unique of 5
        assert_eq!(t.unique_trigrams, 4);
        assert!((t.distinct_3 - 0.8).abs() < 1e-12);
        // words: 6 + 3 = 9 tokens, types {the, cat, sat, on, mat} = 5
        assert!((t.ttr - 5.0 / 9.0).abs() < 1e-12);
        assert_eq!(t.words.values, vec![6.0, 3.0, 0.0]);
        assert_eq!(t.chars.max, 22.0);
        assert_eq!(t.words.median, 3.0);
    }

    #[test]
    fn mattr_by_hand() {
        // windows of 2 over a a b b: {a}, {a,b}, {b} → (1 + 2 + 1) / 3 / 2
        assert!((mattr(&[1, 1, 2, 2], 2) - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(mattr(&[1, 2, 3], 5), 1.0);
        assert_eq!(mattr(&[], 5), 0.0);
    }

    #[test]
    fn text_set_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("o.json");
        std::fs::write(
            &p,
            r#"[{"instruction":"i","output":"o1"},{"instruction":"j"}]"#,
        )
        .unwrap();
        let (s, missing) = read_text_set("o", &p, None).unwrap();
        assert_eq!(s.texts, vec!["o1".to_string(), "j".to_string()]);
        assert_eq!(missing, 0);
        let (s, missing) = read_text_set("o", &p, Some("output")).unwrap();
        assert_eq!((s.texts.len(), missing), (1, 1));
        let t = d.path().join("t.txt");
        std::fs::write(&t, "a\n\nb\n").unwrap();
        assert_eq!(read_text_set("t", &t, None).unwrap().0.texts.len(), 2);
    }
}
