//! What the learned grounding checker sees: a fixed vector of alignment
//! features for a *claim* (one response sentence) or an *instruction*
//! against one document.
//!
//! The design follows SummaC (Laban et al. 2022, TACL) and AlignScore (Zha et
//! al. 2023, ACL) in one respect: a long document is cut into units (its
//! sentences, adjacent sentence pairs, and 96-word windows for the embedding
//! side) and a claim is judged against its *best* unit, so a claim backed by
//! one place of a long page is not diluted by the rest. Unlike them the
//! scorer on top is a small network over these features rather than a
//! fine-tuned transformer: on 2 CPU cores a cross-encoder pass per
//! (claim, unit) pair would cost about as much as the LLM verifier it is meant
//! to replace (see BENCHMARKS.md, "Learned grounding checker").
//!
//! Features mix three views that fail in different ways:
//! - lexical coverage by the best unit and by the whole document (stems and
//!   exact words), weighted by the corpus's inverse document frequency so a
//!   missing *rare* term (a swapped identifier, a name) weighs more than a
//!   missing common one (a paraphrase);
//! - order: content-word bigrams and word bigrams, which see a swapped
//!   keyword even when both words occur somewhere in the document;
//! - meaning: MiniLM cosine to the best sentence and the best window, which
//!   keeps paraphrases from looking unsupported.
//!
//! Plus numbers and names absent from the document and a negation mismatch
//! against the best unit (FactCC's transformations, Kryściński et al. 2020,
//! arXiv:1910.12840, are what these must catch).

use crate::text::{content_words, names, number_set, sentences, topic_words, words, STOP, TASK};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// The English Snowball stemmer (Porter 2): "started"/"start",
/// "victories"/"victory" share a stem. The lexical checks keep their own
/// cruder stem; the learned checker's features use this one.
static STEMMER: std::sync::LazyLock<rust_stemmers::Stemmer> =
    std::sync::LazyLock::new(|| rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English));

/// The stem of a word (lower-cased first).
pub fn gstem(w: &str) -> String {
    STEMMER.stem(&w.to_lowercase()).into_owned()
}

/// Stems of a text's content words: ≥ 3 characters, not function words,
/// not bare numbers, in order (repeats kept).
pub fn content_terms(s: &str) -> Vec<String> {
    content_words(s, &STOP).iter().map(|w| gstem(w)).collect()
}

/// The set of stems of every word of a text.
pub fn stem_set(s: &str) -> HashSet<String> {
    words(s).iter().map(|w| gstem(w)).collect()
}

/// Share (0–1) of `ws` that `known` lacks; 0 for no words.
fn missing_share(ws: &[String], known: &HashSet<String>) -> f64 {
    if ws.is_empty() {
        return 0.0;
    }
    ws.iter().filter(|w| !known.contains(*w)).count() as f64 / ws.len() as f64
}

/// Distinct stems of the capitalised names in `text` that `doc` lacks.
fn missing_names(text: &str, doc: &DocView) -> usize {
    names(text, &STOP, &TASK)
        .iter()
        .map(|x| gstem(x))
        .filter(|s| !doc.stems.contains(s))
        .collect::<HashSet<String>>()
        .len()
}

/// Names of the claim features, in vector order (stored in the model file so
/// a model trained on another feature list is refused).
pub const CLAIM_FEATURES: [&str; 14] = [
    "cov_doc",
    "cov_best",
    "idfcov_doc",
    "idfcov_best",
    "max_missing_idf",
    "content_bigram_cov_doc",
    "exact_missing_share",
    "numbers_missing",
    "names_missing",
    "negation_mismatch",
    "cos_best_sentence",
    "cos_best_window",
    "word_bigram_cov_best",
    "log_len",
];

/// Names of the instruction features, in vector order.
pub const INSTRUCTION_FEATURES: [&str; 11] = [
    "topic_cov",
    "topic_idfcov",
    "max_missing_idf",
    "topic_bigram_cov",
    "exact_missing_share",
    "numbers_missing",
    "names_missing",
    "cos_best_window",
    "cos_best_sentence",
    "log_topic_len",
    "no_topic_words",
];

/// Document frequencies of word stems over a corpus: the IDF weights of the
/// features. Stems seen in one document only are not stored (they get the
/// highest weight, like an unseen stem).
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct Idf {
    /// Documents counted.
    pub documents: u32,
    /// Stem → documents containing it (≥ 2).
    pub df: HashMap<String, u32>,
}

