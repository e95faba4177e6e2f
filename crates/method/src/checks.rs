//! Relevance and grounding checks: cheap, deterministic, no model.
//!
//! Back-and-forth translation only pays off when the instruction is about its
//! document and the rewrite stays within it (Nguyen et al. 2024 §3: the
//! rewrite must keep the document's information). Nothing in the LLM stages
//! guarantees either: a small backward model copies the topic of its few-shot
//! seeds onto unrelated documents, asks the reader questions instead of giving
//! an instruction, and a rewrite can drift into text the document never held.
//! These checks look for lexical evidence of each failure:
//!
//! - **relevance** — share of the instruction's *topic words* (content words
//!   minus generic task words such as "explain" or "article") that occur in
//!   the document;
//! - **non-instruction** — fragments, questions to the reader about missing
//!   context ("what … are you referring to?"), and meta text ("Here is …");
//! - **support** — share of the response's content words, counted by
//!   sentence, that sit in sentences the source supports (a sentence is
//!   supported when at least half of its content words occur in the source),
//!   plus numbers and names in the response that the source never mentions;
//! - **answer overlap** — whether the response mentions any of the
//!   instruction's topic words at all (a response to another instruction);
//! - **non-answers** — a response that repeats the instruction, is the
//!   document's heading alone, or has under 3 words.
//!
//! Beside these rules, [`apply_grounding`] turns the learned checker's
//! scores ([`crate::grounding`]) into reasons, and [`apply_verification`]
//! the verify stage's verdicts.
//!
//! Words are compared by a crude stem (lower case, at most 6 characters,
//! plural `s` dropped) so "libraries"/"library" and "honoured"/"honour" match.
//! Written here because it is the method's own filter: no crate scores
//! instruction/response grounding, and each rule must say *why* it rejected a
//! pair, in words a user can act on.
//!
//! Measured on a labelled set built from real news stories (faithful
//! extractive responses vs injected facts, swapped topics, another
//! document's instruction, non-instructions): see `tests/checks.rs` and
//! BENCHMARKS.md.

use crate::text::{
    content_stems, names, number_set, sentences, topic_words, words, EMBED_BATCH, STOP, TASK,
};
pub use crate::text::{stem, windows, WINDOW_STRIDE, WINDOW_WORDS};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// `[checks]`: thresholds of the relevance and grounding checks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ChecksConfig {
    /// Run the checks and keep failing pairs out of the exports (they stay in
    /// the stage files; `checks.jsonl` lists each with its reasons).
    pub enabled: bool,
    /// Minimum share (0–1) of the instruction's topic words found in the
    /// document. Instructions with fewer than `min_topic_words` topic words
    /// are not judged on relevance.
    pub min_relevance: f64,
    /// Topic words an instruction needs before relevance is judged.
    pub min_topic_words: usize,
    /// Minimum share (0–1) of the response's content words in supported sentences.
    pub min_support: f64,
    /// Numbers in the response that the source does not contain, at most.
    pub max_unsupported_numbers: usize,
    /// Capitalised names in the response that the source does not contain,
    /// at most. 0 by default: chosen on the built news set, where 0 gave
    /// recall 0.932 against 0.905 for 1 at precision 1.000 (BENCHMARKS.md,
    /// "Learned grounding checker").
    pub max_unsupported_names: usize,
    /// Reject fragments, questions to the reader and meta text as instructions.
    pub non_instructions: bool,
    /// Reject responses that are not answers: the instruction repeated, the
    /// document's first line (its heading) alone, or under 3 words.
    pub non_answers: bool,
    /// Use the verify stage's verdicts where it ran: a rewrite the verifier
    /// says does not answer its instruction, or with more unsupported
    /// statements than `max_unsupported_claims`, fails.
    pub use_verify: bool,
    /// Unsupported statements the verifier may list before a rewrite fails.
    pub max_unsupported_claims: usize,
    /// Folder of a sentence-transformers model (e.g. all-MiniLM-L6-v2,
    /// `scripts/fetch-assets.sh minilm`) for the semantic relevance check;
    /// empty = off. The instruction is embedded once and each document in
    /// overlapping windows of [`WINDOW_WORDS`] words; the pair's similarity
    /// is the highest cosine over the windows.
    pub embedding_model: String,
    /// Pairs whose instruction–document similarity (cosine, −1–1) is under
    /// this fail with `instruction_unrelated` (where `embedding_model` is set).
    pub min_similarity: f64,
    /// A model file written by `backforth checks train` (`grounding.json`)
    /// for the learned grounding checker ([`crate::grounding`]); empty = off.
    /// Needs `embedding_model` (the embedder it was trained with).
    pub grounding_model: String,
    /// A response sentence whose support probability (0–1) from the learned
    /// checker is under this fails the pair with `response_not_grounded`.
    pub min_sentence_support: f64,
    /// An instruction whose relevance probability (0–1) from the learned
    /// checker is under this fails with `instruction_not_grounded`.
    pub min_instruction_relevance: f64,
}

