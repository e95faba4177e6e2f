//! Stages defined in the config, no Rust: a `[stage.NAME]` section names a
//! template, an optional grammar, an output parser, an input and a keep
//! rule. Such a stage runs like a built-in one (cache, resume, batch files,
//! shards, summary, exports, report); see [`super::def::StageDef`].
//!
//! ```toml
//! [stage.title]
//! input = "curate"          # "documents" or an earlier stage's name
//! when = "kept"             # which input records: all | parsed | kept
//! template = "title.j2"     # minijinja, `@@ user` markers (crate::prompt)
//! parser = { kind = "tag", tag = "TITLE" }
//! max_tokens = 48
//! export = "outputs"        # none | outputs (<name>.jsonl) | pairs (checked like rewrites)
//! ```

use backforth_inference::FinishReason;
use serde::{Deserialize, Serialize};

/// Which records of its input a user-defined stage takes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum When {
    /// Every input record.
    All,
    /// Records whose input stage output parsed (every document when the input is the documents).
    #[default]
    Parsed,
    /// Pairs the method keeps: an instruction and a curation score ≥
    /// `curate.keep_min_score` (and the input stage's output parsed).
    Kept,
}

/// Where a user-defined stage's results go at export.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ExportAs {
    /// Only in the stage file.
    None,
    /// `<name>.jsonl`: per record that parsed, `{id, source, instruction, output, score}` in input order.
    #[default]
    Outputs,
    /// `<name>.jsonl` (+ ShareGPT, Parquet) as instruction–response examples
    /// of the kept pairs, through the same checks as rewrites.
    Pairs,
}

/// How a user-defined stage's output is read. Every failure keeps the raw
/// text in the record with the reason.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OutputParser {
    /// The trimmed text; empty or cut at `max_tokens` is a failure.
    Text,
    /// The text between the first `[TAG]` and the next `[/TAG]`.
    Tag {
        /// The marker name, e.g. `TITLE` for `[TITLE]…[/TITLE]`.
        tag: String,
    },
    /// The last non-empty line is `<label>: N` with N an integer in
    /// `min..=max`; the text above it is the value.
    Score {
        /// Line label; default `Score`.
        #[serde(default = "default_label")]
        label: String,
        #[serde(default = "one")]
        min: u8,
        #[serde(default = "five")]
        max: u8,
    },
    /// One JSON object (a ```json fence around it is allowed) with these
    /// top-level keys; the value is the object as compact JSON.
    Json {
        #[serde(default)]
        required: Vec<String>,
    },
}

fn default_label() -> String {
    "Score".into()
}
fn one() -> u8 {
    1
}
fn five() -> u8 {
    5
}

/// A parsed output: the value kept in the record and, for score parsers, the score.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub value: String,
    pub score: Option<u8>,
}

impl OutputParser {
    /// Read `raw`. Errors: the reason, for [`crate::record::ParseStatus::Failed`].
    pub fn parse(&self, raw: &str, finish: FinishReason) -> Result<Parsed, String> {
        let cut = finish == FinishReason::Length;
        let plain = |value: String| Parsed { value, score: None };
        match self {
            OutputParser::Text => {
                let t = raw.trim();
                if cut {
                    Err("output cut at max_tokens".into())
                } else if t.is_empty() {
                    Err("empty output".into())
                } else {
                    Ok(plain(t.to_string()))
                }
            }
            OutputParser::Tag { tag } => {
                let (open, close) = (format!("[{tag}]"), format!("[/{tag}]"));
                let start = raw.find(&open).ok_or_else(|| format!("no {open} marker"))?;
                let body = &raw[start + open.len()..];
                let end = body.find(&close).ok_or_else(|| {
                    if cut {
                        format!("no closing {close}: output cut at max_tokens")
                    } else {
                        format!("no closing {close}")
                    }
                })?;
                let t = body[..end].trim();
                if t.is_empty() {
                    return Err(format!("empty {open} block"));
                }
                Ok(plain(t.to_string()))
            }
            OutputParser::Score { label, min, max } => {
                let lines: Vec<&str> = raw.lines().collect();
                let i = lines
                    .iter()
                    .rposition(|l| !l.trim().is_empty())
                    .ok_or("empty output")?;
                let last = lines[i].trim();
                let rest = last
                    .strip_prefix(label.as_str())
                    .and_then(|r| r.trim_start().strip_prefix(':'))
                    .ok_or_else(|| format!("last line is not `{label}: N`"))?;
                let n: u8 = rest
                    .trim()
                    .trim_end_matches('.')
                    .parse()
                    .map_err(|_| format!("`{label}:` is not followed by an integer"))?;
                if !(*min..=*max).contains(&n) {
                    return Err(format!("{label} {n} out of range {min}-{max}"));
                }
                Ok(Parsed {
                    value: lines[..i].join("\n").trim().to_string(),
                    score: Some(n),
                })
            }
            OutputParser::Json { required } => {
                let t = raw.trim();
                let t = t
                    .strip_prefix("```json")
                    .or_else(|| t.strip_prefix("```"))
                    .map(|x| x.trim_end().trim_end_matches("```"))
                    .unwrap_or(t)
                    .trim();
                let v: serde_json::Value = serde_json::from_str(t).map_err(|e| {
                    if cut {
                        format!("not JSON (output cut at max_tokens): {e}")
                    } else {
                        format!("not JSON: {e}")
                    }
                })?;
                let obj = v.as_object().ok_or("JSON is not an object")?;
                if let Some(k) = required.iter().find(|k| !obj.contains_key(k.as_str())) {
                    return Err(format!("JSON object lacks the key `{k}`"));
                }
                Ok(plain(v.to_string()))
            }
        }
    }
}

