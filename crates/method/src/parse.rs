//! Strict parsers for model outputs: curation score, `[RES]` rewrite blocks,
//! and backtranslated instructions. Every parser returns either the value or a
//! human-readable reason; callers keep the raw text either way.
//!
//! Why strict: Li et al. (2023, §2.3) report a parsable score for most
//! outputs; a lenient parser silently turns prose like "I'd give it a 4 or 5"
//! into data. We accept only a final `Score: N` line (see [`parse_score`]).

use backforth_inference::FinishReason;
use serde::{Deserialize, Serialize};

/// A parsed verification: does the rewrite do what the instruction asks,
/// and which of its statements the source does not back (verify stage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    pub answers: bool,
    /// Statements the verifier found unsupported, as it wrote them (trimmed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsupported: Vec<String>,
}

/// Parse a verification: exactly one line `Answers the request: yes|no` and
/// one line `Unsupported: none` (or `-`, or empty) or statements separated
/// by `;`, the second after the first; markdown emphasis around the labels
/// and case are tolerated, any other non-empty line is an error (so prose
/// around the verdict is not read as a verdict).
///
/// Errors: a reason string for [`crate::record::ParseStatus::Failed`].
pub fn parse_verification(raw: &str) -> Result<Verification, String> {
    let lines: Vec<&str> = raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        return Err("empty output".into());
    }
    let field = |l: &str, label: &str| -> Option<String> {
        let l = strip_decoration(l);
        let (k, v) = l.split_once(':')?;
        strip_decoration(k)
            .eq_ignore_ascii_case(label)
            .then(|| strip_decoration(v).to_string())
    };
    if lines.len() != 2 {
        return Err(format!(
            "expected 2 lines (`Answers the request:` and `Unsupported:`), got {}",
            lines.len()
        ));
    }
    let a = field(lines[0], "answers the request").ok_or_else(|| {
        format!(
            "first line is not `Answers the request: yes|no`: {:?}",
            lines[0]
        )
    })?;
    let answers = match a.trim_end_matches('.').to_ascii_lowercase().as_str() {
        "yes" => true,
        "no" => false,
        other => {
            return Err(format!(
                "`Answers the request:` must be yes or no, got {other:?}"
            ))
        }
    };
    let u = field(lines[1], "unsupported")
        .ok_or_else(|| format!("second line is not `Unsupported: …`: {:?}", lines[1]))?;
    let none = matches!(
        u.trim_end_matches('.').to_ascii_lowercase().as_str(),
        "none" | "-" | "" | "nothing" | "n/a"
    );
    let unsupported = if none {
        Vec::new()
    } else {
        u.split(';')
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    Ok(Verification {
        answers,
        unsupported,
    })
}

/// A parsed curation output: the reasoning text before the score line and the score 1–5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreParse {
    pub reasoning: String,
    pub score: u8,
}

fn strip_decoration(s: &str) -> &str {
    s.trim()
        .trim_matches(|c: char| c == '*' || c == '_' || c == '#' || c == '`' || c.is_whitespace())
}

/// Parse one line as `Score: N` (case-insensitive, optional markdown emphasis
/// around it, optional `/5`, optional final period). Returns the number as
/// written (range checked by the caller), or `None` if the line is not a score line.
fn score_line(line: &str) -> Option<Result<u32, String>> {
    let l = strip_decoration(line);
    let lower = l.to_ascii_lowercase();
    let rest = lower.strip_prefix("score")?;
    let rest = strip_decoration(rest.trim_start());
    let rest = rest.strip_prefix(':')?;
    let mut rest = strip_decoration(rest);
    rest = rest.strip_suffix('.').unwrap_or(rest);
    let rest = match rest.split_once('/') {
        Some((n, d)) if d.trim() == "5" => n.trim(),
        Some(_) => return Some(Err(format!("score line `{l}` has a scale other than /5"))),
        None => rest,
    };
    Some(match rest.parse::<u32>() {
        Ok(n) => Ok(n),
        Err(_) => Err(format!("score line `{l}` does not end in a whole number")),
    })
}

