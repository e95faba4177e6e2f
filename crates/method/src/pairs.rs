//! Several (instruction, response) pairs per document.
//!
//! With `backtranslate.pairs_per_document = N > 1` the backward model sees a
//! document cut into numbered passages ([`passages`]) and writes up to N
//! instructions, each answered by a different passage (in the spirit of the
//! instruction synthesizer of Instruction Pre-Training, Cheng et al. 2024,
//! arXiv:2406.14491, and of Genstruct; the rest of the chain is the
//! back-and-forth method unchanged). The backtranslate stage file keeps one
//! record per document whose [`Generation::pairs`] lists what the model
//! wrote; every reader of stage records ([`crate::store::upstream_records`],
//! [`crate::store::read_records`]) expands such a record into one record per
//! pair ([`fan_out`]): id `<record id>#p<k>`, text = the passage, the
//! instruction as its backtranslation, and `metadata.pair` = the record it
//! came from, the pair index and the passage's character range in that
//! record's text. Curation, rewriting, the checks and the exports then treat
//! each pair like any other record, and resume and shards are unchanged
//! because the expansion is a pure function of the stored line.
//!
//! Why our own splitter: a passage must be a contiguous character range of
//! the document (the exported provenance points into it), which no
//! text-splitting crate here returns; it reuses [`crate::text::sentences`].

pub use crate::record::{PairOrigin, PairSpan};
use crate::record::{Generation, Record};
use backforth_inference::FinishReason;
use std::ops::Range;

/// A passage is grown to at least this many words by joining the
/// paragraphs after it (short headings and list items are not answers).
pub const MIN_PASSAGE_WORDS: usize = 40;
/// A paragraph longer than this many words is cut at sentence ends.
pub const MAX_PASSAGE_WORDS: usize = 120;
/// The grammar lets an instruction run to this many characters; one that
/// reaches it did not end by itself (a run-on) and is dropped.
pub const INSTRUCTION_CAP_CHARS: usize = 240;
/// Most passages shown to the model (the rest of a longer document is not
/// offered; documents are usually segmented before this matters).
pub const MAX_PASSAGES: usize = 40;

fn word_count(s: &str) -> usize {
    s.split_whitespace().count()
}

/// Byte range of a subslice within its parent string.
fn offset_in(parent: &str, sub: &str) -> Range<usize> {
    let start = sub.as_ptr() as usize - parent.as_ptr() as usize;
    start..start + sub.len()
}

/// Trim a byte range of `text` to its non-blank part.
fn trimmed(text: &str, r: Range<usize>) -> Range<usize> {
    let s = &text[r.clone()];
    let lead = s.len() - s.trim_start().len();
    let t = s.trim();
    r.start + lead..r.start + lead + t.len()
}

/// Paragraphs: blocks between blank lines; a text without blank lines is
/// split at line breaks instead. Byte ranges, trimmed, non-empty.
fn paragraphs(text: &str) -> Vec<Range<usize>> {
    let blank_separated = text.contains("\n\n") || text.contains("\n\r\n");
    let mut out = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let end = pos + line.len();
        let boundary = if blank_separated { line.trim().is_empty() } else { true };
        if boundary {
            let r = trimmed(text, start..if blank_separated { pos } else { end });
            if !r.is_empty() {
                out.push(r);
            }
            start = end;
        }
        pos = end;
    }
    let r = trimmed(text, start..text.len());
    if !r.is_empty() {
        out.push(r);
    }
    out
}

/// Cut a long paragraph at sentence ends into pieces of at most
/// [`MAX_PASSAGE_WORDS`] words (a single longer sentence stays whole).
fn cut_long(text: &str, para: Range<usize>) -> Vec<Range<usize>> {
    if word_count(&text[para.clone()]) <= MAX_PASSAGE_WORDS {
        return vec![para];
    }
    let p = &text[para.clone()];
    let mut out = Vec::new();
    let (mut cur, mut words): (Option<Range<usize>>, usize) = (None, 0);
    for s in crate::text::sentences(p) {
        let r = offset_in(p, s);
        let r = para.start + r.start..para.start + r.end;
        let n = word_count(s);
        match cur.take() {
            Some(c) if words + n > MAX_PASSAGE_WORDS => {
                out.push(c);
                cur = Some(r);
                words = n;
            }
            Some(c) => {
                cur = Some(c.start..r.end);
                words += n;
            }
            None => {
                cur = Some(r);
                words = n;
            }
        }
    }
    out.extend(cur);
    out
}