/// `[stage.NAME]`: a stage defined in the config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomStageConfig {
    /// `"documents"` or the name of an earlier stage (built-in or defined here).
    #[serde(default = "documents")]
    pub input: String,
    /// Which input records the stage takes.
    #[serde(default)]
    pub when: When,
    /// Template file, or `builtin:NAME` for a shipped one (minijinja; variables: `text`, `id`, `metadata`,
    /// `instruction`, `score`, `response` (the rewrite), `distillation`,
    /// `outputs.<stage>`: values of earlier stages, none where absent). Required.
    pub template: String,
    /// GBNF grammar file, or a built-in one (`builtin:res`: one
    /// `[RES]…[/RES]` block; `builtin:score`: `Reasoning:` / `Score: N`;
    /// `builtin:verify`); empty = none.
    #[serde(default)]
    pub grammar: String,
    /// How the output is read.
    #[serde(default = "text_parser")]
    pub parser: OutputParser,
    /// Model for this stage; empty = `model.path`.
    #[serde(default)]
    pub model: String,
    /// LoRA adapters; empty = `model.lora` when the stage uses `model.path`.
    #[serde(default)]
    pub lora: Vec<String>,
    #[serde(default = "temperature")]
    pub temperature: f64,
    #[serde(default = "top_p")]
    pub top_p: f64,
    #[serde(default = "max_tokens")]
    pub max_tokens: u32,
    /// Where the results go at export.
    #[serde(default)]
    pub export: ExportAs,
}

impl CustomStageConfig {
    /// The generation keys as one view (`grammar`: a grammar file is set).
    pub fn gen(&self) -> crate::stage::settings::GenSettings {
        crate::stage::settings::GenSettings {
            template: self.template.clone(),
            model: self.model.clone(),
            lora: self.lora.clone(),
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: self.max_tokens,
            grammar: !self.grammar.is_empty(),
        }
    }
}

fn documents() -> String {
    "documents".into()
}
fn text_parser() -> OutputParser {
    OutputParser::Text
}
fn temperature() -> f64 {
    0.0
}
fn top_p() -> f64 {
    1.0
}
fn max_tokens() -> u32 {
    256
}

#[cfg(test)]
mod tests {
    use super::*;
    const STOP: FinishReason = FinishReason::Stop;

    #[test]
    fn parsers_accept_and_refuse() {
        let tag = OutputParser::Tag { tag: "T".into() };
        assert_eq!(tag.parse("x [T] A title [/T] y", STOP).unwrap().value, "A title");
        assert!(tag.parse("[T] cut", FinishReason::Length).unwrap_err().contains("max_tokens"));
        assert!(tag.parse("[T] [/T]", STOP).is_err());
        let sc = OutputParser::Score { label: "Quality".into(), min: 0, max: 3 };
        let p = sc.parse("because\nQuality: 2\n", STOP).unwrap();
        assert_eq!((p.value.as_str(), p.score), ("because", Some(2)));
        assert!(sc.parse("Quality: 4", STOP).is_err());
        assert!(sc.parse("Quality: 2\nmore", STOP).is_err());
        let js = OutputParser::Json { required: vec!["a".into()] };
        assert_eq!(js.parse("```json\n{\"a\": 1}\n```", STOP).unwrap().value, "{\"a\":1}");
        assert!(js.parse("{\"b\": 1}", STOP).unwrap_err().contains("`a`"));
        assert!(js.parse("[1]", STOP).is_err());
        assert!(OutputParser::Text.parse("  ", STOP).is_err());
        assert!(OutputParser::Text.parse("ok", FinishReason::Length).is_err());
    }

    #[test]
    fn section_reads_from_toml_and_refuses_unknown_keys() {
        let c: CustomStageConfig = toml::from_str(
            "template = \"t.j2\"\nparser = { kind = \"score\", label = \"Q\" }\nwhen = \"kept\"\n",
        )
        .unwrap();
        assert_eq!(c.input, "documents");
        assert_eq!(c.when, When::Kept);
        assert_eq!(c.parser, OutputParser::Score { label: "Q".into(), min: 1, max: 5 });
        assert!(toml::from_str::<CustomStageConfig>("template = \"t\"\nk = 3\n").is_err());
        assert!(toml::from_str::<CustomStageConfig>(
            "template = \"t\"\nparser = { kind = \"tag\", tag = \"X\", label = \"Y\" }\n"
        )
        .is_err());
    }
}