/// Parse a curation output whose last non-empty line must be `Score: N`, N in 1..=5.
///
/// Rules: the last non-empty line is the score line; text after it is an
/// error ("trailing text"); several score lines are accepted only if they all
/// give the same number; out-of-range numbers are rejected.
///
/// Errors: a reason string suitable for [`crate::record::ParseStatus::Failed`].
pub fn parse_score(raw: &str) -> Result<ScoreParse, String> {
    let lines: Vec<&str> = raw.lines().collect();
    let Some(last_idx) = lines.iter().rposition(|l| !l.trim().is_empty()) else {
        return Err("empty output".into());
    };
    let mut found = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if let Some(r) = score_line(l) {
            found.push((i, r));
        }
    }
    let Some((i, last)) = found.last().cloned() else {
        return Err("no `Score: N` line".into());
    };
    if i != last_idx {
        return Err("text after the `Score: N` line (trailing text)".into());
    }
    let n = last?;
    if !(1..=5).contains(&n) {
        return Err(format!("score {n} out of range 1-5"));
    }
    for (_, other) in &found[..found.len() - 1] {
        if other.as_ref().ok() != Some(&n) {
            return Err("several score lines that disagree".into());
        }
    }
    let reasoning = lines[..i].join("\n").trim().to_string();
    let reasoning = reasoning
        .strip_prefix("Reasoning:")
        .map(|s| s.trim().to_string())
        .unwrap_or(reasoning);
    Ok(ScoreParse {
        reasoning,
        score: n as u8,
    })
}

/// Opening and closing markers of a rewritten response (Nguyen et al. 2024, §3).
pub const RES_OPEN: &str = "[RES]";
/// See [`RES_OPEN`].
pub const RES_CLOSE: &str = "[/RES]";

/// Extract the response between the first `[RES]` and the following `[/RES]`.
///
/// Errors: missing opening marker, missing closing marker (with a note when
/// the output hit `max_tokens`), or an empty block.
pub fn extract_res(raw: &str, finish: FinishReason) -> Result<String, String> {
    let Some(start) = raw.find(RES_OPEN) else {
        return Err("no [RES] marker".into());
    };
    let body = &raw[start + RES_OPEN.len()..];
    let Some(end) = body.find(RES_CLOSE) else {
        return Err(match finish {
            FinishReason::Length => "no closing [/RES]: output cut at max_tokens".into(),
            FinishReason::Stop => "no closing [/RES]".into(),
        });
    };
    let text = body[..end].trim();
    if text.is_empty() {
        return Err("empty [RES] block".into());
    }
    Ok(text.to_string())
}

/// Keep what can be kept of a rewrite cut at its token budget (no closing
/// `[/RES]`): the text after `[RES]` up to the first stray tag a model
/// writes when it means to stop (`[END]`, `[_RES]`, `[ RES]`: `[`, at most
/// one of `/`, `_` or a space, then two or more capitals), or without one up
/// to the end of its last complete sentence; an unclosed code fence is cut
/// off. Ours: small models that lose the closing marker mostly end this
/// way (BENCHMARKS.md "Work not spent").
///
/// Errors: no `[RES]`, or nothing left that ends a sentence.
pub fn salvage_res(raw: &str) -> Result<String, String> {
    let Some(start) = raw.find(RES_OPEN) else {
        return Err("no [RES] marker".into());
    };
    let mut body = &raw[start + RES_OPEN.len()..];
    if let Some(i) = stray_tag(body) {
        body = &body[..i];
    } else {
        // the end of the last complete sentence: . ! ? then whitespace (or a closing fence line)
        let b = body.as_bytes();
        let mut end = None;
        for i in 0..b.len() {
            if matches!(b[i], b'.' | b'!' | b'?') && b.get(i + 1).is_some_and(|c| c.is_ascii_whitespace()) {
                end = Some(i + 1);
            }
        }
        body = &body[..end.ok_or("no complete sentence")?];
    }
    if body.matches("```").count() % 2 == 1 {
        body = &body[..body.rfind("```").expect("counted")];
    }
    let text = body.trim();
    if text.split_whitespace().count() < 4 {
        return Err("fewer than four words before the cut".into());
    }
    Ok(text.to_string())
}

