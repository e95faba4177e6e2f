//! The config sections of the five built-in stages: one type per stage,
//! holding only the keys that stage reads, so a key either acts or is
//! refused at load time (`deny_unknown_fields`).
//!
//! Every stage has the generation keys of [`GenSettings`] (template, model,
//! adapters, sampling); the backward stage adds few-shot settings, the
//! curation stage its keep rule, the grammar-constrained stages a `grammar`
//! switch. Sampling numbers are `f64` so that `backforth config` prints them
//! as written (`0.9`, not `0.8999999761581421`); requests carry them as
//! `f32` as before, so stage keys of earlier runs are unchanged.

use crate::seeds::SeedSelection;
use serde::{Deserialize, Serialize};

/// How the backward model is realised (Li et al. 2023 §2.2).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackwardMode {
    /// An instruct model prompted with k seed pairs shown as (response → instruction) turns.
    #[default]
    Fewshot,
    /// A model fine-tuned on flipped seed pairs: the text alone is the prompt.
    Finetuned,
    /// An instruct model asked with no seed pairs (LongForm's reverse
    /// instructions, Köksal et al. 2023): needs no seeds.
    Zeroshot,
}

/// The generation keys every stage has, as one view (what the runner,
/// key chain and dataset card read).
#[derive(Debug, Clone, PartialEq)]
pub struct GenSettings {
    /// Template file path; empty = the stage's built-in template.
    pub template: String,
    /// GGUF path (or server model name) for this stage only; empty = `model.path`.
    pub model: String,
    /// LoRA adapters for this stage's model; empty = `model.lora` when the
    /// stage runs on `model.path`.
    pub lora: Vec<String>,
    /// Softmax temperature, ≥ 0 (0 = greedy).
    pub temperature: f64,
    /// Nucleus mass in (0, 1].
    pub top_p: f64,
    /// Upper bound on generated tokens, > 0.
    pub max_tokens: u32,
    /// Constrain the output with the stage's GBNF grammar (stages without
    /// one: always false).
    pub grammar: bool,
}