impl Idf {
    /// Count stems over `docs` (each document counted once per stem).
    pub fn from_documents<'a>(docs: impl IntoIterator<Item = &'a str>) -> Idf {
        let mut df: HashMap<String, u32> = HashMap::new();
        let mut n = 0u32;
        for d in docs {
            n += 1;
            for s in stem_set(d) {
                *df.entry(s).or_default() += 1;
            }
        }
        df.retain(|_, c| *c >= 2);
        Idf { documents: n, df }
    }

    /// Smoothed inverse document frequency, `ln((N + 1) / (df + 1)) + 1`.
    pub fn idf(&self, stem: &str) -> f64 {
        let df = self.df.get(stem).copied().unwrap_or(1) as f64;
        ((self.documents as f64 + 1.0) / (df + 1.0)).ln() + 1.0
    }

    /// The largest value [`Idf::idf`] can take (a stem seen once or never).
    pub fn max_idf(&self) -> f64 {
        ((self.documents as f64 + 1.0) / 2.0).ln() + 1.0
    }
}

/// True when a text negates: "not", "no", "never", "cannot", "n't", …
pub fn negated(s: &str) -> bool {
    let l = s.to_lowercase();
    if l.contains("n't") || l.contains("n’t") {
        return true;
    }
    l.split(|c: char| !c.is_alphanumeric()).any(|w| {
        matches!(
            w,
            "not" | "no" | "never" | "cannot" | "nor" | "none" | "neither" | "without" | "nothing"
        )
    })
}

/// One sentence of a document, indexed for the lexical features.
struct Unit {
    stems: HashSet<String>,
    bigrams: HashSet<String>,
    negated: bool,
}

fn word_bigrams(s: &str) -> HashSet<String> {
    let w = words(s);
    w.windows(2).map(|p| format!("{} {}", p[0], p[1])).collect()
}

/// Consecutive content stems joined by a space (the order view).
fn content_bigrams(s: &str) -> Vec<String> {
    let c = content_terms(s);
    c.windows(2).map(|p| format!("{} {}", p[0], p[1])).collect()
}

/// Sentences a document is cut into, at most. A document with more is
/// refused by [`DocView::new`] (about 400 KB of prose).
pub const MAX_UNITS: usize = 5_000;

/// A document prepared for feature extraction: its sentences as lexical
/// units, its word, stem, bigram and number sets, and the embeddings of its
/// sentences and windows (unit vectors from the configured sentence embedder).
pub struct DocView {
    units: Vec<Unit>,
    stems: HashSet<String>,
    words: HashSet<String>,
    content_bigrams: HashSet<String>,
    numbers: HashSet<String>,
    sentence_vecs: Vec<Vec<f32>>,
    window_vecs: Vec<Vec<f32>>,
}

/// Texts per call to the sentence embedder.
const EMBED_BATCH: usize = 32;

/// Embed texts in batches of 32. Errors: the embedder failed or returned
/// the wrong number of vectors.
pub fn embed_all(
    emb: &mut dyn backforth_inference::encoder::SentenceEmbedder,
    texts: &[&str],
) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(EMBED_BATCH) {
        let v = emb.embed_texts(chunk)?;
        anyhow::ensure!(
            v.len() == chunk.len(),
            "the embedder returned {} vectors for {} texts",
            v.len(),
            chunk.len()
        );
        out.extend(v);
    }
    Ok(out)
}

fn cos(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>() as f64
}

fn best_cos(q: &[f32], vs: &[Vec<f32>]) -> f64 {
    vs.iter().map(|v| cos(q, v)).fold(-1.0, f64::max)
}

impl DocView {
    /// Index `text` and embed its sentences and windows
    /// ([`crate::text::windows`]). Errors: more than [`MAX_UNITS`]
    /// sentences; the embedder failed.
    pub fn new(
        text: &str,
        emb: &mut dyn backforth_inference::encoder::SentenceEmbedder,
    ) -> anyhow::Result<DocView> {
        let sents = sentences(text);
        anyhow::ensure!(
            sents.len() <= MAX_UNITS,
            "the document has {} sentences, more than the grounding checker reads ({MAX_UNITS}); split it first (segment.mode = \"headings\")",
            sents.len()
        );
        let units = sents
            .iter()
            .map(|s| Unit {
                stems: content_terms(s).into_iter().collect(),
                bigrams: word_bigrams(s),
                negated: negated(s),
            })
            .collect();
        let all_words = words(text);
        let windows = crate::text::windows(text);
        let win_refs: Vec<&str> = windows.iter().map(String::as_str).collect();
        Ok(DocView {
            units,
            stems: all_words.iter().map(|w| gstem(w)).collect(),
            words: all_words.into_iter().collect(),
            content_bigrams: sents
                .iter()
                .flat_map(|s| content_bigrams(s))
                .collect(),
            numbers: number_set(text),
            sentence_vecs: embed_all(emb, &sents)?,
            window_vecs: embed_all(emb, &win_refs)?,
        })
    }