/// Byte offset of the first stray tag in `s` (see [`salvage_res`]).
fn stray_tag(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    for (i, _) in s.match_indices('[') {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'/' | b'_' | b' ')) {
            j += 1;
        }
        let caps = b[j..].iter().take_while(|c| c.is_ascii_uppercase()).count();
        if caps >= 2 && matches!(b.get(j + caps), Some(b']' | b' ') | None) {
            return Some(i);
        }
    }
    None
}

/// Labels a model may put before the instruction; stripped once, case-insensitive.
const LABELS: &[&str] = &[
    "instruction:",
    "question:",
    "prompt:",
    "request:",
    "user:",
    "query:",
];

/// Clean a backtranslated instruction: trim, drop one leading label such as
/// `Instruction:` and one pair of surrounding quotes.
///
/// Errors: empty after cleaning, output cut at `max_tokens`, or longer than `max_chars`.
pub fn clean_instruction(
    raw: &str,
    finish: FinishReason,
    max_chars: usize,
) -> Result<String, String> {
    if finish == FinishReason::Length {
        return Err("output cut at max_tokens".into());
    }
    let mut s = strip_decoration(raw);
    let lower = s.to_ascii_lowercase();
    for l in LABELS {
        if lower.starts_with(l) {
            s = strip_decoration(&s[l.len()..]);
            break;
        }
    }
    for (a, b) in [('"', '"'), ('“', '”'), ('\'', '\'')] {
        if s.len() >= 2 && s.starts_with(a) && s.ends_with(b) {
            s = s[a.len_utf8()..s.len() - b.len_utf8()].trim();
            break;
        }
    }
    if s.is_empty() {
        return Err("empty instruction".into());
    }
    let n = s.chars().count();
    if n > max_chars {
        return Err(format!(
            "instruction is {n} chars, over the {max_chars} limit"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn score_valid_forms() {
        let p = parse_score("Reasoning: clear and complete.\nScore: 4").unwrap();
        assert_eq!(p.score, 4);
        assert_eq!(p.reasoning, "clear and complete.");
        assert_eq!(parse_score("ok\n**Score: 5**\n\n").unwrap().score, 5);
        assert_eq!(parse_score("ok\nscore: 3/5").unwrap().score, 3);
        assert_eq!(parse_score("Score:2.").unwrap().score, 2);
        assert_eq!(parse_score("**Score:** 1").unwrap().score, 1);
    }

    #[test]
    fn score_missing() {
        assert_eq!(parse_score("").unwrap_err(), "empty output");
        assert_eq!(
            parse_score("I think this is a 4.").unwrap_err(),
            "no `Score: N` line"
        );
        assert!(parse_score("Score: good")
            .unwrap_err()
            .contains("whole number"));
    }

    #[test]
    fn score_out_of_range() {
        assert_eq!(
            parse_score("Score: 0").unwrap_err(),
            "score 0 out of range 1-5"
        );
        assert_eq!(
            parse_score("Score: 6").unwrap_err(),
            "score 6 out of range 1-5"
        );
        assert!(parse_score("Score: 4/10").unwrap_err().contains("scale"));
    }

    #[test]
    fn score_several() {
        assert_eq!(parse_score("Score: 4\nreason\nScore: 4").unwrap().score, 4);
        assert_eq!(
            parse_score("Score: 3\nreason\nScore: 5").unwrap_err(),
            "several score lines that disagree"
        );
    }

    #[test]
    fn score_trailing_text() {
        assert!(parse_score("Score: 5\nHope this helps!")
            .unwrap_err()
            .contains("trailing"));
    }

    #[test]
    fn res_extraction() {
        assert_eq!(
            extract_res("sure [RES] Hello\nworld [/RES] bye", FinishReason::Stop).unwrap(),
            "Hello\nworld"
        );
        assert_eq!(
            extract_res("no markers", FinishReason::Stop).unwrap_err(),
            "no [RES] marker"
        );
        assert!(extract_res("[RES] cut", FinishReason::Length)
            .unwrap_err()
            .contains("max_tokens"));
        assert_eq!(
            extract_res("[RES] open", FinishReason::Stop).unwrap_err(),
            "no closing [/RES]"
        );
        assert_eq!(
            extract_res("[RES]  [/RES]", FinishReason::Stop).unwrap_err(),
            "empty [RES] block"
        );
        // first block wins
        assert_eq!(
            extract_res("[RES]a[/RES][RES]b[/RES]", FinishReason::Stop).unwrap(),
            "a"
        );
    }

    #[test]
    fn salvage_of_cut_rewrites() {
        // a stray tag where the model meant to stop
        assert_eq!(
            salvage_res("[RES] The tourists were found. They walked back. [END] [ RES] The tourists").unwrap(),
            "The tourists were found. They walked back."
        );
        assert_eq!(salvage_res("[RES]It is done here now. [_RES] again").unwrap(), "It is done here now.");
        // no tag: up to the last complete sentence, an open fence dropped
        assert_eq!(
            salvage_res("[RES]Use `dir()` to list names. It returns a list.\n\n```python\nx = dir(").unwrap(),
            "Use `dir()` to list names. It returns a list."
        );
        assert_eq!(
            salvage_res("[RES]Call it like this:\n```\nf(1)\n```\nThen it works. And then the").unwrap(),
            "Call it like this:\n```\nf(1)\n```\nThen it works."
        );
        // lists and lower-case brackets are not tags
        assert_eq!(
            salvage_res("[RES]Use a[0] or [1, 2] in Python. More text without end").unwrap(),
            "Use a[0] or [1, 2] in Python."
        );
        assert!(salvage_res("[RES] no sentence ends here").is_err());
        assert!(salvage_res("[RES] Ok. [END]").is_err());
        assert!(salvage_res("nothing").is_err());
    }

    #[test]
    fn instruction_cleanup() {
        let f = FinishReason::Stop;
        assert_eq!(
            clean_instruction("  Instruction: How do I boil an egg? ", f, 100).unwrap(),
            "How do I boil an egg?"
        );
        assert_eq!(
            clean_instruction("\"Explain X.\"", f, 100).unwrap(),
            "Explain X."
        );
        assert_eq!(
            clean_instruction("**Question:** Why?", f, 100).unwrap(),
            "Why?"
        );
        assert_eq!(
            clean_instruction("   ", f, 100).unwrap_err(),
            "empty instruction"
        );
        assert!(clean_instruction("abc", FinishReason::Length, 100).is_err());
        assert!(clean_instruction("abcdef", f, 3)
            .unwrap_err()
            .contains("over the 3 limit"));
    }
}

#[cfg(test)]
mod verification_tests {
    use super::*;

    #[test]
    fn verdicts_parse_strictly() {
        let v = parse_verification("Answers the request: yes\nUnsupported: none").unwrap();
        assert_eq!(
            v,
            Verification {
                answers: true,
                unsupported: vec![]
            }
        );
        let v = parse_verification(
            "**Answers the request:** No\nUnsupported: won in 1998; born in Oslo\n",
        )
        .unwrap();
        assert_eq!(
            v,
            Verification {
                answers: false,
                unsupported: vec!["won in 1998".into(), "born in Oslo".into()]
            }
        );
        assert!(parse_verification("").unwrap_err().contains("empty"));
        assert!(
            parse_verification("Answers the request: maybe\nUnsupported: none")
                .unwrap_err()
                .contains("yes or no")
        );
        assert!(
            parse_verification("Unsupported: none\nAnswers the request: yes")
                .unwrap_err()
                .contains("first line")
        );
        assert!(parse_verification(
            "Sure! Here is my check.\nAnswers the request: yes\nUnsupported: none"
        )
        .unwrap_err()
        .contains("2 lines"));
    }
}
