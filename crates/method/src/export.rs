//! Exports: the kept pairs as files people train on and publish.
//!
//! Per kind of response (see [`export`]) one JSONL file of [`Example`]s (chat
//! `messages` plus Alpaca-style fields), a ShareGPT file
//! (`conversations` of `{from, value}` turns, the layout FastChat and
//! Axolotl read) and a Parquet file (flat columns), plus a dataset card
//! (`README.md` with the YAML metadata of the Hugging Face Hub dataset-card
//! spec: `configs` with `data_files`, so `datasets.load_dataset(<run folder>)`
//! loads it). Pairs failing the [`crate::checks`] leave every export; each is
//! listed with its reasons in `checks.jsonl` and counted in the summary.
//!
//! Provenance in exports carries no local path: the document id and either
//! the document's URL (a `url` field in its metadata) or `<file name>:<line>`.

use crate::checks::{
    apply_grounding, apply_grounding_error, apply_similarity, apply_verification, check,
    similarities, CheckResult, Reason, SourceIndex,
};
use crate::config::Config;
use crate::record::{Record, Stage};
use crate::stage::custom::ExportAs;
use crate::stage::def::StagePlan;
use crate::store::RunDir;
use anyhow::Result;
use backforth_inference::ChatMessage;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// One exported training example: chat `messages` plus Alpaca-style fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Example {
    /// The document (or segment) id.
    pub id: String,
    pub messages: Vec<ChatMessage>,
    pub instruction: String,
    pub input: String,
    pub output: String,
    /// Curation score of the pair.
    pub score: Option<u8>,
    /// Which response this is: "rewrite", "original" (curated web text), "distill".
    pub response_kind: String,
    /// Where the document came from: its URL when the input gave one, else
    /// `<file name>:<line>` (never a local directory).
    pub source: String,
    /// One of several pairs of a document (`backtranslate.pairs_per_document`
    /// > 1): the record it was written for and the character range of the
    /// passage it is grounded in (absent for one pair per document).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<crate::pairs::PairOrigin>,
}

/// One exported file set.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ExportSummary {
    /// The JSONL file.
    pub path: String,
    /// Examples written (after the checks).
    pub examples: u64,
    /// Other formats written beside it (ShareGPT, Parquet).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The checks on this export's pairs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<ChecksSummary>,
}

/// Counts of the relevance and grounding checks on one export.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ChecksSummary {
    /// Kept pairs checked.
    pub checked: u64,
    pub passed: u64,
    /// Pairs that failed at least one check (left out of the export).
    pub failed: u64,
    /// Pairs per failure reason (one pair can have several).
    pub reasons: BTreeMap<String, u64>,
    /// Up to 3 examples per reason: `{id, instruction, detail}`.
    pub examples: BTreeMap<String, Vec<serde_json::Value>>,
}

impl ExportSummary {
    /// Add another shard's export: example counts and check counts add,
    /// check examples stay at most 3 per reason; paths stay this one's.
    pub fn absorb(&mut self, o: &ExportSummary) {
        self.examples += o.examples;
        match (&mut self.checks, &o.checks) {
            (Some(a), Some(b)) => {
                a.checked += b.checked;
                a.passed += b.passed;
                a.failed += b.failed;
                for (k, v) in &b.reasons {
                    *a.reasons.entry(k.clone()).or_default() += v;
                }
                for (k, v) in &b.examples {
                    let l = a.examples.entry(k.clone()).or_default();
                    l.extend(v.iter().cloned());
                    l.truncate(3);
                }
            }
            (None, Some(b)) => self.checks = Some(b.clone()),
            _ => {}
        }
    }
}

/// The provenance string of a record (see [`Example::source`]).
pub fn provenance(r: &Record) -> String {
    let url = ["url", "URL", "WARC-Target-URI"].iter().find_map(|k| {
        r.metadata
            .get(k)
            .or_else(|| r.metadata.get("metadata").and_then(|m| m.get(k)))
            .and_then(|v| v.as_str())
            .map(String::from)
    });
    if let Some(u) = url {
        return u;
    }
    let name = Path::new(&r.source.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| r.source.path.clone());
    match r.source.line {
        Some(l) => format!("{name}:{l}"),
        None => name,
    }
}