impl Default for ChecksConfig {
    fn default() -> Self {
        ChecksConfig {
            enabled: true,
            min_relevance: 0.3,
            min_topic_words: 2,
            min_support: 0.7,
            max_unsupported_numbers: 0,
            max_unsupported_names: 0,
            non_instructions: true,
            non_answers: true,
            use_verify: true,
            max_unsupported_claims: 0,
            embedding_model: String::new(),
            min_similarity: 0.25,
            grounding_model: String::new(),
            // chosen on the built news set (`bench-checks --choose-thresholds`,
            // scripts/bench-checks.sh) and reported on the others in BENCHMARKS.md
            min_sentence_support: 0.05,
            min_instruction_relevance: 0.15,
        }
    }
}

/// The checks' findings on one (instruction, response, source) triple.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct CheckResult {
    /// Share of the instruction's topic words found in the source; `None`
    /// when the instruction has fewer topic words than `min_topic_words`.
    pub relevance: Option<f64>,
    /// Highest cosine similarity between the instruction's sentence
    /// embedding and a window of the source (`checks.embedding_model`);
    /// `None` when no embedding model is set.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub similarity: Option<f64>,
    /// The instruction's topic words (stems) that the source lacks.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub off_topic_words: Vec<String>,
    /// Share of the response's content words in supported sentences
    /// (`None` when the response is the source itself or has no content words).
    pub support: Option<f64>,
    /// Response sentences the source does not support (at most 3 kept).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unsupported_sentences: Vec<String>,
    /// Numbers in the response missing from the source.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unsupported_numbers: Vec<String>,
    /// Capitalised names in the response missing from the source.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unsupported_names: Vec<String>,
    /// Code identifiers in the response missing from the source (see [`identifiers`]).
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub unsupported_identifiers: Vec<String>,
    /// The learned grounding checker's scores, where it ran on this pair.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grounding: Option<crate::grounding::model::Grounding>,
    /// Why the learned checker could not score this pair (bad input).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grounding_error: Option<String>,
    /// The verify stage's verdict, where it ran on this pair.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verification: Option<crate::parse::Verification>,
    /// Failure reasons (stable snake_case codes, see [`Reason`]); empty = passed.
    pub reasons: Vec<Reason>,
}

impl CheckResult {
    /// True when no check failed.
    pub fn passed(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// Why a pair failed the checks (the codes counted in `summary.json`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// Too few words to be an instruction.
    InstructionFragment,
    /// Asks the reader for context instead of giving a task.
    InstructionToReader,
    /// Text about the instruction or the document, not an instruction.
    InstructionMeta,
    /// Points at a text the user does not have ("the given sentence", "the passage").
    InstructionNeedsContext,
    /// A statement copied from the document, not a request.
    InstructionCopied,
    /// Not a question and shaped like a statement or a heading: opens with
    /// an article, a demonstrative or a third-person pronoun, opens with a
    /// label ("Note:"), or is a title-case line without a full stop.
    InstructionStatement,
    /// The instruction states a number (a year, an amount; not a small
    /// count such as "3 examples") that the document does not contain.
    InstructionUnsupportedNumbers,
    /// The instruction's topic words are mostly absent from the document.
    InstructionOffTopic,
    /// The instruction's sentence embedding is far from every window of the document.
    InstructionUnrelated,
    /// Too little of the response is supported by the source.
    ResponseUnsupported,
    /// The response states numbers the source does not contain.
    ResponseUnsupportedNumbers,
    /// The response names people, places or things the source does not.
    ResponseUnsupportedNames,
    /// The response uses a code identifier (dotted, snake_case or camelCase)
    /// that the source does not contain.
    ResponseUnsupportedIdentifiers,
    /// The response mentions none of the instruction's topic words.
    ResponseOffInstruction,
    /// The response is the instruction repeated, the document's heading, or a fragment.
    ResponseNotAnAnswer,
    /// The learned checker gives a response sentence a support under `min_sentence_support`.
    ResponseNotGrounded,
    /// The learned checker gives the instruction a relevance under `min_instruction_relevance`.
    InstructionNotGrounded,
    /// The learned checker could not read the pair (empty text, over-long document).
    GroundingUnchecked,
    /// The verify stage's LLM says the response does not do what the instruction asks.
    VerifyNotAnswered,
    /// The verify stage's LLM lists statements the source does not back.
    VerifyUnsupportedClaims,
}

impl Reason {
    /// The snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Reason::InstructionFragment => "instruction_fragment",
            Reason::InstructionToReader => "instruction_to_reader",
            Reason::InstructionMeta => "instruction_meta",
            Reason::InstructionNeedsContext => "instruction_needs_context",
            Reason::InstructionCopied => "instruction_copied",
            Reason::InstructionStatement => "instruction_statement",
            Reason::InstructionUnsupportedNumbers => "instruction_unsupported_numbers",
            Reason::InstructionOffTopic => "instruction_off_topic",
            Reason::InstructionUnrelated => "instruction_unrelated",
            Reason::ResponseUnsupported => "response_unsupported",
            Reason::ResponseUnsupportedNumbers => "response_unsupported_numbers",
            Reason::ResponseUnsupportedNames => "response_unsupported_names",
            Reason::ResponseUnsupportedIdentifiers => "response_unsupported_identifiers",
            Reason::ResponseOffInstruction => "response_off_instruction",
            Reason::ResponseNotAnAnswer => "response_not_an_answer",
            Reason::ResponseNotGrounded => "response_not_grounded",
            Reason::InstructionNotGrounded => "instruction_not_grounded",
            Reason::GroundingUnchecked => "grounding_unchecked",
            Reason::VerifyNotAnswered => "verify_not_answered",
            Reason::VerifyUnsupportedClaims => "verify_unsupported_claims",
        }
    }
}

