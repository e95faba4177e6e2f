//! Prompt templates: minijinja files (ours, overridable by path) rendered into
//! chat messages.
//!
//! Format: the rendered text is split at lines of the form `@@ system`,
//! `@@ user` or `@@ assistant`; each starts a message whose content is the
//! trimmed text up to the next marker. Text before the first marker must be
//! blank. Undefined variables are errors (strict mode), so a user template
//! that names a variable the stage does not supply fails loudly.

use anyhow::{bail, Context, Result};
use backforth_inference::ChatMessage;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;
use std::path::Path;

/// Built-in templates, compiled into the binary: (name, source).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "backtranslate_fewshot",
        include_str!("../prompts/backtranslate_fewshot.j2"),
    ),
    (
        "backtranslate_finetuned",
        include_str!("../prompts/backtranslate_finetuned.j2"),
    ),
    ("curate", include_str!("../prompts/curate.j2")),
    ("rewrite", include_str!("../prompts/rewrite.j2")),
    ("distill", include_str!("../prompts/distill.j2")),
    ("verify", include_str!("../prompts/verify.j2")),
    (
        "backtranslate_zeroshot",
        include_str!("../prompts/backtranslate_zeroshot.j2"),
    ),
    (
        "backtranslate_pairs",
        include_str!("../prompts/backtranslate_pairs.j2"),
    ),
    ("polish", include_str!("../prompts/polish.j2")),
    ("rephrase_qa", include_str!("../prompts/rephrase_qa.j2")),
    ("rephrase_wiki", include_str!("../prompts/rephrase_wiki.j2")),
    ("rephrase_distill", include_str!("../prompts/rephrase_distill.j2")),
    ("rephrase_knowledge", include_str!("../prompts/rephrase_knowledge.j2")),
    ("doc_rubric", include_str!("../prompts/doc_rubric.j2")),
];

/// Prefix of a template setting that names a built-in template instead of a
/// file (`template = "builtin:polish"`), so presets need no files.
pub const BUILTIN_PREFIX: &str = "builtin:";

const CURATE_GRAMMAR: &str = include_str!("../prompts/curate.gbnf");

/// The GBNF grammar for rewrites: `[RES]` answer `[/RES]`, nothing outside,
/// so a model cannot stop before closing the block (it can still hit max_tokens).
pub const REWRITE_GRAMMAR: &str = include_str!("../prompts/rewrite.gbnf");

/// The GBNF grammar (llama.cpp syntax) that constrains curation outputs to
/// "Reasoning: <one line>\nScore: N". The reasoning is capped at
/// `max_tokens - 24` characters (at most 600, at least 8): a token yields at
/// least one character and the fixed parts take at most 20 tokens, so the
/// score line is always reached before `max_tokens`.
pub fn curate_grammar(max_tokens: u32) -> String {
    let max = max_tokens.saturating_sub(24).clamp(8, 600);
    CURATE_GRAMMAR.replace("REASON_MAX", &max.to_string())
}

/// The GBNF grammar for verification: `Answers the request: yes|no`, then
/// `Unsupported: none` or up to five statements of 3–160 characters
/// separated by `; ` (see [`crate::parse::parse_verification`]).
pub const VERIFY_GRAMMAR: &str = include_str!("../prompts/verify.gbnf");

/// A loaded, syntax-checked template.
pub struct PromptTemplate {
    /// Built-in name or the file path it was loaded from.
    pub name: String,
    /// blake3 of the source, 16 hex chars (recorded in provenance and stage keys).
    pub hash: String,
    env: Environment<'static>,
}

impl PromptTemplate {
    /// Compile a template from source. Errors: template syntax errors.
    pub fn from_source(name: &str, source: String) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        let hash = crate::hash::hex(source.as_bytes(), 16);
        env.add_template_owned("t".to_string(), source)
            .with_context(|| format!("template {name}: syntax error"))?;
        Ok(PromptTemplate {
            name: name.to_string(),
            hash,
            env,
        })
    }

    /// A built-in template by name (see [`BUILTIN`]).
    pub fn builtin(name: &str) -> Result<Self> {
        let (_, src) = BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .with_context(|| format!("no built-in template named {name}"))?;
        Self::from_source(name, src.to_string())
    }

    /// `path` if non-empty (`builtin:NAME` names a built-in template),
    /// else the built-in `default`. Errors: unreadable file, unknown
    /// built-in name, template syntax.
    pub fn load(path: &str, default: &str) -> Result<Self> {
        if path.is_empty() {
            return Self::builtin(default);
        }
        if let Some(name) = path.strip_prefix(BUILTIN_PREFIX) {
            return Self::builtin(name);
        }
        let src = std::fs::read_to_string(Path::new(path))
            .with_context(|| format!("reading template {path}"))?;
        Self::from_source(path, src)
    }

    /// `path` if non-empty, else `source` under the built-in name `name`:
    /// for crates that ship their own templates (the judge, the evaluation
    /// generator). Errors: unreadable file, template syntax.
    pub fn load_or(path: &str, name: &str, source: &str) -> Result<Self> {
        if path.is_empty() {
            return Self::from_source(name, source.to_string());
        }
        Self::load(path, name)
    }

    /// Render with `ctx` and split into chat messages.
    /// Errors: undefined variables, no message, text before the first marker, unknown role.
    pub fn render(&self, ctx: impl Serialize) -> Result<Vec<ChatMessage>> {
        let text = self
            .env
            .get_template("t")?
            .render(ctx)
            .with_context(|| format!("rendering template {}", self.name))?;
        split_messages(&text).with_context(|| format!("template {}", self.name))
    }
}

