//! Weak labels from the corpus itself, no human labels (the recipe of FactCC,
//! Kryściński et al. 2020, arXiv:1910.12840: rule-based transformations of
//! real source sentences), with the hard negatives taken from each
//! document's *nearest* documents so the vocabulary fits.
//!
//! For each document, **claims** (to be judged against that document):
//! - good: one of its own sentences, as is, with a clause dropped, framed
//!   ("In short, …"), with a few function words dropped, or fused with the
//!   next sentence;
//! - `inserted`: a sentence of a near document that this one does not cover;
//! - `number_swap`: an own sentence with one number replaced (by a number of
//!   a near document, or shifted);
//! - `name_swap`: an own sentence with a name or identifier replaced by one
//!   of a near document that this document lacks;
//! - `term_swap`: an own sentence with its rarest content word replaced by a
//!   near document's rare word (the swapped keyword of a sibling page);
//! - `negation`: an own sentence negated, or its negation removed.
//!
//! **Instructions** (relevance): good ones name salient words of the
//! document in one of several phrasings; bad ones are a near document's
//! instruction (`near_instruction`, kept only when it names a word this
//! document lacks) and an own instruction with its rarest term swapped for
//! a near document's (`instruction_term_swap`).
//!
//! Near documents come from TF-IDF cosine over word stems (an inverted
//! index over each document's top terms), so a corpus of any size and
//! language of prose gives same-topic neighbours without a model.

use super::features::{content_terms, gstem, stem_set, topic_stems, Idf};
use crate::text::{names, numbers, sentences, STOP, TASK};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// What a weak example is judged as.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A response sentence against the document.
    Claim,
    /// An instruction against the document.
    Instruction,
}

/// One weakly labelled example.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeakItem {
    /// Index of the document it is judged against.
    pub doc: usize,
    pub kind: Kind,
    /// `good` or the transformation that made it bad (see the module docs).
    pub class: String,
    pub text: String,
}

impl WeakItem {
    /// True for the good classes.
    pub fn good(&self) -> bool {
        self.class == "good"
    }
}

/// Terms each document contributes to the neighbour search.
const TOP_TERMS: usize = 40;

/// The `k` nearest documents of each document by TF-IDF cosine over word
/// stems (not itself, not near-identical copies with cosine ≥ 0.95).
pub fn neighbours(docs: &[String], idf: &Idf, k: usize) -> Vec<Vec<usize>> {
    // sparse unit vectors
    let vecs: Vec<Vec<(String, f64)>> = docs
        .iter()
        .map(|d| {
            let mut tf: HashMap<String, f64> = HashMap::new();
            for w in content_terms(d) {
                *tf.entry(w).or_default() += 1.0;
            }
            let mut v: Vec<(String, f64)> = tf
                .into_iter()
                .map(|(t, c)| {
                    let w = (1.0 + c.ln()) * idf.idf(&t);
                    (t, w)
                })
                .collect();
            let n = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt().max(1e-12);
            v.iter_mut().for_each(|(_, w)| *w /= n);
            v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v
        })
        .collect();
    let mut postings: HashMap<&str, Vec<(usize, f64)>> = HashMap::new();
    for (i, v) in vecs.iter().enumerate() {
        for (t, w) in v {
            postings.entry(t.as_str()).or_default().push((i, *w));
        }
    }
    vecs.iter()
        .enumerate()
        .map(|(i, v)| {
            let mut score: HashMap<usize, f64> = HashMap::new();
            for (t, w) in v.iter().take(TOP_TERMS) {
                for &(j, wj) in &postings[t.as_str()] {
                    if j != i {
                        *score.entry(j).or_default() += w * wj;
                    }
                }
            }
            let mut s: Vec<(usize, f64)> = score.into_iter().filter(|(_, c)| *c < 0.95).collect();
            s.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            s.into_iter().take(k).map(|(j, _)| j).collect()
        })
        .collect()
}

