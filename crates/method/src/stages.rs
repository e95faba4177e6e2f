//! Running one stage over a stream of records: build prompts, hand requests
//! to a [`Backend`], parse outputs strictly, append each finished record to
//! the stage file at once. The stage never knows which backend runs it.

use crate::config::{BackwardMode, Config};
use crate::hash;
use crate::prompt::PromptTemplate;
use crate::record::{Generation, ParseStatus, Record, Sampling, Stage};
use crate::seeds::Seed;
use crate::stage::def::StageDef;
use crate::store::StageFile;
use anyhow::{Context, Result};
use backforth_inference::{Backend, GenOutput, GenRequest};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

/// What one invocation of a stage did (counts for this invocation only; the
/// run summary recounts totals from the stage file).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StageReport {
    /// Upstream records read.
    pub input: u64,
    /// Records the stage does not apply to (e.g. rewrite: score below the keep threshold).
    pub not_eligible: u64,
    /// Records already done under the same key by an earlier invocation.
    pub resumed: u64,
    /// Records generated now.
    pub generated: u64,
    pub parsed_ok: u64,
    pub parse_failed: u64,
    pub backend_errors: u64,
    pub prompt_tokens: u64,
    /// Of `prompt_tokens`, those the engine did not prefill (KV-cache prefix
    /// reuse, server prefix caches that report it, response-cache hits).
    pub prompt_tokens_reused: u64,
    pub completion_tokens: u64,
    /// Requests the backend returned without an answer (offline batch import:
    /// not in the results file); those records stay pending.
    pub left_pending: u64,
    /// Wall time of this invocation, seconds.
    pub wall_s: f64,
    /// Generated tokens per second of wall time.
    pub completion_tokens_per_s: f64,
    /// Prompt + generated tokens per second of wall time.
    pub total_tokens_per_s: f64,
}

impl StageReport {
    /// Count one answered request: its generation and the prompt tokens the
    /// engine reused for it.
    pub fn count(&mut self, g: &Generation, reused: u32) {
        self.generated += 1;
        self.prompt_tokens_reused += reused as u64;
        self.prompt_tokens += g.prompt_tokens as u64;
        self.completion_tokens += g.completion_tokens as u64;
        match &g.parse {
            ParseStatus::Ok => self.parsed_ok += 1,
            ParseStatus::Failed { .. } => self.parse_failed += 1,
            ParseStatus::Error { .. } => self.backend_errors += 1,
        }
    }
}

/// Everything a stage needs besides its input and backend.
pub struct StageSpec<'a> {
    /// The stage's definition (input, eligibility, template variables, parser).
    pub def: &'a StageDef,
    pub cfg: &'a Config,
    pub template: &'a PromptTemplate,
    /// Seed pairs usable as few-shot examples (already length-filtered).
    pub seeds: &'a [Seed],
    /// The stage key (see `pipeline::stage_keys`).
    pub key: &'a str,
    /// Model id recorded in provenance.
    pub model_id: &'a str,
    /// Index of `seeds` for `backtranslate.seed_selection = "nearest"`
    /// (`None`: random draws).
    pub seed_index: Option<&'a crate::seeds::SeedIndex>,
}

impl StageSpec<'_> {
    /// Pick the few-shot seeds for a record: k distinct pairs from an RNG
    /// seeded by (run seed, record id), so the draw is reproducible per record.
    pub fn pick_seeds(&self, id: &str) -> Vec<&Seed> {
        let k = self.cfg.backtranslate.k.min(self.seeds.len());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(hash::derive_seed(
            self.cfg.model.seed,
            "fewshot",
            id,
        ));
        rand::seq::index::sample(&mut rng, self.seeds.len(), k)
            .into_iter()
            .map(|i| &self.seeds[i])
            .collect()
    }

    /// The few-shot seeds for a record: the k nearest to its text when a
    /// [`crate::seeds::SeedIndex`] is given, else [`Self::pick_seeds`].
    pub fn seeds_for(&self, r: &Record) -> Vec<&Seed> {
        match self.seed_index {
            Some(ix) => {
                let k = self.cfg.backtranslate.k.min(self.seeds.len());
                ix.nearest(&r.text, k)
                    .into_iter()
                    .map(|i| &self.seeds[i])
                    .collect()
            }
            None => self.pick_seeds(&r.id),
        }
    }

    /// Render the prompt for a record. Errors: template rendering (a config problem).
    pub fn request(&self, r: &Record, tag: u64) -> Result<GenRequest> {
        let fewshot = self.def.builtin_stage() == Some(Stage::Backtranslate)
            && self.cfg.backtranslate.mode == BackwardMode::Fewshot;
        let seeds = if fewshot { self.seeds_for(r) } else { vec![] };
        let messages = self.template.render(self.def.context(r, &seeds, self.cfg))?;
        Ok(GenRequest {
            tag,
            messages,
            sampling: self.sampling(r),
            grammar: self.def.grammar(self.cfg),
            raw_prompt: self.cfg.model.raw_prompt,
            top_logprobs: 0,
        })
    }

    fn sampling(&self, r: &Record) -> Sampling {
        let g = &self.def.gen;
        Sampling {
            temperature: g.temperature as f32,
            top_p: g.top_p as f32,
            max_tokens: self.def.max_tokens(r, self.cfg),
            seed: hash::derive_seed(self.cfg.model.seed, &self.def.name, &r.id),
            stop: vec![],
        }
    }

    /// Turn a backend result into a [`Generation`] (parsing strictly; raw text always kept).
    pub fn interpret(&self, r: &Record, res: Result<GenOutput, String>) -> Generation {
        let mut g = Generation {
            value: None,
            score: None,
            parse: ParseStatus::Ok,
            raw: String::new(),
            model: self.model_id.to_string(),
            sampling: self.sampling(r),
            template: self.template.name.clone(),
            template_hash: self.template.hash.clone(),
            stage_key: self.key.to_string(),
            prompt_tokens: 0,
            completion_tokens: 0,
            finish_reason: "error".into(),
            verdict: None,
            salvaged: false,
            pairs: vec![],
        };
        let out = match res {
            Ok(o) => o,
            Err(e) => {
                g.parse = ParseStatus::Error { error: e };
                return g;
            }
        };
        g.prompt_tokens = out.prompt_tokens;
        g.completion_tokens = out.completion_tokens;
        g.finish_reason = out.finish.as_str().into();
        match self.def.interpret(r, &out, self.cfg) {
            Ok(i) => {
                g.value = Some(i.value);
                g.score = i.score;
                g.verdict = i.verdict;
                g.salvaged = i.salvaged;
                g.pairs = i.pairs;
            }
            Err(reason) => g.parse = ParseStatus::Failed { reason },
        }
        g.raw = out.text;
        g
    }
}

