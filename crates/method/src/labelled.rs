//! A labelled set for measuring the relevance and grounding checks, built
//! from real documents (and, for one class, real seed questions): every
//! document gives one item, its class chosen round-robin so half the set is
//! good and half bad.
//!
//! - **faithful** (good): an instruction naming two long words of the
//!   document's first sentence, answered by an extract of the document (its
//!   first six sentences with every third dropped, one framing sentence in
//!   front);
//! - **injected** (bad): the faithful answer with a sentence of another
//!   document inserted in the middle;
//! - **swapped** (bad): the faithful answer of another document;
//! - **other_instruction** (bad): another document's instruction over this answer;
//! - **seed_topic** (bad): a seed question over this answer (what a small
//!   backward model does when it copies the topic of its few-shot examples);
//! - **non_instruction** (bad): a question to the reader or meta text, three
//!   of eight phrasings unlike the detector's own list.
//!
//! Extractive answers share the document's words more than an LLM's
//! paraphrase does, so the false-alarm rate measured here is a lower bound.
//! Used by `tests/checks.rs` (lexical checks) and `backforth bench-checks`
//! (lexical checks + the verify stage with a real model). Written here
//! because the failure classes are the method's own.

/// One labelled (instruction, response, source) triple.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledItem {
    /// One of [`CLASSES`] for the built set; for a hand-labelled file, its
    /// own class names ("faithful" is the only good one).
    pub class: String,
    pub instruction: String,
    /// The response to check; empty = the instruction alone is labelled
    /// (the pair was not kept, so it has no rewrite).
    pub response: String,
    /// The document the response should be grounded in.
    pub source: String,
}

impl LabelledItem {
    /// True for the bad classes (the checks should flag them).
    pub fn bad(&self) -> bool {
        self.class != "faithful"
    }
}

/// The classes, in the order reports list them.
pub const CLASSES: [&str; 6] = [
    "faithful",
    "injected",
    "swapped",
    "other_instruction",
    "seed_topic",
    "non_instruction",
];

const ROUND: [&str; 10] = [
    "faithful",
    "injected",
    "faithful",
    "swapped",
    "faithful",
    "other_instruction",
    "faithful",
    "seed_topic",
    "faithful",
    "non_instruction",
];

const NON_INSTRUCTIONS: [&str; 8] = [
    "What type of assessment are you referring to?",
    "Which specific incident do you have in mind?",
    "Could you clarify what you want to know?",
    "Here is an instruction that this text answers:",
    "Can you be more specific about the time period?",
    "What exactly did you mean by that?",
    "Sure, I can help with that.",
    "The text describes an event.",
];