/// Salient surface words of a document: content words of ≥ 4 letters that
/// are not task words, ranked by term frequency × IDF (first spelling kept).
fn salient(doc: &str, idf: &Idf) -> Vec<String> {
    let mut tf: HashMap<String, (f64, String, usize)> = HashMap::new();
    for (pos, tok) in doc
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
        .filter(|t| !t.is_empty())
        .enumerate()
    {
        let lw = tok.to_lowercase();
        if tok.chars().count() < 4
            || STOP.contains(lw.as_str())
            || TASK.contains(lw.as_str())
            || tok.chars().all(|c| c.is_ascii_digit())
        {
            continue;
        }
        let e = tf.entry(gstem(&lw)).or_insert((0.0, tok.to_string(), pos));
        e.0 += 1.0;
    }
    let mut v: Vec<(f64, String, usize)> = tf
        .into_iter()
        .map(|(s, (c, surf, pos))| ((1.0 + f64::ln(c)) * idf.idf(&s), surf, pos))
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.2.cmp(&b.2)));
    v.into_iter().map(|(_, s, _)| s).collect()
}

/// An instruction naming salient words `a` (and `b`, `c`), phrasing `variant`.
fn phrase(variant: usize, a: &str, b: &str, c: &str) -> String {
    match variant % 10 {
        0 => format!("Explain {a} and {b}."),
        1 => format!("What is {a}, and how does it relate to {b}?"),
        2 => format!("Describe {a}, {b} and {c}."),
        3 => format!("Summarise what is known about {a} and {b}."),
        4 => format!("How does {a} affect {b}?"),
        5 => format!("Give me an overview of {a}."),
        6 => format!("What should I know about {a} when dealing with {b}?"),
        7 => format!("Why does {a} matter for {b}?"),
        8 => format!("Can you tell me about {a} and {c}?"),
        _ => format!("Write a short explanation of {b} in the context of {a}."),
    }
}

/// A good instruction for a document from its salient words (`None` when it
/// has fewer than three).
fn own_instruction(sal: &[String], rng: &mut impl Rng) -> Option<String> {
    if sal.len() < 3 {
        return None;
    }
    let top = &sal[..sal.len().min(8)];
    let mut pick: Vec<&String> = top.choose_multiple(rng, 3).collect();
    pick.sort_by_key(|s| sal.iter().position(|x| x == *s));
    let mut q = phrase(rng.gen_range(0..10), pick[0], pick[1], pick[2]);
    // real instructions carry words of their own that the document need not
    // hold ("for beginners", "in practice"): a good instruction may miss a
    // generic word, a bad one misses a topic word
    if rng.gen_bool(0.4) {
        const EXTRA: [&str; 8] = [
            "for a beginner",
            "in practice",
            "with an example",
            "step by step",
            "in simple terms",
            "for someone new to it",
            "in everyday situations",
            "as a quick reminder",
        ];
        let end = q.pop().unwrap_or('.');
        q = format!("{q} {}{end}", EXTRA[rng.gen_range(0..EXTRA.len())]);
    }
    Some(q)
}