/// Progress reporting hook: `(records_done_now, prompt_tokens_now, completion_tokens_now, elapsed_s)`.
pub type ProgressFn<'a> = dyn FnMut(u64, u64, u64, f64) + 'a;

/// Run one stage over `input` (upstream records in order), appending finished
/// records to `file` (opened with [`StageFile::open`] under `spec.key`).
/// Ids already done under that key are skipped.
/// Errors: I/O on the stage file, template rendering, fatal backend errors.
pub fn run_stage(
    spec: &StageSpec<'_>,
    backend: &mut dyn Backend,
    input: impl Iterator<Item = Record>,
    mut file: StageFile,
    progress: &mut ProgressFn<'_>,
) -> Result<StageReport> {
    let start = Instant::now();
    let done = std::mem::take(&mut file.done);
    let report = RefCell::new(StageReport::default());
    let inflight: RefCell<HashMap<u64, Record>> = RefCell::new(HashMap::new());
    let build_error: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let mut input = input;
    let mut tag = 0u64;
    let mut requests = std::iter::from_fn(|| loop {
        if build_error.borrow().is_some() {
            return None;
        }
        let r = input.next()?;
        let mut rep = report.borrow_mut();
        rep.input += 1;
        if done.contains(&r.id) {
            rep.resumed += 1;
            continue;
        }
        if !spec.def.eligible(&r, spec.cfg) {
            rep.not_eligible += 1;
            continue;
        }
        drop(rep);
        tag += 1;
        match spec.request(&r, tag) {
            Ok(req) => {
                inflight.borrow_mut().insert(tag, r);
                return Some(req);
            }
            Err(e) => {
                *build_error.borrow_mut() = Some(e.context(format!(
                    "building the {} prompt for record {}",
                    spec.def.name,
                    r.id
                )));
                return None;
            }
        }
    });
    let mut sink = |tag: u64, res: Result<GenOutput, String>| -> Result<()> {
        let mut r = inflight
            .borrow_mut()
            .remove(&tag)
            .context("backend returned an unknown request tag")?;
        let reused = res
            .as_ref()
            .map(|o| o.cached_prompt_tokens.min(o.prompt_tokens))
            .unwrap_or(0);
        let g = spec.interpret(&r, res);
        {
            let mut rep = report.borrow_mut();
            rep.count(&g, reused);
            progress(
                rep.generated,
                rep.prompt_tokens,
                rep.completion_tokens,
                start.elapsed().as_secs_f64(),
            );
        }
        r.set_generation(&spec.def.name, g);
        file.append(&r)
    };
    backend.generate(&mut requests, &mut sink)?;
    drop(requests);
    if let Some(e) = build_error.into_inner() {
        return Err(e);
    }
    let mut rep = report.into_inner();
    rep.left_pending = inflight.borrow().len() as u64;
    if rep.left_pending > 0 {
        tracing::warn!(
            "{}: {} records got no answer and stay pending",
            spec.def.name,
            rep.left_pending
        );
    }
    rep.wall_s = start.elapsed().as_secs_f64();
    if rep.wall_s > 0.0 {
        rep.completion_tokens_per_s = rep.completion_tokens as f64 / rep.wall_s;
        rep.total_tokens_per_s = (rep.completion_tokens + rep.prompt_tokens) as f64 / rep.wall_s;
    }
    Ok(rep)
}