/// The passages a document is shown as: paragraphs, long ones cut at
/// sentence ends, short ones joined with those after them until
/// [`MIN_PASSAGE_WORDS`] (never over [`MAX_PASSAGE_WORDS`]); at most
/// [`MAX_PASSAGES`]. Byte ranges of `text`, in order, not overlapping.
pub fn passages(text: &str) -> Vec<Range<usize>> {
    let pieces: Vec<Range<usize>> = paragraphs(text)
        .into_iter()
        .flat_map(|p| cut_long(text, p))
        .collect();
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut cur: Option<(Range<usize>, usize)> = None;
    for p in pieces {
        let n = word_count(&text[p.clone()]);
        cur = match cur.take() {
            Some((c, w)) if w < MIN_PASSAGE_WORDS && w + n <= MAX_PASSAGE_WORDS => Some((c.start..p.end, w + n)),
            Some((c, _)) => {
                out.push(c);
                Some((p, n))
            }
            None => Some((p, n)),
        };
    }
    if let Some((c, w)) = cur {
        // a short tail joins the passage before it when that stays in bounds
        match out.last_mut() {
            Some(last) if w < MIN_PASSAGE_WORDS && word_count(&text[last.clone()]) + w <= MAX_PASSAGE_WORDS => {
                last.end = c.end
            }
            _ => out.push(c),
        }
    }
    out.truncate(MAX_PASSAGES);
    out
}

/// The template's `passages` variable: `[{n, text}]`, numbered from 1.
pub fn passages_context(text: &str) -> serde_json::Value {
    passages(text)
        .into_iter()
        .enumerate()
        .map(|(i, r)| serde_json::json!({"n": i + 1, "text": &text[r]}))
        .collect()
}

/// The GBNF grammar of a multi-pair answer: 1 to `max_pairs` blocks of
/// `Passage: N` / `Instruction: …` lines, each instruction one sentence: it
/// ends at the first `.`, `?` or `!` followed by the line break (a `.`
/// followed by anything but a space, as in `3.11` or `os.path`, does not end
/// it). Small models otherwise run one instruction on into a paragraph.
pub fn grammar(max_pairs: usize) -> String {
    format!(
        "root ::= pair{{1,{max_pairs}}}\n\
         pair ::= \"Passage: \" [1-9] [0-9]? \"\\nInstruction: \" [^\\n.?!] piece{{7,{cap}}} [.?!] \"\\n\"\n\
         piece ::= [^\\n.?!] | \".\" [^ \\n.?!]\n",
        cap = INSTRUCTION_CAP_CHARS - 2
    )
}