/// Split rendered text into messages at `@@ role` marker lines.
pub fn split_messages(text: &str) -> Result<Vec<ChatMessage>> {
    let mut out: Vec<ChatMessage> = Vec::new();
    let mut cur: Option<(String, Vec<&str>)> = None;
    for line in text.split('\n') {
        if let Some(role) = line.trim_end().strip_prefix("@@ ") {
            let role = role.trim();
            if !matches!(role, "system" | "user" | "assistant") {
                bail!("unknown role `{role}` in marker line (expected system, user or assistant)");
            }
            if let Some((r, lines)) = cur.take() {
                out.push(ChatMessage {
                    role: r,
                    content: lines.join("\n").trim().to_string(),
                });
            }
            cur = Some((role.to_string(), Vec::new()));
        } else if let Some((_, lines)) = cur.as_mut() {
            lines.push(line);
        } else if !line.trim().is_empty() {
            bail!(
                "text before the first `@@ role` marker: {:?}",
                line.chars().take(60).collect::<String>()
            );
        }
    }
    if let Some((r, lines)) = cur.take() {
        out.push(ChatMessage {
            role: r,
            content: lines.join("\n").trim().to_string(),
        });
    }
    if out.is_empty() {
        bail!("the template produced no `@@ role` message");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn curate_grammar_bound_follows_max_tokens() {
        assert!(curate_grammar(256).contains("[^\\n]{8,232}"));
        assert!(curate_grammar(4000).contains("{8,600}"));
        assert!(curate_grammar(10).contains("{8,8}"));
        assert!(!curate_grammar(100).contains("REASON_MAX"));
    }

    #[test]
    fn all_builtins_compile() {
        for (n, _) in BUILTIN {
            PromptTemplate::builtin(n).unwrap();
        }
    }

    #[test]
    fn fewshot_renders_k_pairs_in_order() {
        let t = PromptTemplate::builtin("backtranslate_fewshot").unwrap();
        let seeds = json!([{"instruction": "Q1?", "response": "A1"}, {"instruction": "Q2?", "response": "A2"}]);
        let m = t
            .render(json!({"text": "The doc.", "seeds": seeds}))
            .unwrap();
        let roles: Vec<_> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(m[1].content, "Reply:\nA1");
        assert_eq!(m[2].content, "Q1?");
        assert_eq!(m[4].content, "Q2?");
        assert_eq!(m[5].content, "Reply:\nThe doc.");
    }

    #[test]
    fn pairs_template_numbers_passages_and_shows_seeds_as_one_example() {
        let t = PromptTemplate::builtin("backtranslate_pairs").unwrap();
        let passages = json!([{"n": 1, "text": "First part."}, {"n": 2, "text": "Second part."}]);
        let seeds = json!([{"instruction": "Line one\nline two?", "response": "An answer."}, {"instruction": "Q2?", "response": "A2."}]);
        let m = t.render(json!({"passages": passages, "pairs": 3, "seeds": seeds})).unwrap();
        let roles: Vec<_> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(m[0].content.contains("up to 3 passages"), "{}", m[0].content);
        assert!(m[0].content.contains("Passage: <its number>\nInstruction: <the request>"));
        assert_eq!(m[1].content.trim(), "[1] An answer.\n\n[2] A2.");
        assert_eq!(m[2].content.trim(), "Passage: 1\nInstruction: Line one line two?\nPassage: 2\nInstruction: Q2?");
        assert_eq!(m[3].content.trim(), "[1] First part.\n\n[2] Second part.");
        // zero-shot: no example turns
        let z = t.render(json!({"passages": passages, "pairs": 2, "seeds": []})).unwrap();
        assert_eq!(z.len(), 2);
    }

    #[test]
    fn curate_and_rewrite_carry_both_fields() {
        for name in ["curate", "rewrite"] {
            let t = PromptTemplate::builtin(name).unwrap();
            let m = t
                .render(json!({"instruction": "INSTR-XYZ", "text": "DOC-ABC"}))
                .unwrap();
            let user = &m.last().unwrap().content;
            assert!(
                user.contains("INSTR-XYZ") && user.contains("DOC-ABC"),
                "{name}"
            );
        }
        let m = PromptTemplate::builtin("rewrite")
            .unwrap()
            .render(json!({"instruction": "i", "text": "t"}))
            .unwrap();
        assert!(m[1].content.contains("[RES]") && m[1].content.contains("[/RES]"));
    }

    #[test]
    fn missing_variable_is_an_error() {
        let t = PromptTemplate::builtin("curate").unwrap();
        let e = t.render(json!({"text": "only text"})).unwrap_err();
        assert!(format!("{e:#}").contains("undefined"), "{e:#}");
    }

    #[test]
    fn user_template_from_source_and_bad_markers() {
        let t = PromptTemplate::from_source("mine", "@@ user\nSay {{ text }}".into()).unwrap();
        assert_eq!(
            t.render(json!({"text": "hi"})).unwrap()[0].content,
            "Say hi"
        );
        assert!(split_messages("stray\n@@ user\nx").is_err());
        assert!(split_messages("@@ robot\nx").is_err());
        assert!(split_messages("   \n").is_err());
        assert!(PromptTemplate::from_source("bad", "{% for %}".into()).is_err());
        // the hash changes with the text
        let t2 = PromptTemplate::from_source("mine", "@@ user\nSay {{ text }}!".into()).unwrap();
        assert_ne!(t.hash, t2.hash);
    }
}