/// Writes one built-in stage's section type: the shared generation keys
/// plus the stage's own.
macro_rules! stage_section {
    ($(#[$m:meta])* $name:ident, grammar: $g:tt { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            /// Template file path; empty = the built-in template.
            pub template: String,
            /// GGUF path (or server model name) for this stage only; empty = `model.path`.
            pub model: String,
            /// LoRA adapters for this stage's model (embedded backend); empty =
            /// `model.lora` when the stage runs on `model.path`, none otherwise.
            #[serde(default)]
            pub lora: Vec<String>,
            /// Softmax temperature, ≥ 0 (0 = greedy).
            pub temperature: f64,
            /// Nucleus sampling mass in (0, 1].
            pub top_p: f64,
            /// Upper bound on generated tokens.
            pub max_tokens: u32,
            $($(#[$fm])* pub $f: $t,)*
        }
        impl $name {
            /// The generation keys as one view.
            pub fn gen(&self) -> GenSettings {
                GenSettings {
                    template: self.template.clone(),
                    model: self.model.clone(),
                    lora: self.lora.clone(),
                    temperature: self.temperature,
                    top_p: self.top_p,
                    max_tokens: self.max_tokens,
                    grammar: stage_section!(@grammar self $g),
                }
            }
        }
    };
    (@grammar $s:ident yes) => { $s.grammar };
    (@grammar $s:ident no) => { false };
}

stage_section!(
    /// `[backtranslate]`: y → x̂ (Li et al. 2023 §2.2). Defaults: T = 1.0,
    /// top-p 0.9 (Nguyen et al. 2024 §4), 128 tokens.
    BacktranslateConfig, grammar: no {
        /// Few-shot prompting of an instruct model, or a fine-tuned backward model.
        mode: BackwardMode,
        /// Few-shot: seed pairs per prompt, drawn per record deterministically.
        k: usize,
        /// Few-shot: how the k seed pairs are chosen per document (`random`,
        /// or `nearest`: the most similar by TF-IDF).
        #[serde(default)]
        seed_selection: SeedSelection,
        /// Few-shot: seeds whose response is longer than this many characters are not used as examples.
        max_seed_chars: usize,
        /// Instructions longer than this many characters are parse failures.
        max_instruction_chars: usize,
        /// Pairs per document: 1 = one instruction for the whole text (the
        /// papers); N > 1 = the document is shown as numbered passages and
        /// the model writes up to N instructions, each answered by a
        /// different passage; each becomes a record of its own (id
        /// `<id>#p<k>`, text = its passage, `metadata.pair` = where it is),
        /// curated, rewritten, checked and exported like any other
        /// (`crate::pairs`). Few-shot: the seeds' instructions are shown as
        /// examples of style; not with `mode = "finetuned"`. 1..=20.
        #[serde(default = "one")]
        pairs_per_document: usize,
    }
);

stage_section!(
    /// `[curate]`: (x̂, y) → reasoning + score 1–5 (Li et al. 2023 §2.3).
    /// Defaults: greedy, 256 tokens, grammar on, keep score 5 (Nguyen et al.
    /// 2024 keep 5; Humpback A4 = 4, A5 = 5).
    CurateConfig, grammar: yes {
        /// Constrain the output to `Reasoning: …` / `Score: N` (GBNF).
        grammar: bool,
        /// Pairs with a curation score ≥ this are kept: the rewrite, verify and
        /// distill stages and the exports take only those. 1..=5.
        keep_min_score: u8,
        /// Send no curation request for a pair whose instruction the export's
        /// checks would fail anyway (the lexical instruction checks of
        /// `[checks]`: off-topic, fragment, question to the reader, copied
        /// sentence; no LLM). Counted in `summary.json` as
        /// `stages.curate.skipped_by_checks`. Off = the papers' pipeline.
        skip_failing_instructions: bool,
    }
);

stage_section!(
    /// `[rewrite]`: (x̂, y) → ŷ grounded in y (Nguyen et al. 2024 §3).
    /// Defaults: T = 1.0, top-p 0.9, 1024 tokens, grammar on.
    RewriteConfig, grammar: yes {
        /// Constrain the output to one `[RES]…[/RES]` block (GBNF).
        grammar: bool,
        /// Token budget that follows the document: a rewrite may generate at
        /// most `max(128, ceil(this × document characters / 4))` tokens, and
        /// never more than `max_tokens` (0 = off: always `max_tokens`). A
        /// faithful rewrite is about as long as its document (≤ 1.4× on the
        /// Python run, BENCHMARKS.md "Work not spent"); longer ones run away.
        max_tokens_per_document_token: f64,
        /// Keep a rewrite cut at its budget instead of failing it: the text
        /// before the first stray tag (`[END]`, `[_RES]`, …) or, without one,
        /// up to its last complete sentence; marked `salvaged` in the record
        /// and counted in the summary. Off = the papers' strict parse.
        salvage_cut: bool,
    }
);

stage_section!(
    /// `[distill]`: x̂ → a response written without y (the distillation
    /// baseline of Nguyen et al. 2024 Table 2). Defaults: T = 1.0, top-p 0.9, 1024 tokens.
    DistillConfig, grammar: no {}
);

stage_section!(
    /// `[verify]`: (y, x̂, ŷ) → does ŷ answer x̂, which statements y does not
    /// back (ours). Defaults: greedy, 192 tokens, grammar on.
    VerifyConfig, grammar: yes {
        /// Constrain the verdict to its two lines (GBNF).
        grammar: bool,
    }
);

fn one() -> usize {
    1
}

impl Default for BacktranslateConfig {
    fn default() -> Self {
        BacktranslateConfig {
            template: String::new(),
            model: String::new(),
            lora: vec![],
            temperature: 1.0,
            top_p: 0.9,
            max_tokens: 128,
            mode: BackwardMode::Fewshot,
            k: 3,
            seed_selection: SeedSelection::Random,
            max_seed_chars: 1200,
            max_instruction_chars: 1000,
            pairs_per_document: 1,
        }
    }
}

impl Default for CurateConfig {
    fn default() -> Self {
        CurateConfig {
            template: String::new(),
            model: String::new(),
            lora: vec![],
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 256,
            grammar: true,
            keep_min_score: 5,
            skip_failing_instructions: false,
        }
    }
}

impl Default for RewriteConfig {
    fn default() -> Self {
        RewriteConfig {
            template: String::new(),
            model: String::new(),
            lora: vec![],
            temperature: 1.0,
            top_p: 0.9,
            max_tokens: 1024,
            grammar: true,
            max_tokens_per_document_token: 0.0,
            salvage_cut: false,
        }
    }
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            template: String::new(),
            model: String::new(),
            lora: vec![],
            temperature: 1.0,
            top_p: 0.9,
            max_tokens: 1024,
        }
    }
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            template: String::new(),
            model: String::new(),
            lora: vec![],
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 192,
            grammar: true,
        }
    }
}

/// Keys the release before per-stage sections printed in every stage
/// section (one shared type), with the section that reads each. A config
/// file that holds one of them where it was never read still loads, with a
/// warning per key ([`crate::config::Config::load`]); a `--set` override
/// naming one is refused.
pub const LEGACY_KEYS: &[(&str, &str)] = &[
    ("mode", "backtranslate"),
    ("k", "backtranslate"),
    ("seed_selection", "backtranslate"),
    ("max_seed_chars", "backtranslate"),
    ("max_instruction_chars", "backtranslate"),
    ("grammar", "curate, rewrite or verify"),
    ("keep_min_score", "curate"),
];