/// The passage number a `Passage: N` line names (also `Passage N`,
/// `**Passage 3:**`, `- passage #2`), or `None`.
fn passage_line(line: &str) -> Option<u32> {
    let l = line.trim().trim_start_matches(['-', '*', '#', ' ']).to_ascii_lowercase();
    let rest = l.strip_prefix("passages").or_else(|| l.strip_prefix("passage"))?;
    let rest = rest.trim_start_matches([' ', ':', '#', '*', '[']);
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The text of an `Instruction: …` line, or `None`.
fn instruction_line(line: &str) -> Option<&str> {
    let t = line.trim().trim_start_matches(['-', '*', ' ']);
    let lower = t.to_ascii_lowercase();
    for label in ["instruction", "question"] {
        if lower.starts_with(label) {
            let rest = t[label.len()..].trim_start_matches(['*', ' ']);
            if let Some(r) = rest.strip_prefix(':') {
                return Some(r.trim_start_matches(['*', ' ']).trim());
            }
        }
    }
    None
}

/// Read a multi-pair answer strictly: `Passage: N` then `Instruction: …`,
/// repeated. Pairs whose passage number is not one of the `n_passages`
/// shown, whose passage an earlier pair took, whose instruction repeats an
/// earlier one or fails [`crate::parse::clean_instruction`] are dropped; an
/// answer cut at `max_tokens` loses only its unfinished last pair. At most
/// `max_pairs`. Returns (passage number, instruction) in the model's order.
/// Errors: no usable pair (the reason names what was dropped).
pub fn parse_pairs(
    raw: &str,
    finish: FinishReason,
    n_passages: usize,
    max_pairs: usize,
    max_instruction_chars: usize,
) -> Result<Vec<(u32, String)>, String> {
    let mut out: Vec<(u32, String)> = Vec::new();
    let mut dropped: Vec<String> = Vec::new();
    let mut current: Option<u32> = None;
    let lines: Vec<&str> = raw.split_inclusive('\n').collect();
    for (i, line) in lines.iter().enumerate() {
        if let Some(n) = passage_line(line) {
            current = Some(n);
            continue;
        }
        let Some(instr) = instruction_line(line) else { continue };
        let Some(n) = current.take() else {
            dropped.push("an instruction without a passage number".into());
            continue;
        };
        let last_unfinished = i + 1 == lines.len() && !line.ends_with('\n');
        if last_unfinished && finish == FinishReason::Length {
            dropped.push("the last pair, cut at max_tokens".into());
            continue;
        }
        if n == 0 || n as usize > n_passages {
            dropped.push(format!("passage {n} (the document has {n_passages})"));
            continue;
        }
        if out.iter().any(|(p, _)| *p == n) {
            dropped.push(format!("a second pair on passage {n}"));
            continue;
        }
        // the grammar's line: "Instruction: " + at most the cap
        if line.trim_end_matches(['\n', '\r']).chars().count() >= "Instruction: ".len() + INSTRUCTION_CAP_CHARS {
            dropped.push(format!("passage {n}: an instruction that ran to the {INSTRUCTION_CAP_CHARS}-character cap"));
            continue;
        }
        match crate::parse::clean_instruction(instr, FinishReason::Stop, max_instruction_chars) {
            Ok(s) if out.iter().any(|(_, x)| x.eq_ignore_ascii_case(&s)) => {
                dropped.push("a repeated instruction".into())
            }
            Ok(s) => out.push((n, s)),
            Err(e) => dropped.push(format!("passage {n}: {e}")),
        }
        if out.len() == max_pairs {
            break;
        }
    }
    if out.is_empty() {
        return Err(if dropped.is_empty() {
            "no `Passage: N` / `Instruction: …` pair".into()
        } else {
            format!("no usable pair (dropped: {})", dropped.join("; "))
        });
    }
    Ok(out)
}

/// The pairs of a parsed answer with their passages' character ranges in
/// `text`; `ps` = [`passages`] of `text`.
pub fn spans(text: &str, ps: &[Range<usize>], parsed: Vec<(u32, String)>) -> Vec<PairSpan> {
    let chars = |b: usize| text[..b].chars().count() as u64;
    parsed
        .into_iter()
        .filter_map(|(n, instruction)| {
            let r = ps.get(n as usize - 1)?;
            Some(PairSpan { instruction, passage: n, start: chars(r.start), end: chars(r.end) })
        })
        .collect()
}

/// A record as the stages after backtranslation see it: unchanged, or —
/// when its backtranslation holds several pairs — one record per pair (see
/// the module docs). The children keep the parent's ordinal; exports order
/// them by [`Record::order`].
pub fn fan_out(r: Record) -> Vec<Record> {
    let pairs = match &r.backtranslation {
        Some(g) if !g.pairs.is_empty() => g.pairs.clone(),
        _ => return vec![r],
    };
    pairs
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut c = r.clone();
            c.id = format!("{}#p{k}", r.id);
            c.text = r.text.chars().skip(p.start as usize).take((p.end - p.start) as usize).collect();
            let origin = PairOrigin { of: r.id.clone(), index: k as u32, start: p.start, end: p.end };
            let mut meta = match &r.metadata {
                serde_json::Value::Object(m) => m.clone(),
                serde_json::Value::Null => Default::default(),
                other => [("metadata".to_string(), other.clone())].into_iter().collect(),
            };
            meta.insert("pair".into(), serde_json::to_value(&origin).unwrap_or_default());
            c.metadata = serde_json::Value::Object(meta);
            c.backtranslation = Some(Generation {
                value: Some(p.instruction.clone()),
                pairs: vec![],
                ..r.backtranslation.clone().expect("checked above")
            });
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn para(words: usize, tag: &str) -> String {
        let mut s: Vec<String> = (0..words).map(|i| format!("{tag}{i}")).collect();
        s.last_mut().unwrap().push('.');
        s.join(" ")
    }

    #[test]
    fn passages_join_short_and_cut_long_paragraphs() {
        let long: String = (0..30).map(|i| format!("{} ", para(15, &format!("l{i}x")))).collect();
        let text = format!("Title\n\n{}\n\n{}\n\n{}\n\nEnd.", para(50, "a"), long.trim(), para(10, "c"));
        let ps = passages(&text);
        // the title joins the first paragraph; the 450-word one is cut at sentence ends
        assert_eq!(&text[ps[0].clone()][..5], "Title");
        assert!(ps.len() >= 4, "{ps:?}");
        for w in ps.windows(2) {
            assert!(w[0].end <= w[1].start, "in order, no overlap");
        }
        for p in &ps {
            let n = word_count(&text[p.clone()]);
            assert!(n <= MAX_PASSAGE_WORDS, "{n}");
        }
        // the short tail (c…, End.) joins the passage before it
        assert!(text[ps.last().unwrap().clone()].ends_with("End."));
        // every word of the document is in some passage
        let covered: usize = ps.iter().map(|p| word_count(&text[p.clone()])).sum();
        assert_eq!(covered, word_count(&text));
    }

    #[test]
    fn lines_are_paragraphs_without_blank_lines() {
        let text = format!("{}\n{}\n{}", para(60, "a"), para(60, "b"), para(60, "c"));
        assert_eq!(passages(&text).len(), 3);
        assert!(passages("").is_empty());
        assert_eq!(passages("one short line").len(), 1);
    }

    #[test]
    fn parse_keeps_valid_distinct_pairs() {
        let raw = "Passage: 2\nInstruction: How do I install it?\nPassage: 9\nInstruction: Out of range?\n\
                   Passage: 2\nInstruction: Same passage again?\n**Passage 3:**\nInstruction: \"What does it cost?\"\n";
        let p = parse_pairs(raw, FinishReason::Stop, 4, 5, 1000).unwrap();
        assert_eq!(p, vec![(2, "How do I install it?".into()), (3, "What does it cost?".into())]);
        // max_pairs
        assert_eq!(parse_pairs(raw, FinishReason::Stop, 4, 1, 1000).unwrap().len(), 1);
        // a cut answer loses only its unfinished last pair
        let cut = "Passage: 1\nInstruction: First one?\nPassage: 2\nInstruction: Sec";
        assert_eq!(parse_pairs(cut, FinishReason::Length, 3, 5, 1000).unwrap(), vec![(1, "First one?".into())]);
        let e = parse_pairs("Passage: 7\nInstruction: Where?\n", FinishReason::Stop, 3, 5, 1000).unwrap_err();
        assert!(e.contains("passage 7 (the document has 3)"), "{e}");
        assert!(parse_pairs("just some text", FinishReason::Stop, 3, 5, 1000).is_err());
        // a run-on instruction that the grammar stopped at its cap is dropped
        let long = format!("Passage: 1\nInstruction: {}\nPassage: 2\nInstruction: Fine?\n", "word ".repeat(48));
        assert_eq!(parse_pairs(&long, FinishReason::Stop, 3, 5, 1000).unwrap(), vec![(2, "Fine?".into())]);
        assert!(grammar(4).contains("piece{7,238}"), "{}", grammar(4));
    }

    #[test]
    fn fan_out_points_at_the_passage() {
        let text = format!("Überschrift\n\n{}\n\n{}", para(50, "ä"), para(50, "b"));
        let parsed = vec![(2, "What about b?".to_string()), (1, "What about ä?".to_string())];
        let spans = spans(&text, &passages(&text), parsed);
        let mut r = Record::new("doc".into(), 7, Default::default(), text.clone(), serde_json::json!({"url": "u"}));
        r.backtranslation = Some(Generation {
            value: Some("x".into()),
            score: None,
            parse: crate::record::ParseStatus::Ok,
            raw: "raw".into(),
            model: "m".into(),
            sampling: crate::record::Sampling { temperature: 1.0, top_p: 0.9, max_tokens: 8, seed: 0, stop: vec![] },
            template: "t".into(),
            template_hash: "h".into(),
            stage_key: "k".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish_reason: "stop".into(),
            verdict: None,
            salvaged: false,
            pairs: spans,
        });
        let kids = fan_out(r.clone());
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].id, "doc#p0");
        assert_eq!(kids[0].instruction(), Some("What about b?"));
        assert!(kids[0].backtranslation.as_ref().unwrap().pairs.is_empty());
        for k in &kids {
            let o: PairOrigin = serde_json::from_value(k.metadata["pair"].clone()).unwrap();
            let slice: String = text.chars().skip(o.start as usize).take((o.end - o.start) as usize).collect();
            assert_eq!(slice, k.text);
            assert_eq!(o.of, "doc");
            assert_eq!(k.metadata["url"], "u");
            assert_eq!(k.ordinal, 7);
        }
        assert!(kids[1].text.starts_with("Überschrift"));
        assert_eq!(kids[1].order(), (7, 1));
        // a record without pairs passes through
        r.backtranslation.as_mut().unwrap().pairs.clear();
        assert_eq!(fan_out(r.clone()), vec![r]);
    }
}