/// Replace the first whole-word occurrence of `from` in `s` by `to`.
fn replace_word(s: &str, from: &str, to: &str) -> Option<String> {
    let mut i = 0;
    while let Some(p) = s[i..].find(from) {
        let a = i + p;
        let b = a + from.len();
        let before = s[..a].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = s[b..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before && after {
            return Some(format!("{}{}{}", &s[..a], to, &s[b..]));
        }
        i = b;
    }
    None
}

/// Negate a sentence (insert "not" after the first auxiliary) or remove its
/// negation; `None` when it has neither.
fn negate(s: &str) -> Option<String> {
    for (from, to) in [
        (" not ", " "),
        (" never ", " "),
        ("n't ", " "),
        (" cannot ", " can "),
    ] {
        if let Some(p) = s.find(from) {
            let mut out = format!("{}{}{}", &s[..p], to, &s[p + from.len()..]);
            if from == "n't " {
                // "doesn't work" → "does work"; "can't" → "ca" is not English, skip it
                if s[..p].ends_with("ca") || s[..p].ends_with("wo") {
                    continue;
                }
                out = format!("{} {}", &s[..p], &s[p + from.len()..]);
            }
            return Some(out);
        }
    }
    for aux in [
        " is ", " are ", " was ", " were ", " can ", " will ", " should ", " must ", " has ",
        " have ", " does ", " do ", " did ", " may ",
    ] {
        if let Some(p) = s.find(aux) {
            let aux_t = aux.trim_end();
            let rest = &s[p + aux.len()..];
            return Some(if aux == " can " {
                format!("{} cannot {rest}", &s[..p])
            } else {
                format!("{}{aux_t} not {rest}", &s[..p])
            });
        }
    }
    None
}

/// Tokens that look like identifiers: `snake_case`, `dotted.names`,
/// `calls()`, `CamelCase`, `ALLCAPS` (≥ 3 characters).
fn identifiers(s: &str) -> Vec<String> {
    s.split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | ':' | '"' | '\'' | '`' | '(' | ')' | '[' | ']'))
        .map(|t| t.trim_end_matches(['.', '!', '?']))
        .filter(|t| {
            t.chars().count() >= 3
                && t.chars().any(|c| c.is_alphabetic())
                && (t.contains('_')
                    || (t.contains('.') && !t.ends_with('.'))
                    || t.chars().skip(1).any(|c| c.is_uppercase())
                        && t.chars().any(|c| c.is_lowercase())
                    || t.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        })
        .map(String::from)
        .collect()
}

/// Words a sentence must have (content words) to make a claim.
const MIN_CLAIM_WORDS: usize = 5;

/// Good variants of a document sentence.
/// Common rewordings an assistant makes when it paraphrases (a small fixed
/// thesaurus: the loose positives must not look like copies).
const REWORD: [(&str, &str); 24] = [
    ("said", "stated"),
    ("says", "notes"),
    ("told", "informed"),
    ("big", "large"),
    ("help", "assist"),
    ("show", "demonstrate"),
    ("shows", "indicates"),
    ("use", "employ"),
    ("start", "beginning"),
    ("started", "began"),
    ("many", "numerous"),
    ("about", "approximately"),
    ("get", "obtain"),
    ("need", "require"),
    ("try", "attempt"),
    ("also", "additionally"),
    ("but", "however"),
    ("because", "since"),
    ("after", "following"),
    ("before", "prior to"),
    ("more than", "over"),
    ("people", "individuals"),
    ("can", "is able to"),
    ("will", "is expected to"),
];

/// Fillers an assistant adds that carry no fact.
const FILLERS: [&str; 10] = [
    "notably",
    "in particular",
    "reportedly",
    "overall",
    "specifically",
    "essentially",
    "as a result",
    "in this case",
    "meanwhile",
    "in short",
];

/// A paraphrase-like good claim: words reworded ([`REWORD`]), some
/// function and modifier words dropped, a filler added; numbers and
/// capitalised words are never dropped, so no fact changes.
fn loose(s: &str, rng: &mut impl Rng) -> String {
    let mut t = format!(" {} ", s.trim_end_matches(['.', '!', '?']));
    for (a, b) in REWORD {
        if rng.gen_bool(0.7) {
            t = t.replace(&format!(" {a} "), &format!(" {b} "));
        }
    }
    let ws: Vec<&str> = t.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    for (k, w) in ws.iter().enumerate() {
        let keep = k == 0
            || w.chars().any(|c| c.is_ascii_digit() || c.is_uppercase())
            || !rng.gen_bool(0.15);
        if keep {
            out.push(w.to_string());
        }
        if k > 0 && k + 1 < ws.len() && rng.gen_bool(0.06) {
            out.push(format!("{},", FILLERS[rng.gen_range(0..FILLERS.len())]));
        }
    }
    format!("{}.", out.join(" "))
}