    /// Sentences of the document.
    pub fn sentences(&self) -> usize {
        self.units.len()
    }
}

/// Lexical coverage of `terms` by the best unit (a sentence or two adjacent
/// sentences): (plain share, IDF-weighted share, index of the best unit's
/// first sentence, whether the best unit is a pair).
fn best_unit(terms: &[String], doc: &DocView, idf: &Idf) -> (f64, f64, usize, bool) {
    if terms.is_empty() || doc.units.is_empty() {
        return (0.0, 0.0, 0, false);
    }
    let w: Vec<f64> = terms.iter().map(|t| idf.idf(t)).collect();
    let total: f64 = w.iter().sum();
    let (mut best, mut best_idf, mut at, mut pair) = (0.0, 0.0, 0, false);
    for i in 0..doc.units.len() {
        for two in [false, true] {
            if two && i + 1 >= doc.units.len() {
                continue;
            }
            let inside = |t: &String| {
                doc.units[i].stems.contains(t) || (two && doc.units[i + 1].stems.contains(t))
            };
            let (mut hits, mut hw) = (0usize, 0.0);
            for (t, wt) in terms.iter().zip(&w) {
                if inside(t) {
                    hits += 1;
                    hw += wt;
                }
            }
            let share = hits as f64 / terms.len() as f64;
            let ws = hw / total;
            // the IDF-weighted share decides; a pair must do strictly better than its first sentence
            if ws > best_idf + 1e-12 {
                (best, best_idf, at, pair) = (share, ws, i, two);
            } else if (ws - best_idf).abs() <= 1e-12 && share > best {
                best = share;
            }
        }
    }
    (best, best_idf, at, pair)
}

/// Features of one claim (a response sentence) against `doc`, in
/// [`CLAIM_FEATURES`] order. `claim_vec` is the claim's embedding.
pub fn claim_features(claim: &str, claim_vec: &[f32], doc: &DocView, idf: &Idf) -> Vec<f32> {
    let mut seen = HashSet::new();
    let terms: Vec<String> = content_terms(claim)
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect();
    let n = terms.len().max(1) as f64;
    let total_idf: f64 = terms.iter().map(|t| idf.idf(t)).sum::<f64>().max(1e-9);
    let cov_doc = terms.iter().filter(|t| doc.stems.contains(*t)).count() as f64 / n;
    let idfcov_doc = terms
        .iter()
        .filter(|t| doc.stems.contains(*t))
        .map(|t| idf.idf(t))
        .sum::<f64>()
        / total_idf;
    let max_missing = terms
        .iter()
        .filter(|t| !doc.stems.contains(*t))
        .map(|t| idf.idf(t))
        .fold(0.0, f64::max)
        / idf.max_idf();
    let (cov_best, idfcov_best, at, pair) = best_unit(&terms, doc, idf);
    let cb = content_bigrams(claim);
    let bigram_cov = if cb.is_empty() {
        1.0
    } else {
        cb.iter().filter(|b| doc.content_bigrams.contains(*b)).count() as f64 / cb.len() as f64
    };
    let exact: Vec<String> = words(claim)
        .into_iter()
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(w.as_str()))
        .collect();
    let exact_missing = missing_share(&exact, &doc.words);
    let nums = number_set(claim)
        .into_iter()
        .filter(|x| !doc.numbers.contains(x) && !doc.numbers.contains(x.trim_end_matches(".0")))
        .count();
    let nm = missing_names(claim, doc);
    let (neg_best, wb_best) = if doc.units.is_empty() {
        (false, HashSet::new())
    } else {
        let mut b = doc.units[at].bigrams.clone();
        let mut ng = doc.units[at].negated;
        if pair {
            b.extend(doc.units[at + 1].bigrams.iter().cloned());
            ng |= doc.units[at + 1].negated;
        }
        (ng, b)
    };
    let wb = word_bigrams(claim);
    let wb_cov = if wb.is_empty() {
        0.0
    } else {
        wb.iter().filter(|b| wb_best.contains(*b)).count() as f64 / wb.len() as f64
    };
    vec![
        cov_doc as f32,
        cov_best as f32,
        idfcov_doc as f32,
        idfcov_best as f32,
        max_missing as f32,
        bigram_cov as f32,
        exact_missing as f32,
        (nums.min(3) as f32) / 3.0,
        (nm.min(3) as f32) / 3.0,
        (negated(claim) != neg_best) as u8 as f32,
        best_cos(claim_vec, &doc.sentence_vecs) as f32,
        best_cos(claim_vec, &doc.window_vecs) as f32,
        wb_cov as f32,
        ((1.0 + terms.len() as f64).ln() / 50f64.ln()) as f32,
    ]
}