/// Sentences: split after `.`, `!` or `?` followed by white space.
pub fn sentences(t: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let cs: Vec<char> = t.chars().collect();
    for (i, c) in cs.iter().enumerate() {
        cur.push(*c);
        if matches!(c, '.' | '!' | '?') && cs.get(i + 1).is_some_and(|n| n.is_whitespace()) {
            out.push(cur.trim().to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// An instruction naming the two longest words (≥ 5 letters) of the first
/// sentence, in one of four phrasings.
fn instruction_for(doc: &str, variant: usize) -> String {
    let first = sentences(doc).into_iter().next().unwrap_or_default();
    let mut ws: Vec<String> = first
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| w.chars().count() >= 5)
        .map(String::from)
        .collect();
    ws.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    ws.dedup();
    let (a, b) = (
        ws.first().cloned().unwrap_or_default(),
        ws.get(1).cloned().unwrap_or_default(),
    );
    match variant % 4 {
        0 => format!("Summarise the latest news about {a} and {b}."),
        1 => format!("What happened regarding {a} and {b}?"),
        2 => format!("Write a short news report on {a}, mentioning {b}."),
        _ => format!("Explain the situation involving {b} and {a}."),
    }
}

fn faithful_answer(doc: &str) -> String {
    let s = sentences(doc);
    let kept: Vec<&str> = s
        .iter()
        .take(6)
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(_, x)| x.as_str())
        .collect();
    format!("Here is what the story says. {}", kept.join(" "))
}

/// The labelled set from `docs` (documents with fewer than 4 sentences are
/// skipped) and `seed_questions` (used by the seed_topic class; empty → that
/// class uses another document's instruction instead). Deterministic: the
/// same inputs give the same items in the same order.
pub fn build(docs: &[String], seed_questions: &[String]) -> Vec<LabelledItem> {
    let docs: Vec<&String> = docs.iter().filter(|d| sentences(d).len() >= 4).collect();
    let n = docs.len();
    let mut out = Vec::with_capacity(n);
    for (i, doc) in docs.iter().enumerate() {
        let other = docs[(i + n / 2) % n];
        let class = ROUND[i % ROUND.len()];
        let own = instruction_for(doc, i);
        let (instruction, response) = match class {
            "faithful" => (own, faithful_answer(doc)),
            "injected" => {
                let mut s = sentences(&faithful_answer(doc));
                let os = sentences(other);
                let mid = s.len() / 2;
                s.insert(mid, os[os.len() / 2].clone());
                (own, s.join(" "))
            }
            "swapped" => (own, faithful_answer(other)),
            "other_instruction" => (instruction_for(other, i), faithful_answer(doc)),
            "seed_topic" if !seed_questions.is_empty() => (
                seed_questions[i % seed_questions.len()].clone(),
                faithful_answer(doc),
            ),
            "seed_topic" => (instruction_for(other, i + 1), faithful_answer(doc)),
            _ => (
                NON_INSTRUCTIONS[(i / ROUND.len()) % NON_INSTRUCTIONS.len()].to_string(),
                faithful_answer(doc),
            ),
        };
        out.push(LabelledItem {
            class: class.to_string(),
            instruction,
            response,
            source: doc.to_string(),
        });
    }
    out
}

/// The classes of the near-document set ([`build_near`]), in report order.
pub const NEAR_CLASSES: [&str; 4] = ["faithful", "near_injected", "near_instruction", "name_swapped"];

/// A labelled set of the *hard* failures, from `docs` and each document's
/// nearest document (TF-IDF cosine over word stems, as the grounding
/// checker's weak labels use): one item per document with 4 sentences or
/// more, classes round-robin, half good —
/// - **faithful**: as in [`build`];
/// - **near_injected**: the faithful answer with a sentence of the *nearest*
///   document inserted in the middle (same topic, not backed: one whose
///   content words this document holds less than 70% of);
/// - **near_instruction**: the nearest document's instruction (one naming a
///   word this document lacks) over this document's faithful answer;
/// - **name_swapped**: the faithful answer with one name, identifier or
///   number replaced by one of the nearest document's that this document
///   lacks.
///
/// Items that cannot be made (no such sentence or name) fall back to the next
/// neighbour, then are left out. Deterministic.
pub fn build_near(docs: &[String]) -> Vec<LabelledItem> {
    use crate::text::{names, numbers, STOP, TASK};
    use crate::grounding::features::{content_terms, gstem as stem, stem_set};
    use std::collections::HashSet;
    let docs: Vec<&String> = docs.iter().filter(|d| sentences(d).len() >= 4).collect();
    let owned: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    let idf = crate::grounding::features::Idf::from_documents(owned.iter().map(String::as_str));
    let nb = crate::grounding::weak::neighbours(&owned, &idf, 3);
    let stems: Vec<HashSet<String>> = owned.iter().map(|d| stem_set(d)).collect();
    let mut out = Vec::new();
    for (i, doc) in owned.iter().enumerate() {
        let class = NEAR_CLASSES[[0, 1, 0, 2, 0, 3][i % 6]];
        let own = instruction_for(doc, i);
        let answer = faithful_answer(doc);
        let made: Option<(String, String)> = match class {
            "faithful" => Some((own.clone(), answer.clone())),
            "near_injected" => nb[i].iter().find_map(|&j| {
                let ss = sentences(&owned[j]);
                let pick = ss.iter().skip(1).find(|x| {
                    let c = content_terms(x);
                    c.len() >= 5
                        && c.iter().filter(|w| stems[i].contains(*w)).count() * 10 < c.len() * 7
                })?;
                let mut a = sentences(&answer);
                let mid = a.len() / 2;
                a.insert(mid, pick.clone());
                Some((own.clone(), a.join(" ")))
            }),
            "near_instruction" => nb[i].iter().find_map(|&j| {
                let theirs = instruction_for(&owned[j], i);
                crate::grounding::features::topic_stems(&theirs)
                    .iter()
                    .any(|t| !stems[i].contains(t))
                    .then(|| (theirs, answer.clone()))
            }),
            _ => nb[i].iter().find_map(|&j| {
                let mine: Vec<String> = names(&answer, &STOP, &TASK)
                    .into_iter()
                    .chain(numbers(&answer))
                    .collect();
                let theirs: Vec<String> = names(&owned[j], &STOP, &TASK)
                    .into_iter()
                    .chain(numbers(&owned[j]))
                    .filter(|n| !stems[i].contains(&stem(n)) && !doc.contains(n.as_str()))
                    .collect();
                // a name for a name, a number for a number
                let is_num = |s: &str| s.chars().all(|c| c.is_ascii_digit() || c == '.');
                mine.iter().find_map(|m| {
                    let t = theirs.iter().find(|t| is_num(t) == is_num(m))?;
                    let swapped = answer.replacen(m.as_str(), t, 1);
                    (swapped != answer).then(|| (own.clone(), swapped))
                })
            }),
        };
        if let Some((instruction, response)) = made {
            out.push(LabelledItem {
                class: class.to_string(),
                instruction,
                response,
                source: doc.to_string(),
            });
        }
    }
    out
}

/// Precision and recall of a detector on labelled items (bad = positive),
/// and the share flagged per class.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Scores {
    pub items: usize,
    pub precision: f64,
    pub recall: f64,
    /// (class, items, share flagged): "faithful" first, then the other
    /// classes in the order they first occur (= [`CLASSES`] order for the
    /// built set).
    pub per_class: Vec<(String, usize, f64)>,
}

/// [`Scores`] from items and whether each was flagged (same order).
pub fn score(items: &[LabelledItem], flagged: &[bool]) -> Scores {
    let pairs: Vec<(&LabelledItem, bool)> = items.iter().zip(flagged.iter().copied()).collect();
    let tp = pairs.iter().filter(|(i, f)| i.bad() && *f).count() as f64;
    let fp = pairs.iter().filter(|(i, f)| !i.bad() && *f).count() as f64;
    let fnn = pairs.iter().filter(|(i, f)| i.bad() && !*f).count() as f64;
    let mut classes: Vec<&str> = vec!["faithful"];
    for i in items {
        if !classes.contains(&i.class.as_str()) {
            classes.push(&i.class);
        }
    }
    let per_class = classes
        .iter()
        .map(|c| {
            let it: Vec<_> = pairs.iter().filter(|(i, _)| i.class == *c).collect();
            let share = it.iter().filter(|(_, f)| *f).count() as f64 / it.len().max(1) as f64;
            (c.to_string(), it.len(), share)
        })
        .collect();
    Scores {
        items: pairs.len(),
        precision: tp / (tp + fp).max(1.0),
        recall: tp / (tp + fnn).max(1.0),
        per_class,
    }
}

/// A text in a hand-labelled file: literal, or parts that are literal text
/// or `[start, end)` character ranges of the document (so model outputs
/// that copy the document are stored without copying it).
#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum LabelText {
    Plain(String),
    Parts(Vec<LabelPart>),
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum LabelPart {
    Text(String),
    Span([usize; 2]),
}

impl LabelText {
    /// The text, with spans filled in from `doc`; `None` for a span outside it.
    fn resolve(&self, doc: &[char]) -> Option<String> {
        match self {
            LabelText::Plain(s) => Some(s.clone()),
            LabelText::Parts(ps) => {
                let mut out = String::new();
                for p in ps {
                    match p {
                        LabelPart::Text(t) => out.push_str(t),
                        LabelPart::Span([a, b]) => out.extend(doc.get(*a..*b)?),
                    }
                }
                Some(out)
            }
        }
    }
}

/// One line of a hand-labelled file (see [`read_labels`]).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct LabelLine {
    /// 1-based line of the document in the corpus file.
    line: usize,
    instruction: LabelText,
    #[serde(default)]
    response: Option<LabelText>,
    class: String,
    #[serde(default)]
    #[allow(dead_code)]
    note: String,
    /// Characters of the (trimmed) document when labelled, when given: a
    /// corpus that changed since labelling is refused, not misread.
    #[serde(default)]
    doc_chars: Option<usize>,
}