/// The source side of the checks, precomputed once per document.
pub struct SourceIndex {
    stems: HashSet<String>,
    numbers: HashSet<String>,
    /// Every run of [`COPY_RUN`] consecutive words (lower case, space-joined).
    runs: HashSet<String>,
    /// The heading's words (lower case, space-joined; see [`first_heading`]).
    first_line: String,
    /// The text in lower case, for identifier look-ups.
    lower: String,
}

impl SourceIndex {
    /// Index a source text (the document y).
    pub fn new(text: &str) -> Self {
        let w = words(text);
        let stems = w.iter().map(|w| stem(w)).collect();
        let runs = w.windows(COPY_RUN).map(|r| r.join(" ")).collect();
        SourceIndex {
            stems,
            numbers: number_set(text),
            runs,
            first_line: first_heading(text),
            lower: text.to_lowercase(),
        }
    }

    /// True when the text holds the number `n` (as [`number_set`] writes
    /// it), "2.0" matching "2".
    fn has_number(&self, n: &str) -> bool {
        self.numbers.contains(n) || self.numbers.contains(n.trim_end_matches(".0"))
    }

    /// True when the text holds the name `n` (as [`names`] writes it): a
    /// plain word by its stem; a token with inner punctuation
    /// (`Lib/codeop.py`, `LL(1`, `SOCK_STREAM`, `I/O`) as written, ignoring
    /// case — its stem would never be among the text's word stems.
    fn has_name(&self, n: &str) -> bool {
        if n.chars().all(char::is_alphanumeric) {
            self.stems.contains(&stem(n))
        } else {
            self.lower.contains(&n.to_lowercase())
        }
    }
}

/// The first non-blank line's words when it looks like a heading: at most
/// 12 words, with more text below it; else empty (a one-line document has
/// no heading).
fn first_heading(text: &str) -> String {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match (lines.next(), lines.next()) {
        (Some(first), Some(_)) if words(first).len() <= 12 => words(first).join(" "),
        _ => String::new(),
    }
}

/// Why `instruction` is not an instruction, if it is not one.
pub fn non_instruction(instruction: &str) -> Option<Reason> {
    let t = instruction.trim();
    let lower = t.to_lowercase();
    let n = words(t).len();
    if n < 3 {
        return Some(Reason::InstructionFragment);
    }
    const TO_READER: [&str; 16] = [
        "are you referring",
        "were you referring",
        "do you mean",
        "did you mean",
        "you are referring",
        "you mentioned",
        "you just mentioned",
        "you said",
        "could you clarify",
        "can you clarify",
        "please clarify",
        "could you specify",
        "can you be more specific",
        "could you be more specific",
        "provide more context",
        "more context",
    ];
    if TO_READER.iter().any(|p| lower.contains(p)) {
        return Some(Reason::InstructionToReader);
    }
    const META: [&str; 12] = [
        "here is",
        "here's",
        "here are",
        "sure,",
        "sure!",
        "the instruction",
        "instruction:",
        "this instruction",
        "the text describes",
        "the article describes",
        "the document describes",
        "as an ai",
    ];
    if META.iter().any(|p| lower.starts_with(p)) {
        return Some(Reason::InstructionMeta);
    }
    // refusals and talk about a conversation that does not exist
    const META_ANYWHERE: [&str; 6] = [
        "i'm sorry",
        "i am sorry",
        "i can't assist",
        "i cannot assist",
        "chat history",
        "previous conversation",
    ];
    if META_ANYWHERE.iter().any(|p| lower.contains(p)) {
        return Some(Reason::InstructionMeta);
    }
    // pointers to a text the user of a chat model does not have: the
    // instruction only makes sense next to the document (or a seed's input)
    // ("the story"/"the text" alone are left out: "the story behind X" is a fair request)
    const NEEDS_CONTEXT: [&str; 13] = [
        "the given",
        "the passage",
        "this passage",
        "the above",
        "the following",
        "the specified",
        "the provided",
        "this story",
        "the article",
        "this article",
        "this text",
        "the document",
        "the paragraph",
    ];
    if NEEDS_CONTEXT.iter().any(|p| {
        lower
            .match_indices(p)
            .any(|(i, _)| !lower[i + p.len()..].starts_with(|c: char| c.is_alphanumeric()))
    }) {
        return Some(Reason::InstructionNeedsContext);
    }
    if statement_shaped(t) {
        return Some(Reason::InstructionStatement);
    }
    None
}