fn good_variant(sents: &[&str], i: usize, rng: &mut impl Rng) -> String {
    let s = sents[i];
    match rng.gen_range(0..9) {
        0 => s.to_string(),
        6 | 7 => loose(s, rng),
        8 if sents.len() > 2 => {
            // two sentences of the document that need not be adjacent, fused and loosened
            let j = (i + rng.gen_range(2..sents.len().max(3))) % sents.len();
            let a = s.trim_end_matches(['.', '!', '?']);
            let b = sents[j];
            let mut c = b.chars();
            let b = match c.next() {
                Some(f) if !c.clone().next().is_some_and(|n| n.is_uppercase()) => {
                    f.to_lowercase().collect::<String>() + c.as_str()
                }
                _ => b.to_string(),
            };
            loose(&format!("{a}, while {b}"), rng)
        }
        1 => {
            // drop a clause: keep the longer side of a comma
            match s.split_once(", ") {
                Some((a, b)) if a.split_whitespace().count() >= 5 || b.split_whitespace().count() >= 5 => {
                    if a.len() >= b.len() {
                        format!("{a}.")
                    } else {
                        let mut c = b.chars();
                        c.next().map_or(String::new(), |f| f.to_uppercase().collect::<String>() + c.as_str())
                    }
                }
                _ => s.to_string(),
            }
        }
        2 => {
            let frame = ["In short, ", "Put simply, ", "Note that ", "As described, "][rng.gen_range(0..4)];
            let mut c = s.chars();
            match c.next() {
                Some(f) if f.is_uppercase() && !c.clone().next().is_some_and(|n| n.is_uppercase()) => {
                    format!("{frame}{}{}", f.to_lowercase(), c.as_str())
                }
                _ => format!("{frame}{s}"),
            }
        }
        3 => {
            // drop some function words
            let ws: Vec<&str> = s.split_whitespace().collect();
            let kept: Vec<&str> = ws
                .iter()
                .enumerate()
                .filter(|(k, w)| {
                    *k == 0
                        || !matches!(w.to_lowercase().as_str(), "the" | "a" | "an" | "very" | "also" | "just" | "really" | "that")
                        || rng.gen_bool(0.5)
                })
                .map(|(_, w)| *w)
                .collect();
            kept.join(" ")
        }
        4 if i + 1 < sents.len() => {
            let a = s.trim_end_matches(['.', '!', '?']);
            let b = sents[i + 1];
            let mut c = b.chars();
            let b = match c.next() {
                Some(f) if !c.clone().next().is_some_and(|n| n.is_uppercase()) => {
                    f.to_lowercase().collect::<String>() + c.as_str()
                }
                _ => b.to_string(),
            };
            format!("{a}, and {b}")
        }
        _ => {
            // two clauses in the other order
            match s.trim_end_matches('.').split_once(", ") {
                Some((a, b)) if b.split_whitespace().count() >= 3 && a.split_whitespace().count() >= 3 => {
                    let mut c = b.chars();
                    let b = c.next().map_or(String::new(), |f| f.to_uppercase().collect::<String>() + c.as_str());
                    let mut d = a.chars();
                    let a = match d.next() {
                        Some(f) if !d.clone().next().is_some_and(|n| n.is_uppercase()) => f.to_lowercase().collect::<String>() + d.as_str(),
                        _ => a.to_string(),
                    };
                    format!("{b}, {a}.")
                }
                _ => s.to_string(),
            }
        }
    }
}