/// Read a hand-labelled file of real pipeline outputs: JSONL lines
/// `{"line": N, "instruction": T, "response": T | null, "class": …, "note": …}`
/// where `line` is the document's 1-based line in `corpus` (one document per
/// line, like gensim's `lee_background.cor`; the document is the trimmed
/// line; with a `.jsonl`/`.ndjson` corpus, line N is a JSON record whose
/// `text` is the document, e.g. `candidates.jsonl` of `backforth prepare`), `class` is `faithful` for a good pair and a failure name
/// otherwise, and a missing `response` labels the instruction alone. A text
/// `T` is a string or a list of strings and `[start, end)` character ranges
/// of the document. Errors: unreadable files, a bad line or a range outside
/// the document (with the line number), a document line out of range, a
/// file that is not UTF-8 (with the byte offset and line).
pub fn read_labels(
    labels: &std::path::Path,
    corpus: &std::path::Path,
) -> anyhow::Result<Vec<LabelledItem>> {
    use anyhow::Context;
    let raw = std::fs::read(corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let raw = String::from_utf8(raw).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 (invalid byte at offset {})",
            corpus.display(),
            e.utf8_error().valid_up_to()
        )
    })?;
    let jsonl = corpus
        .extension()
        .is_some_and(|e| e == "jsonl" || e == "ndjson");
    let docs: Vec<String> = raw
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if !jsonl {
                return Ok(l.to_string());
            }
            let v: serde_json::Value = serde_json::from_str(l)
                .with_context(|| format!("{}:{}: not a JSON record", corpus.display(), i + 1))?;
            v.get("text")
                .and_then(|t| t.as_str())
                .map(str::to_string)
                .with_context(|| format!("{}:{}: no string field \"text\"", corpus.display(), i + 1))
        })
        .collect::<anyhow::Result<_>>()?;
    let bytes =
        std::fs::read(labels).with_context(|| format!("reading {}", labels.display()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 (invalid byte at offset {}, line {})",
            labels.display(),
            e.utf8_error().valid_up_to(),
            e.as_bytes()[..e.utf8_error().valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        )
    })?;
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: LabelLine = serde_json::from_str(l)
            .with_context(|| format!("{}:{}: not a label line", labels.display(), n + 1))?;
        let source = docs
            .get(v.line.wrapping_sub(1))
            .filter(|d| !d.trim().is_empty())
            .with_context(|| {
                format!(
                    "{}:{}: document line {} is not in {} ({} lines)",
                    labels.display(),
                    n + 1,
                    v.line,
                    corpus.display(),
                    docs.len()
                )
            })?;
        let source = source.trim().to_string();
        let chars: Vec<char> = source.chars().collect();
        if let Some(n_chars) = v.doc_chars {
            anyhow::ensure!(
                n_chars == chars.len(),
                "{}:{}: document line {} of {} has {} characters, the labelled one had {n_chars}: the corpus changed since labelling",
                labels.display(),
                n + 1,
                v.line,
                corpus.display(),
                chars.len()
            );
        }
        let bad_span = || {
            anyhow::anyhow!(
                "{}:{}: a character range outside document line {} ({} characters)",
                labels.display(),
                n + 1,
                v.line,
                chars.len()
            )
        };
        let instruction = v.instruction.resolve(&chars).ok_or_else(bad_span)?;
        let response = match &v.response {
            Some(t) => t.resolve(&chars).ok_or_else(bad_span)?,
            None => String::new(),
        };
        out.push(LabelledItem {
            class: v.class,
            instruction,
            response,
            source,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_round_robin_and_scores_count_bad_as_positive() {
        let docs: Vec<String> = (0..20).map(|i| format!("Story {i} begins here with Wellington harbour. It goes on. It goes further. It ends {i}.")).collect();
        let items = build(&docs, &["How do I sort a list?".into()]);
        assert_eq!(items.len(), 20);
        assert_eq!(items.iter().filter(|i| !i.bad()).count(), 10);
        assert_eq!(items[7].instruction, "How do I sort a list?");
        assert!(
            items[1].response.len() > faithful_answer(&docs[1]).len(),
            "a sentence was injected"
        );
        let flagged: Vec<bool> = items
            .iter()
            .map(|i| i.bad() && i.class != "injected")
            .collect();
        let s = score(&items, &flagged);
        assert_eq!(s.precision, 1.0);
        assert!((s.recall - 0.8).abs() < 1e-12, "{s:?}");
        assert_eq!(s.per_class[1], ("injected".to_string(), 2, 0.0));
        let names: Vec<&str> = s.per_class.iter().map(|c| c.0.as_str()).collect();
        assert_eq!(names, CLASSES);
    }

    #[test]
    fn the_near_set_swaps_within_a_topic() {
        let topics = [("harbour", "Wellington", "ferry"), ("election", "Canberra", "ballot")];
        let docs: Vec<String> = (0..24)
            .map(|k| {
                let (a, c, b) = topics[k % 2];
                format!("The {a} of {c} reopened in {} after K{k}refurbishments by Mayor K{k}smith. The {b} service was affected by the storm for {} days. \
                         K{k}inspector and K{k}quarrymaster reported K{k}lanterns and sediment near the {b} terminal. Engineers from K{k}firm inspected the {a} walls. \
                         A {b} review is planned.", 1990 + k, k + 2)
            })
            .collect();
        let items = build_near(&docs);
        assert!(items.len() >= 20, "{}", items.len());
        let classes: Vec<&str> = items.iter().map(|i| i.class.as_str()).collect();
        for c in NEAR_CLASSES {
            assert!(classes.contains(&c), "{c}");
        }
        for it in items.iter().filter(|i| i.class == "name_swapped") {
            assert!(it.response != faithful_answer(&it.source), "{it:?}");
        }
        assert_eq!(items, build_near(&docs));
    }

    #[test]
    fn hand_labels_resolve_document_ranges() {
        let dir = std::env::temp_dir().join(format!("bf-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let corpus = dir.join("c.txt");
        std::fs::write(
            &corpus,
            "Über alles. Second sentence here.\n  Other story.  \n",
        )
        .unwrap();
        let labels = dir.join("l.jsonl");
        std::fs::write(&labels, concat!(
            r#"{"line": 1, "instruction": "Say it.", "response": ["So: ", [0, 11]], "class": "faithful"}"#, "\n",
            r#"{"line": 2, "instruction": ["Copy ", [0, 5]], "class": "non_instruction", "note": "a copy"}"#, "\n"
        )).unwrap();
        let items = read_labels(&labels, &corpus).unwrap();
        assert_eq!(items[0].response, "So: Über alles.");
        assert_eq!(items[1].instruction, "Copy Other");
        assert_eq!(items[1].source, "Other story.");
        assert!(items[1].response.is_empty() && items[1].bad() && !items[0].bad());
        std::fs::write(
            &labels,
            r#"{"line": 2, "instruction": [[0, 99]], "class": "x"}"#,
        )
        .unwrap();
        let e = read_labels(&labels, &corpus).unwrap_err().to_string();
        assert!(
            e.contains(":1: a character range outside document line 2"),
            "{e}"
        );
        std::fs::write(&labels, b"{\"line\": 1, \"instruction\": \"ok\", \"class\": \"x\"}\n{\"line\": 1, \"instruction\": \"\xff\"}\n").unwrap();
        let e = format!("{:#}", read_labels(&labels, &corpus).unwrap_err());
        assert!(e.contains("not UTF-8 (invalid byte at offset 75, line 2)"), "{e}");
        // a JSONL corpus: line N is the record's text
        let jc = dir.join("c.jsonl");
        std::fs::write(&jc, "{\"id\": \"a\", \"text\": \"  Story one.  \"}\n").unwrap();
        std::fs::write(&labels, r#"{"line": 1, "instruction": [[0, 5]], "class": "x"}"#).unwrap();
        assert_eq!(read_labels(&labels, &jc).unwrap()[0].instruction, "Story");
        std::fs::write(&labels, r#"{"line": 7, "instruction": "x", "class": "x"}"#).unwrap();
        let e = format!("{:#}", read_labels(&labels, &corpus).unwrap_err());
        assert!(e.contains("document line 7 is not in"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