/// True for a text that is not a question and reads as a statement or a
/// heading rather than a request: it opens with an article, a demonstrative
/// or a third-person pronoun ("The policy is uncertain.", "It was a dry
/// year."), opens with a label and a colon ("Note: …"), or is a title-case
/// line with no full stop ("UDP Echo Server"). Requests open with a verb
/// ("Explain …", "Write …"), a question word, or "I"/"we"/"please", and a
/// final question mark always makes a request. Our rule, from the form of
/// the instructions in instruction-tuning sets; the words it keys on are in
/// [`STATEMENT_OPENERS`], [`STATEMENT_LABELS`] and [`REQUEST_VERBS`].
pub fn statement_shaped(t: &str) -> bool {
    let t = t.trim();
    if t.ends_with('?') {
        return false;
    }
    let tokens: Vec<&str> = t.split_whitespace().collect();
    let Some(first) = tokens.first() else { return false };
    let lead = first
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    // "Note: …", "Summary: …" — a label that introduces a statement ("Task:",
    // "Question:" introduce requests and are not in the list)
    if first.ends_with(':') && STATEMENT_LABELS.contains(&lead.as_str()) {
        return true;
    }
    if STATEMENT_OPENERS.contains(&lead.as_str()) {
        return true;
    }
    // a title-case request ("Write A Haiku About Autumn") is not a heading
    if TASK.contains(lead.as_str()) || REQUEST_VERBS.contains(&lead.as_str()) {
        return false;
    }
    // a heading: every word of 4+ letters capitalised, no sentence punctuation
    let long: Vec<&str> = tokens
        .iter()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().count() >= 4 && w.chars().all(char::is_alphabetic))
        .collect();
    !long.is_empty()
        && long.iter().all(|w| w.starts_with(|c: char| c.is_uppercase()))
        && !t.ends_with(['.', '!', ':'])
        && tokens.len() <= 12
}

/// Code identifiers in a text, in order: tokens (split at white space,
/// brackets, quotes and back-ticks; sentence punctuation and a call's `()`
/// trimmed) that are dotted names whose parts start with a letter and have 2+
/// characters (`os.path.join`, not `U.S.` or `3.11`), snake_case names
/// (`new_environ`, `__init__`), or camelCase names (`getLogger`,
/// `StreamWriter`). A swapped or invented one is a fact the document must
/// hold: the lexical checks look each up in the document (case-insensitive).
pub fn identifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for tok in text.split(|c: char| c.is_whitespace() || "()[]{}<>`'\",;=*“”‘’".contains(c)) {
        let t = tok.trim_matches(|c: char| !(c.is_alphanumeric() || c == '_'));
        if t.chars().count() < 4 {
            continue;
        }
        let dotted = t.contains('.')
            && t.split('.').all(|p| {
                p.chars().count() >= 2
                    && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            });
        let plain = t.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
        let snake = plain && t.contains('_') && t.chars().any(|c| c.is_ascii_alphabetic());
        // a lower-case letter followed by a capital inside the word: getLogger, StreamWriter
        let camel = plain
            && !t.starts_with("Mc")
            && !t.starts_with("Mac")
            && t.as_bytes().windows(2).any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase());
        if (dotted || snake || camel) && !out.iter().any(|x: &String| x == t) {
            out.push(t.to_string());
        }
    }
    out
}

/// Labels that introduce a statement, not a request (lower case, before the colon).
pub const STATEMENT_LABELS: [&str; 10] = [
    "note", "notes", "warning", "caution", "tip", "summary", "background", "conclusion", "update",
    "disclaimer",
];

/// Verbs that open requests besides the task words of [`crate::text::TASK_WORDS`]
/// (lower case): a title-case line opening with one is a request, not a heading.
pub const REQUEST_VERBS: [&str; 16] = [
    "create", "generate", "implement", "translate", "convert", "make", "build", "design",
    "classify", "rewrite", "calculate", "identify", "suggest", "name", "draft", "compose",
];

/// First words that open statements, not requests (lower case): articles,
/// demonstratives, third-person pronouns and possessives.
pub const STATEMENT_OPENERS: [&str; 15] = [
    "the", "a", "an", "this", "that", "these", "those", "it", "its", "there", "their", "his",
    "her", "he", "she",
];

/// Integers under this are counts a task may ask for ("3 examples", "in 2
/// sentences"), not facts an instruction presupposes.
const SMALL_COUNT: u64 = 100;

/// True when `instruction` states a number the document lacks, small counts
/// left out (see [`SMALL_COUNT`]).
fn instruction_states_missing_number(instruction: &str, source: &SourceIndex) -> bool {
    number_set(instruction)
        .iter()
        .filter(|n| n.parse::<u64>().map_or(true, |v| v >= SMALL_COUNT))
        .any(|n| !source.has_number(n))
}

/// Words of a run the instruction must share with the document to count as copied.
const COPY_RUN: usize = 5;