fn example(cfg: &Config, r: &Record, response: &str, kind: &str) -> Example {
    let instr = r.instruction().unwrap_or_default().to_string();
    let mut messages = Vec::new();
    if !cfg.export.system_tag.is_empty() {
        messages.push(ChatMessage {
            role: "system".into(),
            content: cfg.export.system_tag.clone(),
        });
    }
    messages.push(ChatMessage {
        role: "user".into(),
        content: instr.clone(),
    });
    messages.push(ChatMessage {
        role: "assistant".into(),
        content: response.to_string(),
    });
    Example {
        id: r.id.clone(),
        messages,
        instruction: instr,
        input: String::new(),
        output: response.to_string(),
        score: r.score(),
        response_kind: kind.into(),
        source: provenance(r),
        span: r.metadata.get("pair").and_then(|p| serde_json::from_value(p.clone()).ok()),
    }
}

fn detail(c: &CheckResult, reason: Reason) -> String {
    match reason {
        Reason::InstructionOffTopic => format!(
            "relevance {:.2}; not in the document: {}",
            c.relevance.unwrap_or_default(),
            c.off_topic_words.join(", ")
        ),
        Reason::InstructionUnrelated => format!(
            "similarity to the document {:.2}",
            c.similarity.unwrap_or_default()
        ),
        Reason::ResponseUnsupported => format!(
            "support {:.2}; e.g. {:?}",
            c.support.unwrap_or_default(),
            c.unsupported_sentences.first().cloned().unwrap_or_default()
        ),
        Reason::ResponseUnsupportedNumbers => format!(
            "numbers not in the source: {}",
            c.unsupported_numbers.join(", ")
        ),
        Reason::ResponseUnsupportedNames => format!(
            "names not in the source: {}",
            c.unsupported_names.join(", ")
        ),
        Reason::ResponseUnsupportedIdentifiers => format!(
            "identifiers not in the source: {}",
            c.unsupported_identifiers.join(", ")
        ),
        Reason::InstructionNotGrounded => format!(
            "relevance {:.2} (learned checker)",
            c.grounding.as_ref().map_or(0.0, |g| g.relevance)
        ),
        Reason::ResponseNotGrounded => format!(
            "lowest sentence support {:.2} (learned checker)",
            c.grounding.as_ref().map_or(0.0, |g| g.min_support())
        ),
        Reason::GroundingUnchecked => c.grounding_error.clone().unwrap_or_default(),
        Reason::VerifyUnsupportedClaims => format!(
            "the verifier found unsupported: {}",
            c.verification
                .as_ref()
                .map(|v| v.unsupported.join("; "))
                .unwrap_or_default()
        ),
        _ => reason.code().to_string(),
    }
}

pub use crate::store::write_atomic;