/// Topic stems of an instruction: content words that are neither function
/// nor generic task words ("explain", "article"), de-duplicated in order.
pub fn topic_stems(instruction: &str) -> Vec<String> {
    let mut seen = HashSet::new();
    topic_words(instruction)
        .iter()
        .map(|w| gstem(w))
        .filter(|s| seen.insert(s.clone()))
        .collect()
}

/// Features of an instruction against `doc`, in [`INSTRUCTION_FEATURES`]
/// order. `vec` is the instruction's embedding.
pub fn instruction_features(instruction: &str, vec: &[f32], doc: &DocView, idf: &Idf) -> Vec<f32> {
    let topic = topic_stems(instruction);
    let n = topic.len();
    let (cov, idfcov, max_missing) = if n == 0 {
        (1.0, 1.0, 0.0)
    } else {
        let total: f64 = topic.iter().map(|t| idf.idf(t)).sum();
        let hit: Vec<&String> = topic.iter().filter(|t| doc.stems.contains(*t)).collect();
        (
            hit.len() as f64 / n as f64,
            hit.iter().map(|t| idf.idf(t)).sum::<f64>() / total,
            topic
                .iter()
                .filter(|t| !doc.stems.contains(*t))
                .map(|t| idf.idf(t))
                .fold(0.0, f64::max)
                / idf.max_idf(),
        )
    };
    let tb: Vec<String> = topic.windows(2).map(|p| format!("{} {}", p[0], p[1])).collect();
    let bigram_cov = if tb.is_empty() {
        1.0
    } else {
        tb.iter().filter(|b| doc.content_bigrams.contains(*b)).count() as f64 / tb.len() as f64
    };
    let exact: Vec<String> = words(instruction)
        .into_iter()
        .filter(|w| {
            w.chars().count() >= 3 && !STOP.contains(w.as_str()) && !TASK.contains(w.as_str())
        })
        .collect();
    let exact_missing = missing_share(&exact, &doc.words);
    let nums = number_set(instruction)
        .into_iter()
        .filter(|x| !doc.numbers.contains(x))
        .count();
    let nm = missing_names(instruction, doc);
    vec![
        cov as f32,
        idfcov as f32,
        max_missing as f32,
        bigram_cov as f32,
        exact_missing as f32,
        (nums.min(2) as f32) / 2.0,
        (nm.min(2) as f32) / 2.0,
        best_cos(vec, &doc.window_vecs) as f32,
        best_cos(vec, &doc.sentence_vecs) as f32,
        ((1.0 + n as f64).ln() / 20f64.ln()) as f32,
        (n == 0) as u8 as f32,
    ]
}

/// The response sentences the checker scores, with their byte ranges in
/// the response: every sentence ([`crate::checks`]' splitter) with at least
/// 3 content words (shorter ones are framing: "Sure." "In short:").
pub fn claims(response: &str) -> Vec<(usize, usize, &str)> {
    let base = response.as_ptr() as usize;
    sentences(response)
        .into_iter()
        .filter(|s| content_terms(s).len() >= 3)
        .map(|s| {
            let start = s.as_ptr() as usize - base;
            (start, start + s.len(), s)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idf_and_negation() {
        let idf = Idf::from_documents(["the cat sat", "the dog sat", "a bird"]);
        assert_eq!(idf.documents, 3);
        assert!(idf.idf("the") < idf.idf("cat"));
        assert_eq!(idf.idf("cat"), idf.max_idf());
        assert!(negated("It isn't here.") && negated("There is no way") && !negated("Nobody knows"));
    }

    #[test]
    fn claims_carry_their_byte_ranges() {
        let r = "Sure. The harbour bridge opened in 1932 after eight years. Ok!";
        let c = claims(r);
        assert_eq!(c.len(), 1);
        assert_eq!(&r[c[0].0..c[0].1], c[0].2);
        assert!(c[0].2.starts_with("The harbour"));
    }
}