/// Share (0–1) of the instruction's words inside runs of [`COPY_RUN`] or
/// more consecutive words that also occur, in order, in the document.
fn copied_share(instruction: &str, source: &SourceIndex) -> f64 {
    let w = words(instruction);
    if w.len() < COPY_RUN {
        return 0.0;
    }
    let mut covered = vec![false; w.len()];
    for i in 0..=w.len() - COPY_RUN {
        if source.runs.contains(&w[i..i + COPY_RUN].join(" ")) {
            covered[i..i + COPY_RUN].iter_mut().for_each(|c| *c = true);
        }
    }
    covered.iter().filter(|&&c| c).count() as f64 / w.len() as f64
}

/// Add the verify stage's verdict to a [`CheckResult`] (when
/// `cfg.use_verify`): fails it with [`Reason::VerifyNotAnswered`] and/or
/// [`Reason::VerifyUnsupportedClaims`] (more than `max_unsupported_claims`).
pub fn apply_verification(cfg: &ChecksConfig, r: &mut CheckResult, v: &crate::parse::Verification) {
    if !cfg.use_verify {
        return;
    }
    if !v.answers {
        r.reasons.push(Reason::VerifyNotAnswered);
    }
    if v.unsupported.len() > cfg.max_unsupported_claims {
        r.reasons.push(Reason::VerifyUnsupportedClaims);
    }
    r.verification = Some(v.clone());
}

/// The semantic relevance of each (instruction, document) pair: the highest
/// cosine between the instruction's embedding and one of the document's
/// [`windows`] (an empty document scores −1). Embeds in batches of 32 texts.
/// Deterministic for a given embedder. Errors: the embedder failed.
pub fn similarities(
    emb: &mut dyn backforth_inference::encoder::SentenceEmbedder,
    pairs: &[(&str, &str)],
) -> anyhow::Result<Vec<f64>> {
    // all texts of all pairs, embedded in batches; owner[i] = (pair, is_instruction)
    let mut texts: Vec<String> = Vec::new();
    let mut owner: Vec<(usize, bool)> = Vec::new();
    for (i, (ins, doc)) in pairs.iter().enumerate() {
        texts.push(ins.trim().to_string());
        owner.push((i, true));
        for w in windows(doc) {
            texts.push(w);
            owner.push((i, false));
        }
    }
    let mut vecs: Vec<Vec<f32>> = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(EMBED_BATCH) {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        let v = emb.embed_texts(&refs)?;
        anyhow::ensure!(
            v.len() == refs.len(),
            "the embedder returned {} vectors for {} texts",
            v.len(),
            refs.len()
        );
        vecs.extend(v);
    }
    let mut best = vec![-1.0f64; pairs.len()];
    let mut ins_vec: Option<&Vec<f32>> = None;
    for ((i, is_ins), v) in owner.iter().zip(&vecs) {
        if *is_ins {
            ins_vec = Some(v);
            continue;
        }
        if let Some(q) = ins_vec {
            let c: f32 = q.iter().zip(v).map(|(a, b)| a * b).sum();
            best[*i] = best[*i].max(c as f64);
        }
    }
    Ok(best)
}

/// Add the semantic relevance to a [`CheckResult`]: fails it with
/// [`Reason::InstructionUnrelated`] under `cfg.min_similarity`.
pub fn apply_similarity(cfg: &ChecksConfig, r: &mut CheckResult, similarity: f64) {
    r.similarity = Some(similarity);
    if similarity < cfg.min_similarity {
        r.reasons.push(Reason::InstructionUnrelated);
        r.reasons.sort();
        r.reasons.dedup();
    }
}

/// Add the learned checker's scores to a [`CheckResult`]: the instruction's
/// relevance always, the sentences' support when `with_response` (the
/// rewrite export; the curated and distilled exports judge the instruction
/// only). Fails with [`Reason::InstructionNotGrounded`] /
/// [`Reason::ResponseNotGrounded`] under the configured minimums.
pub fn apply_grounding(
    cfg: &ChecksConfig,
    r: &mut CheckResult,
    g: &crate::grounding::model::Grounding,
    with_response: bool,
) {
    let mut g = g.clone();
    if !with_response {
        g.sentences.clear();
    }
    if g.relevance < cfg.min_instruction_relevance {
        r.reasons.push(Reason::InstructionNotGrounded);
    }
    if g.sentences.iter().any(|s| s.support < cfg.min_sentence_support) {
        r.reasons.push(Reason::ResponseNotGrounded);
    }
    r.grounding = Some(g);
    r.reasons.sort();
    r.reasons.dedup();
}

/// Record that the learned checker could not read a pair: fails it with
/// [`Reason::GroundingUnchecked`] and keeps the message.
pub fn apply_grounding_error(r: &mut CheckResult, message: &str) {
    r.grounding_error = Some(message.to_string());
    r.reasons.push(Reason::GroundingUnchecked);
    r.reasons.sort();
    r.reasons.dedup();
}