/// Claims and instructions for each document: up to `per_doc` claims
/// (about a third good) and 4 instructions (half good), from `docs`, their
/// `neighbours` and the corpus `idf`. Deterministic for a given `seed`.
pub fn generate(
    docs: &[String],
    neighbours: &[Vec<usize>],
    idf: &Idf,
    per_doc: usize,
    seed: u64,
) -> Vec<WeakItem> {
    let sents: Vec<Vec<&str>> = docs.iter().map(|d| sentences(d)).collect();
    let stems: Vec<HashSet<String>> = docs.iter().map(|d| stem_set(d)).collect();
    let sal: Vec<Vec<String>> = docs.iter().map(|d| salient(d, idf)).collect();
    let mut out = Vec::new();
    for (d, doc_sents) in sents.iter().enumerate() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let near = &neighbours[d];
        let claimable: Vec<usize> = (0..doc_sents.len())
            .filter(|&i| content_terms(doc_sents[i]).len() >= MIN_CLAIM_WORDS)
            .collect();
        let mut push = |class: &str, kind: Kind, text: String| {
            out.push(WeakItem { doc: d, kind, class: class.to_string(), text });
        };
        if !claimable.is_empty() && !near.is_empty() {
            let n_bad = per_doc - per_doc / 3;
            for _ in 0..per_doc / 3 {
                let i = *claimable.choose(&mut rng).expect("not empty");
                push("good", Kind::Claim, good_variant(doc_sents, i, &mut rng));
            }
            let mut kinds = ["inserted", "number_swap", "name_swap", "term_swap", "negation"];
            kinds.shuffle(&mut rng);
            let mut made = 0;
            'kinds: for round in 0..3 {
                for kind in kinds {
                    if made >= n_bad {
                        break 'kinds;
                    }
                    if round > 0 && kind != "inserted" && kind != "term_swap" {
                        continue;
                    }
                    let nd = near[rng.gen_range(0..near.len())];
                    let claim = match kind {
                        "inserted" => {
                            let cands: Vec<&&str> = sents[nd]
                                .iter()
                                .filter(|s| {
                                    let c = content_terms(s);
                                    c.len() >= MIN_CLAIM_WORDS
                                        && c.iter().filter(|x| stems[d].contains(*x)).count() * 10 < c.len() * 7
                                })
                                .collect();
                            cands.choose(&mut rng).map(|s| s.to_string())
                        }
                        "number_swap" => {
                            let with_num: Vec<usize> = claimable.iter().copied().filter(|&i| !numbers(doc_sents[i]).is_empty()).collect();
                            with_num.choose(&mut rng).and_then(|&i| {
                                let s = doc_sents[i];
                                let ns = numbers(s);
                                let from = ns.choose(&mut rng)?;
                                let theirs: Vec<String> = numbers(&docs[nd]).into_iter().filter(|n| !docs[d].contains(n.as_str()) && n != from).collect();
                                let to = match theirs.choose(&mut rng) {
                                    Some(t) => t.clone(),
                                    None => match from.parse::<u64>() {
                                        Ok(v) => (v + rng.gen_range(2..9) * (1 + v / 10)).to_string(),
                                        Err(_) => return None,
                                    },
                                };
                                if docs[d].contains(to.as_str()) {
                                    return None;
                                }
                                // numbers() drops thousands separators: replace the digits as written
                                replace_word(s, from, &to)
                            })
                        }
                        "name_swap" => {
                            let mine: Vec<(usize, String)> = claimable.iter().flat_map(|&i| {
                                let mut v: Vec<String> = names(doc_sents[i], &STOP, &TASK);
                                v.extend(identifiers(doc_sents[i]));
                                v.into_iter().map(move |n| (i, n))
                            }).collect();
                            let mut theirs: Vec<String> = names(&docs[nd], &STOP, &TASK);
                            theirs.extend(identifiers(&docs[nd]));
                            theirs.retain(|n| !stems[d].contains(&gstem(n)) && !docs[d].contains(n.as_str()));
                            theirs.sort();
                            theirs.dedup();
                            match (mine.choose(&mut rng), theirs.choose(&mut rng)) {
                                (Some((i, from)), Some(to)) => replace_word(doc_sents[*i], from, to),
                                _ => None,
                            }
                        }
                        "term_swap" => {
                            let i = *claimable.choose(&mut rng).expect("not empty");
                            let s = doc_sents[i];
                            // the sentence's rarest content word, as written
                            let from = s
                                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                                .filter(|w| w.chars().count() >= 4 && !STOP.contains(w.to_lowercase().as_str()) && !w.chars().all(|c| c.is_ascii_digit()))
                                .max_by(|a, b| idf.idf(&gstem(a)).total_cmp(&idf.idf(&gstem(b))).then(b.cmp(a)))
                                .map(String::from);
                            let to = sal[nd].iter().take(15).filter(|w| !stems[d].contains(&gstem(w))).collect::<Vec<_>>().choose(&mut rng).map(|s| s.to_string());
                            match (from, to) {
                                (Some(f), Some(t)) => replace_word(s, &f, &t),
                                _ => None,
                            }
                        }
                        _ => claimable.choose(&mut rng).and_then(|&i| negate(doc_sents[i])),
                    };
                    if let Some(c) = claim {
                        push(kind, Kind::Claim, c);
                        made += 1;
                    }
                }
            }
        }
        // instructions
        if let Some(own) = own_instruction(&sal[d], &mut rng) {
            push("good", Kind::Instruction, own);
            if let Some(own2) = own_instruction(&sal[d], &mut rng) {
                push("good", Kind::Instruction, own2);
            }
            for &nd in near.iter().take(2) {
                let Some(theirs) = own_instruction(&sal[nd], &mut rng) else { continue };
                if topic_stems(&theirs).iter().any(|t| !stems[d].contains(t)) {
                    push("near_instruction", Kind::Instruction, theirs);
                    break;
                }
            }
            if let Some(&nd) = near.first() {
                let mine = own_instruction(&sal[d], &mut rng).unwrap_or_default();
                let from = sal[d].iter().take(8).filter(|w| mine.contains(w.as_str())).max_by(|a, b| idf.idf(&gstem(&a.to_lowercase())).total_cmp(&idf.idf(&gstem(&b.to_lowercase()))));
                let to = sal[nd].iter().take(10).find(|w| !stems[d].contains(&gstem(&w.to_lowercase())));
                if let (Some(f), Some(t)) = (from, to) {
                    if let Some(x) = replace_word(&mine, f, t) {
                        push("instruction_term_swap", Kind::Instruction, x);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transformations() {
        assert_eq!(negate("The server is running now.").unwrap(), "The server is not running now.");
        assert_eq!(negate("It does not block.").unwrap(), "It does block.");
        assert_eq!(negate("You can pass a list.").unwrap(), "You cannot pass a list.");
        assert_eq!(replace_word("os.path joins paths; path is", "path", "dir").unwrap(), "os.dir joins paths; path is");
        assert_eq!(identifiers("Call os.getcwd() or use SELECT with max_len in PyObject."), vec!["os.getcwd", "SELECT", "max_len", "PyObject"]);
    }

    fn corpus() -> Vec<String> {
        let topics = [
            ("harbour", "ferry", "Wellington"),
            ("election", "ballot", "Canberra"),
            ("cricket", "wicket", "Adelaide"),
        ];
        let mut docs = Vec::new();
        for k in 0..12 {
            let (a, b, c) = topics[k % 3];
            docs.push(format!(
                "The {a} of {c} reopened in {} after repairs costing 40 million dollars. Officials said the {b} service was not affected by the K{k}storm. \
                 Residents of {c} welcomed the news about the {a} and its {b} timetable. The council will review the {b} contract in March, said Mayor K{k}smith. \
                 Engineers from K{k}firm inspected the {a} walls and found K{k}cracks near the northern {b} terminal.", 1990 + k
            ));
        }
        docs
    }

    #[test]
    fn neighbours_share_the_topic_and_items_are_deterministic() {
        let docs = corpus();
        let idf = Idf::from_documents(docs.iter().map(String::as_str));
        let nb = neighbours(&docs, &idf, 3);
        for (i, n) in nb.iter().enumerate() {
            assert!(!n.contains(&i));
            assert!(n.iter().all(|j| j % 3 == i % 3), "doc {i}: {n:?}");
        }
        let a = generate(&docs, &nb, &idf, 6, 7);
        assert_eq!(a, generate(&docs, &nb, &idf, 6, 7));
        assert_ne!(a, generate(&docs, &nb, &idf, 6, 8));
        let classes: HashSet<&str> = a.iter().map(|x| x.class.as_str()).collect();
        for c in ["good", "number_swap", "name_swap", "negation", "term_swap"] {
            assert!(classes.contains(c), "{c} missing: {classes:?}");
        }
        // every swapped number is absent from its document
        for it in a.iter().filter(|x| x.class == "number_swap") {
            assert!(numbers(&it.text).iter().any(|n| !docs[it.doc].contains(n.as_str())), "{it:?}");
        }
        assert!(a.iter().any(|x| x.kind == Kind::Instruction && x.good()));
    }
}