/// Totals recounted from a stage file for the current key (resume-proof).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StageTotals {
    /// Records in the file under the current key.
    pub done: u64,
    pub parsed_ok: u64,
    pub parse_failed: u64,
    pub backend_errors: u64,
    /// Outputs cut at their budget and kept in part (`rewrite.salvage_cut`; among `parsed_ok`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub salvaged: u64,
    /// Curate with `curate.skip_failing_instructions`: pairs sent no request
    /// because the instruction checks would drop them, and why (a pair can
    /// have several reasons).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_by_checks: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub skip_reasons: BTreeMap<String, u64>,
    /// Backtranslate with `pairs_per_document` > 1: the pairs written (each a
    /// record for the stages after it).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub pairs: u64,
    /// Generated tokens of outputs that did not parse (the waste).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failed_completion_tokens: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Parse-failure and error reasons with counts.
    pub failure_reasons: BTreeMap<String, u64>,
    /// Scoring stages: records per score.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub score_histogram: BTreeMap<String, u64>,
    /// Curate only: records with score ≥ curate.keep_min_score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<u64>,
    /// Curate only: kept / done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_share: Option<f64>,
    /// Curate only: share of outputs that parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parsed_share: Option<f64>,
    /// Cost in USD of all tokens of this stage, when `http.usd_per_million_*` are set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl StageTotals {
    /// Add another shard's totals: counts and maps add, shares are
    /// recomputed from the sums (never added).
    pub fn absorb(&mut self, o: &StageTotals) {
        self.done += o.done;
        self.parsed_ok += o.parsed_ok;
        self.parse_failed += o.parse_failed;
        self.backend_errors += o.backend_errors;
        self.salvaged += o.salvaged;
        self.pairs += o.pairs;
        self.skipped_by_checks += o.skipped_by_checks;
        for (k, v) in &o.skip_reasons {
            *self.skip_reasons.entry(k.clone()).or_default() += v;
        }
        self.failed_completion_tokens += o.failed_completion_tokens;
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
        for (k, v) in &o.failure_reasons {
            *self.failure_reasons.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.score_histogram {
            *self.score_histogram.entry(k.clone()).or_default() += v;
        }
        let add = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.kept = add(self.kept, o.kept);
        self.cost_usd = match (self.cost_usd, o.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
        let d = self.done.max(1) as f64;
        if self.kept.is_some() {
            self.kept_share = self.kept.map(|k| k as f64 / d);
        }
        if self.parsed_share.is_some() || o.parsed_share.is_some() {
            self.parsed_share = Some(self.parsed_ok as f64 / d);
        }
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Recount a stage file (`stage`: its name). Errors: I/O.
pub fn totals(path: &Path, stage: &str, key: &str, cfg: &Config) -> Result<StageTotals> {
    // streamed: one record at a time, first occurrence per id under `key`
    let mut t = StageTotals::default();
    let mut seen = std::collections::HashSet::new();
    let mut hist: BTreeMap<u8, u64> = BTreeMap::new();
    let mut kept = 0u64;
    for r in crate::store::RecordLines::open(path)?.flatten() {
        let Some(g) = r.generation(stage).filter(|g| g.stage_key == key) else {
            continue;
        };
        if !seen.insert(r.id.clone()) {
            continue;
        }
        t.done += 1;
        t.prompt_tokens += g.prompt_tokens as u64;
        t.completion_tokens += g.completion_tokens as u64;
        t.salvaged += g.salvaged as u64;
        t.pairs += g.pairs.len() as u64;
        match &g.parse {
            ParseStatus::Ok => t.parsed_ok += 1,
            ParseStatus::Failed { reason } => {
                t.parse_failed += 1;
                t.failed_completion_tokens += g.completion_tokens as u64;
                *t.failure_reasons.entry(reason.clone()).or_default() += 1;
            }
            ParseStatus::Error { error } => {
                t.backend_errors += 1;
                *t.failure_reasons
                    .entry(error.chars().take(120).collect())
                    .or_default() += 1;
            }
        }
        if let Some(s) = g.score.filter(|_| g.parse.is_ok()) {
            *hist.entry(s).or_default() += 1;
            if s >= cfg.curate.keep_min_score {
                kept += 1;
            }
        }
    }
    let h = &cfg.http;
    if h.usd_per_million_prompt_tokens > 0.0 || h.usd_per_million_completion_tokens > 0.0 {
        t.cost_usd = Some(
            (t.prompt_tokens as f64 * h.usd_per_million_prompt_tokens
                + t.completion_tokens as f64 * h.usd_per_million_completion_tokens)
                / 1e6,
        );
    }
    if stage == Stage::Curate.name() {
        for i in 1..=5u8 {
            t.score_histogram.insert(i.to_string(), hist.get(&i).copied().unwrap_or(0));
        }
        t.kept = Some(kept);
        let d = t.done.max(1) as f64;
        t.kept_share = Some(kept as f64 / d);
        t.parsed_share = Some(t.parsed_ok as f64 / d);
    } else {
        t.score_histogram = hist.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    }
    Ok(t)
}