/// Run every lexical check on one triple. `response = None` checks the
/// instruction only (the curated export, whose response is the source
/// itself, and the distilled baseline, which is not meant to be grounded).
pub fn check(
    cfg: &ChecksConfig,
    instruction: &str,
    response: Option<&str>,
    source: &SourceIndex,
) -> CheckResult {
    let (stop, task) = (&*STOP, &*TASK);
    let mut r = CheckResult::default();
    if cfg.non_instructions {
        if let Some(reason) = non_instruction(instruction) {
            r.reasons.push(reason);
        }
        // a statement lifted from the document: not a question, not opening
        // with a task verb, mostly made of runs the document holds
        let t = instruction.trim();
        let first = words(t).into_iter().next().unwrap_or_default();
        if !t.ends_with('?') && !task.contains(first.as_str()) && copied_share(t, source) >= 0.6 {
            r.reasons.push(Reason::InstructionCopied);
        }
    }
    // topic words: content words that are neither function nor task words
    let mut seen = HashSet::new();
    let topic: Vec<String> = topic_words(instruction)
        .iter()
        .map(|w| stem(w))
        .filter(|s| seen.insert(s.clone()))
        .collect();
    if topic.len() >= cfg.min_topic_words.max(1) {
        let hits = topic.iter().filter(|s| source.stems.contains(*s)).count();
        let rel = hits as f64 / topic.len() as f64;
        r.relevance = Some(rel);
        r.off_topic_words = topic
            .iter()
            .filter(|s| !source.stems.contains(*s))
            .cloned()
            .collect();
        if rel < cfg.min_relevance {
            r.reasons.push(Reason::InstructionOffTopic);
        }
    }
    if instruction_states_missing_number(instruction, source) {
        r.reasons.push(Reason::InstructionUnsupportedNumbers);
    }
    let Some(resp) = response else { return r };
    if cfg.non_answers {
        let said = words(resp).join(" ");
        if said.split(' ').count() < 3
            || said == words(instruction).join(" ")
            || (!source.first_line.is_empty() && said == source.first_line)
        {
            r.reasons.push(Reason::ResponseNotAnAnswer);
        }
    }

    let (mut supported_w, mut total_w) = (0usize, 0usize);
    for s in sentences(resp) {
        let c = content_stems(s, stop);
        if c.len() < 3 {
            continue; // framing ("Sure." / "In short:") carries no claim
        }
        let hits = c.iter().filter(|x| source.stems.contains(*x)).count();
        total_w += c.len();
        if hits * 2 >= c.len() {
            supported_w += c.len();
        } else if r.unsupported_sentences.len() < 3 {
            r.unsupported_sentences.push(s.chars().take(200).collect());
        }
    }
    if total_w > 0 {
        let sup = supported_w as f64 / total_w as f64;
        r.support = Some(sup);
        if sup < cfg.min_support {
            r.reasons.push(Reason::ResponseUnsupported);
        }
    }
    let mut nseen = HashSet::new();
    for n in number_set(resp) {
        if !source.has_number(&n) && nseen.insert(n.clone()) {
            r.unsupported_numbers.push(n);
        }
    }
    r.unsupported_numbers.sort();
    if r.unsupported_numbers.len() > cfg.max_unsupported_numbers {
        r.reasons.push(Reason::ResponseUnsupportedNumbers);
    }
    let mut seen_names = HashSet::new();
    for n in names(resp, stop, task) {
        if !source.has_name(&n) && seen_names.insert(stem(&n)) {
            r.unsupported_names.push(n);
        }
    }
    if r.unsupported_names.len() > cfg.max_unsupported_names {
        r.reasons.push(Reason::ResponseUnsupportedNames);
    }
    for id in identifiers(resp) {
        // identifiers() lists each once
        if !source.lower.contains(&id.to_lowercase()) {
            r.unsupported_identifiers.push(id);
        }
    }
    if !r.unsupported_identifiers.is_empty() {
        r.reasons.push(Reason::ResponseUnsupportedIdentifiers);
    }
    if topic.len() >= cfg.min_topic_words.max(1) {
        let resp_stems: HashSet<String> = words(resp).into_iter().map(|w| stem(&w)).collect();
        if !topic.iter().any(|t| resp_stems.contains(t)) {
            r.reasons.push(Reason::ResponseOffInstruction);
        }
    }
    r.reasons.sort();
    r.reasons.dedup();
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::numbers;

    const DOC: &str =
        "Film director Peter Jackson has been made a Companion of the New Zealand Order of Merit \
in the New Year honours. Jackson, who directed The Lord of the Rings, said he was delighted. \
The honours list was released on Monday and includes 23 other recipients.";

    #[test]
    fn the_demo_failure_is_caught() {
        let src = SourceIndex::new(DOC);
        let c = ChecksConfig::default();
        let r = check(
            &c,
            "What if I want to link a compiled object to a static library?",
            Some("Use the ar tool to build a static library, then link it with gcc."),
            &src,
        );
        assert!(r.reasons.contains(&Reason::InstructionOffTopic), "{r:?}");
        assert!(r.reasons.contains(&Reason::ResponseUnsupported), "{r:?}");
        assert_eq!(
            non_instruction("What type of assessment are you referring to?"),
            Some(Reason::InstructionToReader)
        );
    }

    #[test]
    fn statements_and_headings_are_not_requests() {
        for bad in [
            "The Federal Government's policy on refugees is uncertain.",
            "Note: Reproducibility is crucial when generating random numbers.",
            "UDP Echo Server",
            "It was the driest year on record.",
        ] {
            assert_eq!(non_instruction(bad), Some(Reason::InstructionStatement), "{bad}");
        }
        for good in [
            "Explain how the honours list is chosen.",
            "The honours list: who chooses it?",
            "I need a function that reverses a string.",
            "Summarise the news about Peter Jackson",
            "Write a Haiku About Autumn.",
            "List three Causes Of Bushfires",
            "Please describe the Hopman Cup.",
            "Generate A Poem About Autumn",
            "Task: summarise the story in two sentences.",
            "Question: who won the Hopman Cup?",
        ] {
            assert_eq!(non_instruction(good), None, "{good}");
        }
    }

    #[test]
    fn identifiers_are_code_tokens_and_must_be_in_the_document() {
        assert_eq!(
            identifiers("Call `os.path.join()` or getLogger(name); set new_environ, not U.S. or 3.11 or McDonald."),
            vec!["os.path.join", "getLogger", "new_environ"]
        );
        let src = SourceIndex::new("StreamWriter.write(data) writes data. Use os.environ to read the environment.");
        let c = ChecksConfig::default();
        let r = check(&c, "How do I write data with a StreamWriter?", Some("Call streamwriter.write(data); it writes the data."), &src);
        assert!(r.unsupported_identifiers.is_empty(), "{r:?}");
        let r = check(&c, "How do I write data with a StreamWriter?", Some("Call StreamWriter.writelines(data) to write the data."), &src);
        assert_eq!(r.unsupported_identifiers, vec!["StreamWriter.writelines".to_string()]);
        assert!(r.reasons.contains(&Reason::ResponseUnsupportedIdentifiers));
    }

    #[test]
    fn numbers_an_instruction_presupposes_must_be_in_the_document() {
        let src = SourceIndex::new("Spain beat Argentina 3-0 in the 2002 Hopman Cup in Perth, before 10,500 fans.");
        let c = ChecksConfig::default();
        let flagged = |q: &str| check(&c, q, None, &src).reasons.contains(&Reason::InstructionUnsupportedNumbers);
        assert!(flagged("Who won the 2019 Hopman Cup in Perth?"));
        assert!(flagged("Why did 12,000 fans watch the Hopman Cup?"));
        assert!(!flagged("Who won the 2002 Hopman Cup in Perth?"));
        assert!(!flagged("Did 10,500 fans watch Spain beat Argentina?"));
        // small counts are task parameters, not facts
        assert!(!flagged("Give 3 facts about the Hopman Cup in Perth."));
    }

    #[test]
    fn a_faithful_pair_passes() {
        let src = SourceIndex::new(DOC);
        let r = check(
            &ChecksConfig::default(),
            "Summarise the news about Peter Jackson's New Year honour.",
            Some("Sure. Peter Jackson, director of The Lord of the Rings, was made a Companion of the New Zealand Order of Merit in the New Year honours list, released on Monday with 23 other recipients. He said he was delighted."),
            &src,
        );
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.relevance, Some(1.0));
    }

    #[test]
    fn injected_numbers_and_names_are_caught() {
        let src = SourceIndex::new(DOC);
        let r = check(
            &ChecksConfig::default(),
            "Summarise the news about Peter Jackson's New Year honour.",
            Some("Peter Jackson was made a Companion of the New Zealand Order of Merit. The award carries a prize of 50,000 dollars, said Prime Minister Helen Clark."),
            &src,
        );
        assert_eq!(r.unsupported_numbers, vec!["50000".to_string()]);
        assert!(r.unsupported_names.contains(&"Helen".to_string()), "{r:?}");
        assert!(r.reasons.contains(&Reason::ResponseUnsupportedNumbers));
    }

    #[test]
    fn one_swapped_name_fails_and_code_tokens_are_looked_up_as_written() {
        let src = SourceIndex::new(
            "Debug Mode\n\nSource code: Lib/asyncio/runners.py\n\nBy default asyncio runs in production mode. \
             Pass debug=True to asyncio.run(); sockets use SOCK_STREAM and I/O is buffered.",
        );
        let q = "How do I turn on asyncio's debug mode?";
        // tokens with inner punctuation are not word stems of the page, but
        // the page holds them as written: no unsupported name
        let ok = "Debug Mode: see Lib/asyncio/runners.py. Pass debug=True to asyncio.run(); \
                  sockets use SOCK_STREAM and I/O is buffered.";
        let r = check(&ChecksConfig::default(), q, Some(ok), &src);
        assert!(r.unsupported_names.is_empty() && r.passed(), "{r:?}");
        // one heading word swapped for another page's ("Program"): fails at
        // the default of 0 unknown names, passes when one is allowed
        let swapped = "Debug Program: by default asyncio runs in production mode. Pass debug=True to asyncio.run().";
        let r = check(&ChecksConfig::default(), q, Some(swapped), &src);
        assert_eq!(r.unsupported_names, vec!["Program".to_string()]);
        assert!(r.reasons.contains(&Reason::ResponseUnsupportedNames), "{r:?}");
        let one = ChecksConfig { max_unsupported_names: 1, ..ChecksConfig::default() };
        assert!(check(&one, q, Some(swapped), &src).passed());
    }

    #[test]
    fn non_answers_are_caught() {
        let src = SourceIndex::new("Key bindings\n\nIn this section, C refers to the Control key on Windows and Unix.");
        let c = ChecksConfig::default();
        let q = "Which key does C refer to in IDLE?";
        for bad in ["Key bindings", "Which key does C refer to in IDLE?", "Control key."] {
            let r = check(&c, q, Some(bad), &src);
            assert!(r.reasons.contains(&Reason::ResponseNotAnAnswer), "{bad}: {r:?}");
        }
        let r = check(&c, q, Some("In this section, C refers to the Control key on Windows and Unix."), &src);
        assert!(!r.reasons.contains(&Reason::ResponseNotAnAnswer), "{r:?}");
        // a one-line document has no heading: copying it whole is an answer
        let one = SourceIndex::new("Spain beat Argentina 3-0 in the Hopman Cup in Perth.");
        let r = check(&c, "Who won?", Some("Spain beat Argentina 3-0 in the Hopman Cup in Perth."), &one);
        assert!(!r.reasons.contains(&Reason::ResponseNotAnAnswer), "{r:?}");
    }

    #[test]
    fn windows_cover_the_document_with_overlap() {
        assert!(windows("  ").is_empty());
        assert_eq!(windows("one two three"), vec!["one two three".to_string()]);
        let doc: Vec<String> = (0..200).map(|i| format!("w{i}")).collect();
        let w = windows(&doc.join(" "));
        assert_eq!(w.len(), 3, "0-96, 64-160, 104-200");
        assert!(w[0].starts_with("w0 ") && w[0].ends_with(" w95"));
        assert!(w[1].starts_with("w64 "));
        assert!(w[2].ends_with(" w199") && w[2].starts_with("w104 "));
        assert!(w.iter().all(|x| x.split(' ').count() == WINDOW_WORDS));
    }

    use crate::test_embedder::Letters;

    #[test]
    fn similarity_is_the_best_window_and_fails_under_the_threshold() {
        // 150 words of z, then 120 of a/b: the first window is all z, the last all a/b
        let doc = format!("{}{}", "zzz ".repeat(150), "aaa bbb ".repeat(60));
        let only_z = "zzz ".repeat(50);
        let s = similarities(
            &mut Letters,
            &[
                ("aaa bbb", &doc),
                ("zzz", &doc),
                ("aaa bbb", &only_z),
                ("q", ""),
            ],
        )
        .unwrap();
        assert!(
            (s[0] - 1.0).abs() < 1e-6,
            "the last window holds only a and b: {s:?}"
        );
        assert!(
            (s[1] - 1.0).abs() < 1e-6,
            "the first window holds only z: {s:?}"
        );
        assert!(s[2].abs() < 1e-6, "{s:?}");
        assert_eq!(s[3], -1.0);
        let cfg = ChecksConfig::default();
        let mut r = CheckResult::default();
        apply_similarity(&cfg, &mut r, 0.1);
        assert_eq!(r.reasons, vec![Reason::InstructionUnrelated]);
        let mut ok = CheckResult::default();
        apply_similarity(&cfg, &mut ok, 0.5);
        assert!(ok.passed() && ok.similarity == Some(0.5));
    }

    #[test]
    fn text_helpers() {
        assert_eq!(
            numbers("In 2001, 1,234.5 people and 3 dogs."),
            vec!["2001", "1234.5", "3"]
        );
        assert_eq!(
            sentences("One. Two!\nThree? Four"),
            vec!["One.", "Two!", "Three?", "Four"]
        );
        assert_eq!(stem("Libraries"), stem("library"));
        assert_eq!(stem("honours"), stem("honour"));
        assert_eq!(non_instruction("Why?"), Some(Reason::InstructionFragment));
        assert_eq!(
            non_instruction("Here is the instruction you asked for"),
            Some(Reason::InstructionMeta)
        );
        assert_eq!(
            non_instruction("Explain how the honours list is chosen."),
            None
        );
        assert_eq!(
            non_instruction("I'm sorry, but I can't assist with that."),
            Some(Reason::InstructionMeta)
        );
        assert_eq!(
            non_instruction("Identify the part of speech of the word in the given sentence."),
            Some(Reason::InstructionNeedsContext)
        );
        assert_eq!(
            non_instruction("Who wrote the documents of the Council?"),
            None,
            "'the documents' is not 'the document'"
        );
        let src = SourceIndex::new(DOC);
        let cfg = ChecksConfig::default();
        let copied = check(
            &cfg,
            "Jackson, who directed The Lord of the Rings, said he was delighted.",
            None,
            &src,
        );
        assert!(
            copied.reasons.contains(&Reason::InstructionCopied),
            "{copied:?}"
        );
        for ok in [
            "Why was Jackson, who directed The Lord of the Rings, delighted?",
            "Explain why Jackson, who directed The Lord of the Rings, said he was delighted.",
        ] {
            let r = check(&cfg, ok, None, &src);
            assert!(
                !r.reasons.contains(&Reason::InstructionCopied),
                "{ok}: {r:?}"
            );
        }
    }
}