/// Write the datasets, in input order:
/// - `curated.jsonl`: kept (x̂, y) pairs — "filtering" only (Humpback-style);
/// - `dataset.jsonl`: kept (x̂, ŷ) with ŷ the rewrite — "filtering + rewriting" (if rewrite ran);
/// - `distilled.jsonl`: kept (x̂, distilled response) — the baseline (if distill ran);
///
/// each with `<name>.sharegpt.jsonl` and `<name>.parquet` when
/// `export.formats` asks for them, plus `checks.jsonl` and `README.md` (the
/// dataset card). With `checks.enabled`, the rewrite export drops pairs
/// failing any check; the curated and distilled exports drop pairs whose
/// *instruction* fails (the curated response is the document itself, and the
/// distilled one is by design not grounded), so both baselines share the
/// dataset's instructions. With `embedder` (`checks.embedding_model`), every
/// kept pair's instruction–document similarity is computed once and checked
/// in all three exports. Errors: I/O, the embedder failed.
pub fn export(
    cfg: &Config,
    plan: &StagePlan,
    run: &RunDir,
    keys: &BTreeMap<String, String>,
    mut embedder: Option<&mut dyn backforth_inference::encoder::SentenceEmbedder>,
) -> Result<BTreeMap<String, ExportSummary>> {
    let mut out = BTreeMap::new();
    let kept = |r: &Record| r.kept(cfg.curate.keep_min_score);
    // (stage, export name, response kind, grounded in the document: checked like rewrites)
    let mut jobs: Vec<(String, String, String, bool)> = vec![
        ("curate".into(), "curated".into(), "original".into(), false),
        ("rewrite".into(), "dataset".into(), "rewrite".into(), true),
        ("distill".into(), "distilled".into(), "distill".into(), false),
    ];
    for d in &plan.defs {
        if d.export_as() == Some(ExportAs::Pairs) {
            jobs.push((d.name.clone(), d.name.clone(), d.name.clone(), true));
        }
    }
    let filt = |s: &str| Some((s.to_string(), keys[s].clone()));
    let mut check_lines: Vec<((u64, u32), serde_json::Value)> = Vec::new();
    // the verify stage's verdicts by record id, where it ran on the current rewrites
    let mut verdicts: HashMap<String, crate::parse::Verification> = HashMap::new();
    let vp = run.stage("verify");
    if cfg.checks.enabled && cfg.checks.use_verify && vp.exists() {
        for r in crate::store::upstream_records(&vp, filt("verify"))? {
            if let Some(v) = r.verification.and_then(|g| g.verdict) {
                verdicts.insert(r.id, v);
            }
        }
    }
    // semantic relevance by record id, once for the pairs curation kept
    let mut similarity: HashMap<String, f64> = HashMap::new();
    let cp = run.stage("curate");
    if let (true, Some(emb), true) = (cfg.checks.enabled, embedder.as_deref_mut(), cp.exists()) {
        let recs: Vec<Record> = crate::store::upstream_records(&cp, filt("curate"))?
        .filter(|r| kept(r))
        .collect();
        let pairs: Vec<(&str, &str)> = recs
            .iter()
            .map(|r| (r.instruction().unwrap_or_default(), r.text.as_str()))
            .collect();
        let sims = similarities(emb, &pairs)?;
        for (r, v) in recs.iter().zip(sims) {
            similarity.insert(r.id.clone(), v);
        }
    }
    // the learned grounding checker by record id, once per kept pair (with
    // its rewrite where one parsed): Ok(scores) or Err(why it could not read it)
    let mut grounding: HashMap<String, std::result::Result<crate::grounding::Grounding, String>> =
        HashMap::new();
    if cfg.checks.enabled && !cfg.checks.grounding_model.is_empty() && cp.exists() {
        let model = crate::grounding::GroundingModel::load(Path::new(&cfg.checks.grounding_model))?;
        let emb = embedder.as_deref_mut().ok_or_else(|| {
            anyhow::anyhow!(
                "checks.grounding_model needs checks.embedding_model (the sentence embedder it was trained with: {})",
                model.embedder
            )
        })?;
        let mut rewrites: HashMap<String, String> = HashMap::new();
        let rp = run.stage("rewrite");
        if rp.exists() {
            for r in crate::store::upstream_records(&rp, filt("rewrite"))? {
                if let Some(v) = r.generation("rewrite").and_then(|g| g.value.clone()) {
                    rewrites.insert(r.id.clone(), v);
                }
            }
        }
        for r in crate::store::upstream_records(&cp, filt("curate"))?
            .filter(|r| kept(r))
        {
            let res = match model.check(emb, r.instruction().unwrap_or_default(), rewrites.get(&r.id).map(String::as_str), &r.text) {
                Ok(g) => Ok(g),
                Err(crate::grounding::GroundingError::Embedder(e)) => return Err(e.context("the grounding checker's sentence embedder")),
                Err(e) => Err(e.to_string()),
            };
            grounding.insert(r.id.clone(), res);
        }
    }
    for (s, name, kind, is_grounded) in &jobs {
        let (s, name, kind, is_grounded) = (s.as_str(), name.as_str(), kind.as_str(), *is_grounded);
        let p = run.stage(s);
        if !p.exists() {
            continue;
        }
        let mut ex: Vec<((u64, u32), Example)> = Vec::new();
        let mut cs = ChecksSummary::default();
        for r in crate::store::upstream_records(&p, filt(s))? {
            if !kept(&r) {
                continue;
            }
            let resp = match s {
                "curate" => Some(r.text.trim().to_string()),
                _ => r.generation(s).and_then(|g| g.value.clone()),
            };
            let Some(resp) = resp else { continue };
            if cfg.checks.enabled {
                let src = SourceIndex::new(&r.text);
                let grounded = is_grounded.then_some(resp.as_str());
                let mut c = check(
                    &cfg.checks,
                    r.instruction().unwrap_or_default(),
                    grounded,
                    &src,
                );
                if let Some(&v) = similarity.get(&r.id) {
                    apply_similarity(&cfg.checks, &mut c, v);
                }
                match grounding.get(&r.id) {
                    // the checker scored the rewrite's sentences: only the rewrite export takes them
                    Some(Ok(g)) => apply_grounding(&cfg.checks, &mut c, g, s == "rewrite"),
                    Some(Err(e)) => apply_grounding_error(&mut c, e),
                    None => {}
                }
                if s == "rewrite" {
                    if let Some(v) = verdicts.get(&r.id) {
                        apply_verification(&cfg.checks, &mut c, v);
                    }
                }
                cs.checked += 1;
                if c.passed() {
                    cs.passed += 1;
                } else {
                    cs.failed += 1;
                    for &reason in &c.reasons {
                        *cs.reasons.entry(reason.code().into()).or_default() += 1;
                        let list = cs.examples.entry(reason.code().into()).or_default();
                        if list.len() < 3 {
                            list.push(serde_json::json!({"id": r.id, "instruction": r.instruction(), "detail": detail(&c, reason)}));
                        }
                    }
                }
                let passed = c.passed();
                check_lines.push((
                    r.order(),
                    serde_json::json!({"id": r.id, "export": name, "passed": passed, "checks": c}),
                ));
                if !passed {
                    continue;
                }
            }
            ex.push((r.order(), example(cfg, &r, &resp, kind)));
        }
        // in input order, so the file does not depend on batch scheduling
        ex.sort_by_key(|(o, _)| *o);
        let examples: Vec<Example> = ex.into_iter().map(|(_, e)| e).collect();
        let path = run.0.join(format!("{name}.jsonl"));
        write_atomic(&path, |w| {
            for e in &examples {
                serde_json::to_writer(&mut *w, e)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
        let mut also = Vec::new();
        for f in &cfg.export.formats {
            match f.as_str() {
                "jsonl" => {}
                "sharegpt" => {
                    let p = run.0.join(format!("{name}.sharegpt.jsonl"));
                    write_atomic(&p, |w| write_sharegpt(w, &examples))?;
                    also.push(p.display().to_string());
                }
                "parquet" => {
                    #[cfg(feature = "parquet")]
                    {
                        let p = run.0.join(format!("{name}.parquet"));
                        write_examples_parquet(&p, &examples)?;
                        also.push(p.display().to_string());
                    }
                    #[cfg(not(feature = "parquet"))]
                    anyhow::bail!("export.formats has \"parquet\": build backforth with the `parquet` feature");
                }
                other => anyhow::bail!(
                    "export.formats: unknown format {other:?} (jsonl, sharegpt, parquet)"
                ),
            }
        }
        out.insert(
            name.to_string(),
            ExportSummary {
                path: path.display().to_string(),
                examples: examples.len() as u64,
                also,
                checks: cfg.checks.enabled.then_some(cs),
            },
        );
    }
    for d in &plan.defs {
        if d.export_as() == Some(ExportAs::Outputs) {
            let p = run.stage(&d.name);
            if p.exists() {
                out.insert(d.name.clone(), export_outputs(run, &d.name, &p, filt(&d.name))?);
            }
        }
    }
    if cfg.checks.enabled {
        check_lines.sort_by_key(|(o, _)| *o);
        write_atomic(&run.0.join("checks.jsonl"), |w| {
            for (_, v) in &check_lines {
                serde_json::to_writer(&mut *w, v)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })?;
    }
    Ok(out)
}

/// Record ids in an exported JSONL file (the `id` of each line; lines
/// without one are skipped). Errors: I/O.
pub fn exported_ids(path: &Path) -> Result<std::collections::BTreeSet<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect())
}

/// One line of a user-defined stage's `<name>.jsonl` (`export = "outputs"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageOutput {
    /// The document (or segment) id.
    pub id: String,
    /// See [`Example::source`].
    pub source: String,
    /// The record's instruction, where backtranslation ran before the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// The stage's parsed output.
    pub output: String,
    /// The parsed score, for score parsers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<u8>,
}

/// Write `<name>.jsonl` of a user-defined stage: its parsed outputs under
/// the current key, in input order. Errors: I/O.
fn export_outputs(
    run: &RunDir,
    name: &str,
    stage_file: &Path,
    filter: Option<(String, String)>,
) -> Result<ExportSummary> {
    let mut rows: Vec<((u64, u32), StageOutput)> = Vec::new();
    for r in crate::store::upstream_records(stage_file, filter)? {
        let Some(g) = r.generation(name) else { continue };
        let Some(v) = g.value.clone() else { continue };
        rows.push((
            r.order(),
            StageOutput {
                id: r.id.clone(),
                source: provenance(&r),
                instruction: r.instruction().map(String::from),
                output: v,
                score: g.score,
            },
        ));
    }
    rows.sort_by_key(|(o, _)| *o);
    let path = run.0.join(format!("{name}.jsonl"));
    write_atomic(&path, |w| {
        for (_, o) in &rows {
            serde_json::to_writer(&mut *w, o)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    Ok(ExportSummary {
        path: path.display().to_string(),
        examples: rows.len() as u64,
        also: vec![],
        checks: None,
    })
}

/// ShareGPT lines: `{"id", "conversations": [{"from": "system"|"human"|"gpt", "value"}]}`.
fn write_sharegpt(w: &mut dyn Write, examples: &[Example]) -> Result<()> {
    for e in examples {
        let turns: Vec<serde_json::Value> = e
            .messages
            .iter()
            .map(|m| {
                let from = match m.role.as_str() {
                    "user" => "human",
                    "assistant" => "gpt",
                    other => other,
                };
                serde_json::json!({"from": from, "value": m.content})
            })
            .collect();
        serde_json::to_writer(
            &mut *w,
            &serde_json::json!({"id": e.id, "conversations": turns, "source": e.source}),
        )?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

/// Parquet with flat UTF-8 columns `id, system, instruction, output,
/// response_kind, source` and an optional INT32 `score`; zstd, one row group
/// per 8,192 examples.
#[cfg(feature = "parquet")]
fn write_examples_parquet(out: &Path, examples: &[Example]) -> Result<()> {
    use crate::parquet_out::{optional_column, utf8_column, ParquetOut};
    // span columns only when some pair has one, so one-pair exports keep their schema
    let spans = examples.iter().any(|e| e.span.is_some());
    let span_cols = if spans {
        " OPTIONAL BYTE_ARRAY span_of (UTF8); OPTIONAL INT64 span_start; OPTIONAL INT64 span_end;"
    } else {
        ""
    };
    let mut pq = ParquetOut::create(
        out,
        &format!("message example {{ REQUIRED BYTE_ARRAY id (UTF8); REQUIRED BYTE_ARRAY system (UTF8); REQUIRED BYTE_ARRAY instruction (UTF8); REQUIRED BYTE_ARRAY output (UTF8); REQUIRED BYTE_ARRAY response_kind (UTF8); REQUIRED BYTE_ARRAY source (UTF8); OPTIONAL INT32 score;{span_cols} }}"),
    )?;
    fn system(e: &Example) -> &str {
        e.messages
            .iter()
            .find(|m| m.role == "system")
            .map_or("", |m| m.content.as_str())
    }
    for chunk in examples.chunks(8192) {
        let mut rg = pq.writer.next_row_group()?;
        utf8_column(&mut rg, chunk.iter().map(|e| e.id.as_str()))?;
        utf8_column(&mut rg, chunk.iter().map(system))?;
        utf8_column(&mut rg, chunk.iter().map(|e| e.instruction.as_str()))?;
        utf8_column(&mut rg, chunk.iter().map(|e| e.output.as_str()))?;
        utf8_column(&mut rg, chunk.iter().map(|e| e.response_kind.as_str()))?;
        utf8_column(&mut rg, chunk.iter().map(|e| e.source.as_str()))?;
        optional_column::<parquet::data_type::Int32Type>(
            &mut rg,
            chunk.iter().map(|e| e.score.map(i32::from)),
        )?;
        if spans {
            use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
            optional_column::<ByteArrayType>(
                &mut rg,
                chunk.iter().map(|e| e.span.as_ref().map(|s| ByteArray::from(s.of.as_str()))),
            )?;
            optional_column::<Int64Type>(&mut rg, chunk.iter().map(|e| e.span.as_ref().map(|s| s.start as i64)))?;
            optional_column::<Int64Type>(&mut rg, chunk.iter().map(|e| e.span.as_ref().map(|s| s.end as i64)))?;
        }
        rg.close()?;
    }
    pq.finish()
}

/// Write the dataset card `README.md`: YAML metadata (`configs` pointing at
/// the JSONL exports, `dataset_info` sizes, tags) and a body with the models,
/// settings, curation and check statistics and the input licences as given
/// (`input_licenses`, free text from the config; "not stated" otherwise).
/// `summary` is the run summary as JSON. Errors: I/O.
pub fn write_card(
    cfg: &Config,
    run: &RunDir,
    summary: &serde_json::Value,
    outputs: &BTreeMap<String, ExportSummary>,
) -> Result<()> {
    let mut y = String::from("---\n");
    // configs named after the files; the first non-empty one (rewrites when
    // rewriting ran) is the default `load_dataset(<folder>)` loads
    let mut order: Vec<&str> = vec!["dataset", "curated", "distilled"];
    // then the exports of stages defined in the config
    order.extend(outputs.keys().map(String::as_str).filter(|n| !["dataset", "curated", "distilled"].contains(n)));
    let present: Vec<&str> = order
        .iter()
        .copied()
        .filter(|n| outputs.get(*n).is_some_and(|o| o.examples > 0))
        .collect();
    if !present.is_empty() {
        y += "configs:\n";
        for (i, name) in present.iter().enumerate() {
            y += &format!("- config_name: {name}\n");
            if i == 0 {
                y += "  default: true\n";
            }
            y += &format!("  data_files:\n  - split: train\n    path: {name}.jsonl\n");
        }
        y += "dataset_info:\n";
        for name in &present {
            let bytes = std::fs::metadata(run.0.join(format!("{name}.jsonl")))
                .map(|m| m.len())
                .unwrap_or(0);
            y += &format!("- config_name: {name}\n  splits:\n  - name: train\n    num_bytes: {bytes}\n    num_examples: {}\n", outputs[*name].examples);
        }
    }
    y += "task_categories:\n- text-generation\ntags:\n- instruction-tuning\n- backtranslation\n- synthetic\n---\n\n";
    let mut b = String::from("# Instruction data made by backforth\n\n");
    b += "Pairs made from web documents by instruction back-and-forth translation (Nguyen et al. 2024, arXiv:2408.04614) \
on top of instruction backtranslation (Li et al. 2023, arXiv:2308.06259): a backward model wrote the instruction each \
document answers, a model scored each pair 1–5, the kept documents were rewritten into answers grounded in them, and \
pairs failing the relevance and grounding checks were left out.\n\n";
    b += "## Files\n\n| config | file | examples | what it is |\n|---|---|---|---|\n";
    for name in order.iter().filter(|n| outputs.contains_key(**n)) {
        let what = match *name {
            "dataset" => "instruction + rewritten response (filtering + rewriting)",
            "curated" => "instruction + the original document (filtering only)",
            "distilled" => "instruction + a response written without the document (distillation baseline)",
            _ if outputs[*name].also.is_empty() && outputs[*name].checks.is_none() => "outputs of a stage defined in the config",
            _ => "instruction + the response of a stage defined in the config",
        };
        b += &format!(
            "| {name} | `{name}.jsonl` | {} | {what} |\n",
            outputs[*name].examples
        );
    }
    b += "\nShareGPT (`*.sharegpt.jsonl`) and Parquet (`*.parquet`) copies sit beside each JSONL file when `export.formats` asks for them.\n\n";
    b += "## How it was made\n\n";
    let model = |s: &str| {
        // file names only (no local folders), adapters after the base
        cfg.model_path(s)
            .split(backforth_inference::model_ref::LORA_SEP)
            .map(|p| {
                Path::new(p)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| p.to_string())
            })
            .collect::<Vec<_>>()
            .join(" + LoRA ")
    };
    let names = Stage::ALL.iter().map(|s| s.name().to_string()).chain(cfg.stage.keys().cloned());
    for s in names {
        let Some(c) = cfg.gen(&s) else { continue };
        b += &format!(
            "- {}: model `{}`, temperature {}, top-p {}, max {} tokens\n",
            s,
            model(&s),
            c.temperature,
            c.top_p,
            c.max_tokens
        );
    }
    b += &format!(
        "- curation: pairs with score ≥ {} kept\n",
        cfg.curate.keep_min_score
    );
    if let Some(h) = summary.pointer("/stages/curate/score_histogram") {
        b += &format!("- curation score histogram: `{h}`\n");
    }
    b += &format!(
        "- checks: {} (min relevance {}, min support {}, unsupported numbers ≤ {}, unsupported names ≤ {})\n",
        if cfg.checks.enabled { "on" } else { "off" },
        cfg.checks.min_relevance,
        cfg.checks.min_support,
        cfg.checks.max_unsupported_numbers,
        cfg.checks.max_unsupported_names
    );
    if !cfg.checks.embedding_model.is_empty() {
        // the model's folder name only: no local paths in published cards
        let m = std::path::Path::new(&cfg.checks.embedding_model)
            .file_name()
            .map(|f| f.to_string_lossy().to_string())
            .unwrap_or_default();
        b += &format!(
            "- semantic relevance: {m}, min similarity {}\n",
            cfg.checks.min_similarity
        );
    }
    if !cfg.checks.grounding_model.is_empty() {
        b += &format!(
            "- learned grounding checker (`backforth checks train`): min sentence support {}, min instruction relevance {}\n",
            cfg.checks.min_sentence_support, cfg.checks.min_instruction_relevance
        );
    }
    for name in order.iter().filter(|n| outputs.contains_key(**n)) {
        if let Some(c) = &outputs[*name].checks {
            b += &format!(
                "  - {name}: {} checked, {} passed, {} left out; reasons: {:?}\n",
                c.checked, c.passed, c.failed, c.reasons
            );
        }
    }
    b += &format!(
        "\n## Sources and licences\n\nInput licences as given: {}.\n",
        if cfg.export.input_licenses.is_empty() {
            "not stated"
        } else {
            &cfg.export.input_licenses
        }
    );
    b += "Each example's `source` is the document's URL when the input gave one, else its file name and line; `id` is the document id.\n";
    write_atomic(&run.0.join("README.md"), |w| {
        w.write_all(y.as_bytes())?;
        w.write_all(b.as_bytes())?;
        Ok(())
    })
}
