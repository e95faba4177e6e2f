//! The configured chain: read documents → stages → export → summary.
//!
//! Data flows one way: `documents.jsonl` → `stages/backtranslate.jsonl` →
//! `stages/curate.jsonl` → `stages/{rewrite,distill}.jsonl` → dataset files.
//! Every file is append-only and keyed, so rerunning the same command resumes.

use crate::config::{BackwardMode, Config};
use crate::hash;
use crate::prompt::PromptTemplate;
use crate::record::{Record, Stage};
use crate::seeds::{read_seeds, Seed};
use crate::stages::{eligible, run_stage, totals, StageReport, StageSpec, StageTotals};
use crate::store::{RunDir, StageFile};
use anyhow::{bail, Context, Result};
use backforth_corpus::readers::{input_parts, DocumentStream, InputStats};
pub use backforth_inference::BackendProvider;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress display for one stage: `(stage, total_pending) -> callback`.
pub trait ProgressFactory {
    /// Start a display for `stage` with `total` records to generate.
    fn start(&mut self, stage: Stage, total: u64) -> Box<dyn FnMut(u64, u64, u64, f64)>;
}

/// No progress display.
pub struct NoProgress;
impl ProgressFactory for NoProgress {
    fn start(&mut self, _: Stage, _: u64) -> Box<dyn FnMut(u64, u64, u64, f64)> {
        Box::new(|_, _, _, _| {})
    }
}

/// The run summary written to `summary.json`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Summary {
    pub run_dir: String,
    /// Wall time of this invocation, seconds.
    pub wall_s: f64,
    pub input: InputStats,
    /// Seed pairs read / usable as few-shot examples, and seed-file problems.
    pub seeds: SeedSummary,
    /// Stage keys in force.
    pub keys: BTreeMap<String, String>,
    /// This invocation's work per stage.
    pub invocation: BTreeMap<String, StageReport>,
    /// Totals per stage recounted from the stage files (include resumed work).
    pub stages: BTreeMap<String, StageTotals>,
    /// Exported files and their example counts.
    pub outputs: BTreeMap<String, ExportSummary>,
}

/// Seed-pair statistics.
#[derive(Debug, Clone, Serialize, Default)]
pub struct SeedSummary {
    pub read: u64,
    pub usable: u64,
    pub stats: InputStats,
}

pub use crate::export::{export, Example, ExportSummary};

#[derive(Serialize, Deserialize)]
struct DocumentsDone {
    key: String,
    stats: InputStats,
}

/// Read the corpus into `documents.jsonl` (once per input-config key): ids
/// deduplicated, ordinals assigned, limit applied. Returns (key, stats).
/// Errors: missing inputs, I/O on the run folder.
pub fn prepare_documents(cfg: &Config, run: &RunDir) -> Result<(String, InputStats)> {
    // The key names the logical input (the same for every shard of a run, so
    // stage keys and per-record seeds match a single-process run); the done
    // marker also names this run folder's share of it (a shard's parts and
    // ordinal base), so a folder never reuses documents read for another share.
    let whole_input = cfg.input.without_parts();
    let key = if cfg.run.prepare {
        let settings = (
            &whole_input,
            &cfg.segment,
            &cfg.filter,
            &cfg.dedup,
            &cfg.decontam,
        );
        hash::key(&["documents+prepare", &serde_json::to_string(&settings)?])
    } else {
        hash::key(&["documents", &serde_json::to_string(&whole_input)?])
    };
    let share = hash::key(&[
        &key,
        &serde_json::to_string(&cfg.input.parts)?,
        &cfg.run.ordinal_base.to_string(),
    ]);
    let done_path = run.0.join("documents.done.json");
    if let Ok(t) = std::fs::read_to_string(&done_path) {
        if let Ok(d) = serde_json::from_str::<DocumentsDone>(&t) {
            if d.key == share && run.documents().exists() {
                return Ok((key, d.stats));
            }
        }
    }
    if cfg.run.prepare {
        let st = crate::prepare::prepare_to(cfg, &run.documents())?;
        std::fs::write(
            run.0.join("prepare_stats.json"),
            serde_json::to_string_pretty(&st)?,
        )?;
        tracing::info!(
            "prepare: {} documents → {} segmented → {} kept, dropped {:?}",
            st.input.documents,
            st.segments,
            st.kept,
            st.dropped
        );
        return mark_documents_done(&done_path, key, share, st.input);
    }
    let mut stream = DocumentStream::from_parts(input_parts(&cfg.input)?, cfg.input.clone());
    let tmp = run.0.join("documents.jsonl.tmp");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let mut seen = HashSet::new();
    let mut n = 0u64;
    while let Some(d) = stream.next() {
        if !seen.insert(d.id.clone()) {
            let loc = format!(
                "{}{}",
                d.source.path,
                d.source.line.map(|l| format!(":{l}")).unwrap_or_default()
            );
            stream.stats.skip(
                "duplicate_id",
                format!("{loc}: duplicate document id {}, skipped", d.id),
            );
            stream.stats.documents -= 1;
            continue;
        }
        let r = Record::new(d.id, cfg.run.ordinal_base + n, d.source, d.text, d.metadata);
        serde_json::to_writer(&mut w, &r)?;
        w.write_all(b"\n")?;
        n += 1;
        if cfg.input.limit > 0 && n >= cfg.input.limit {
            break;
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, run.documents())?;
    mark_documents_done(&done_path, key, share, stream.stats)
}

/// Drop the documents whose ids are in `remove` (id → reason) from a run
/// folder's `documents.jsonl` before any stage reads it (dedup decided
/// elsewhere, e.g. across the shards of a sharded run): the file is
/// rewritten without them and each is counted as a skip under its reason in
/// the documents' stats. Idempotent: a second call finds nothing to drop.
/// Returns the number dropped. Errors: no `documents.jsonl` yet, I/O.
pub fn exclude_documents(run: &RunDir, remove: &BTreeMap<String, String>) -> Result<u64> {
    let done_path = run.0.join("documents.done.json");
    let mut done: DocumentsDone = serde_json::from_str(
        &std::fs::read_to_string(&done_path)
            .with_context(|| format!("{}: read the documents first", done_path.display()))?,
    )?;
    if remove.is_empty() {
        return Ok(0);
    }
    // the remove list is this shard's own, so the file is rewritten only when
    // it names documents (read through the old file while the new one is written)
    let mut dropped = 0u64;
    crate::export::write_atomic(&run.documents(), |w| {
        for r in crate::store::RecordLines::open(&run.documents())? {
            let r = r.map_err(anyhow::Error::msg)?;
            if let Some(reason) = remove.get(&r.id) {
                dropped += 1;
                done.stats.skip(
                    reason,
                    format!("{}: {reason}, dropped before the stages", r.id),
                );
                done.stats.documents = done.stats.documents.saturating_sub(1);
                continue;
            }
            serde_json::to_writer(&mut *w, &r)?;
            w.write_all(b"\n")?;
        }
        Ok(())
    })?;
    if dropped > 0 {
        std::fs::write(&done_path, serde_json::to_string_pretty(&done)?)?;
    }
    Ok(dropped)
}

/// Record that `documents.jsonl` is complete for `share` (what a rerun
/// checks before reading the input again); returns `(key, stats)`. Errors: I/O.
fn mark_documents_done(
    done_path: &Path,
    key: String,
    share: String,
    stats: InputStats,
) -> Result<(String, InputStats)> {
    std::fs::write(
        done_path,
        serde_json::to_string_pretty(&DocumentsDone {
            key: share,
            stats: stats.clone(),
        })?,
    )?;
    Ok((key, stats))
}

/// Load seeds (if configured) and keep those usable as few-shot examples.
pub fn load_seeds(cfg: &Config) -> Result<(Vec<Seed>, SeedSummary)> {
    let mut s = SeedSummary::default();
    if cfg.seeds.path.is_empty() {
        return Ok((vec![], s));
    }
    let all = read_seeds(
        Path::new(&cfg.seeds.path),
        cfg.input.max_line_bytes,
        &mut s.stats,
    )?;
    s.read = all.len() as u64;
    let usable: Vec<Seed> = all
        .into_iter()
        .filter(|x| x.response.chars().count() <= cfg.backtranslate.max_seed_chars)
        .collect();
    s.usable = usable.len() as u64;
    Ok((usable, s))
}

/// Templates per stage (user file or built-in).
pub fn load_template(cfg: &Config, s: Stage) -> Result<PromptTemplate> {
    let default = match (s, cfg.backtranslate.mode) {
        (Stage::Backtranslate, BackwardMode::Fewshot) => "backtranslate_fewshot",
        (Stage::Backtranslate, BackwardMode::Finetuned) => "backtranslate_finetuned",
        (s, _) => s.name(),
    };
    PromptTemplate::load(&cfg.stage(s).template, default)
}

/// The key chain: each stage's key hashes its generation settings, template,
/// model id, run seed, the seeds (few-shot backtranslation) and its upstream key.
pub fn stage_keys(
    cfg: &Config,
    docs_key: &str,
    seeds: &[Seed],
    templates: &HashMap<Stage, PromptTemplate>,
    provider: &mut dyn BackendProvider,
) -> Result<HashMap<Stage, String>> {
    let mut keys = HashMap::new();
    let seeds_hash = hash::key(&[&serde_json::to_string(seeds)?]);
    for s in Stage::ALL {
        let up = match s.upstream() {
            None => docs_key.to_string(),
            Some(u) => keys.get(&u).cloned().context("upstream key")?,
        };
        let model_id = provider.model_id(&cfg.model_path(s))?;
        let c = cfg.stage(s);
        let seeds_part = if s == Stage::Backtranslate && c.mode == BackwardMode::Fewshot {
            seeds_hash.as_str()
        } else {
            ""
        };
        let grammar_part = crate::stages::stage_grammar(s, c)
            .map(|g| hash::hex(g.as_bytes(), 16))
            .unwrap_or_default();
        let k = hash::key(&[
            s.name(),
            &c.generation_fingerprint(s),
            &templates[&s].hash,
            &model_id,
            &cfg.model.seed.to_string(),
            if cfg.model.raw_prompt { "raw" } else { "chat" },
            seeds_part,
            &grammar_part,
            &up,
        ]);
        keys.insert(s, k);
    }
    Ok(keys)
}

/// Options for [`run`].
#[derive(Default)]
pub struct RunOptions {
    /// Read the first stage's upstream records from this file instead of the
    /// run folder (run a stage alone on any earlier output); its records are
    /// taken as they are, whatever their keys.
    pub from: Option<PathBuf>,
}

/// Run `stages` (in pipeline order) and export. Returns the summary (also written to `summary.json`).
/// Errors: configuration, I/O, fatal backend errors; bad input lines are counted, not errors.
pub fn run(
    cfg: &Config,
    stages: &[Stage],
    provider: &mut dyn BackendProvider,
    progress: &mut dyn ProgressFactory,
    opts: RunOptions,
) -> Result<Summary> {
    let start = Instant::now();
    let run = RunDir(PathBuf::from(&cfg.output.dir));
    std::fs::create_dir_all(run.0.join("stages"))
        .with_context(|| format!("creating {}", run.0.display()))?;
    std::fs::write(run.0.join("config.toml"), cfg.to_toml()?)?;
    let mut stages: Vec<Stage> = stages.to_vec();
    stages.sort();
    stages.dedup();

    // a stage run alone on a given file (`from`) needs no corpus unless one was read before
    let (docs_key, input_stats) = if opts.from.is_none() || run.documents().exists() {
        prepare_documents(cfg, &run)?
    } else {
        ("none".to_string(), InputStats::default())
    };
    let (seeds, seed_summary) = load_seeds(cfg)?;
    if stages.contains(&Stage::Backtranslate)
        && cfg.backtranslate.mode == BackwardMode::Fewshot
        && seeds.is_empty()
    {
        bail!("few-shot backtranslation needs seed pairs: set seeds.path (JSONL of instruction/response), or backtranslate.mode = \"finetuned\"");
    }
    let seed_index = (cfg.backtranslate.seed_selection == crate::seeds::SeedSelection::Nearest
        && !seeds.is_empty())
    .then(|| crate::seeds::SeedIndex::new(&seeds));
    let mut templates = HashMap::new();
    for s in Stage::ALL {
        templates.insert(
            s,
            load_template(cfg, s).with_context(|| format!("{} template", s.name()))?,
        );
    }
    let mut keys = stage_keys(cfg, &docs_key, &seeds, &templates, provider)?;
    if let (Some(from), Some(first)) = (&opts.from, stages.first()) {
        // a stage run alone on a given file: its key and those after it also
        // hash the file's content, so another input file never counts as done
        let content = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let fk = hash::key(&["from", &hash::hex(&content, 32)]);
        for s in Stage::ALL.into_iter().filter(|s| s >= first) {
            let k = hash::key(&[&keys[&s], &fk]);
            keys.insert(s, k);
        }
    }

    let mut summary = Summary {
        run_dir: run.0.display().to_string(),
        input: input_stats,
        seeds: seed_summary,
        ..Default::default()
    };
    for (i, &s) in stages.iter().enumerate() {
        let (upstream_path, upstream): (PathBuf, Option<(Stage, String)>) = match (&opts.from, i) {
            (Some(f), 0) => (f.clone(), None),
            _ => match s.upstream() {
                None => (run.documents(), None),
                Some(u) => (run.stage(u), Some((u, keys[&u].clone()))),
            },
        };
        if !upstream_path.exists() {
            bail!(
                "{} needs {} (run the earlier stage first, or pass --from FILE)",
                s.name(),
                upstream_path.display()
            );
        }
        let model_path = cfg.model_path(s).to_string();
        let model_id = provider.model_id(&model_path)?;
        let spec = StageSpec {
            stage: s,
            cfg,
            template: &templates[&s],
            seeds: &seeds,
            key: &keys[&s],
            model_id: &model_id,
            seed_index: seed_index.as_ref(),
        };
        // pending count for the progress bar (cheap next to generation)
        let file = StageFile::open(&run.stage(s), s, &keys[&s])?;
        let pending = upstream_records(&upstream_path, upstream.clone())?
            .filter(|r| !file.done.contains(&r.id) && eligible(s, r, cfg))
            .count() as u64;
        tracing::info!("{}: {pending} records to generate", s.name());
        let mut bar = progress.start(s, pending);
        let report = if pending == 0 {
            // nothing to do: still account for the input
            let mut rep = StageReport::default();
            for r in upstream_records(&upstream_path, upstream.clone())? {
                rep.input += 1;
                if eligible(s, &r, cfg) {
                    rep.resumed += 1;
                } else {
                    rep.not_eligible += 1;
                }
            }
            rep
        } else {
            let backend = provider.backend(&model_path)?;
            let input = upstream_records(&upstream_path, upstream)?;
            run_stage(&spec, backend, input, file, &mut *bar)?
        };
        summary.invocation.insert(s.name().into(), report);
    }
    for s in Stage::ALL {
        summary.keys.insert(s.name().into(), keys[&s].clone());
        let p = run.stage(s);
        if p.exists() {
            let t = totals(&p, s, &keys[&s], cfg)?;
            if t.done > 0 || stages.contains(&s) {
                summary.stages.insert(s.name().into(), t);
            }
        }
    }
    let embedder = if cfg.checks.enabled && !cfg.checks.embedding_model.is_empty() {
        Some(provider.embedder(&cfg.checks.embedding_model)?)
    } else {
        None
    };
    summary.outputs = export(cfg, &run, &keys, embedder)?;
    summary.wall_s = start.elapsed().as_secs_f64();
    std::fs::write(run.summary(), serde_json::to_string_pretty(&summary)?)?;
    crate::export::write_card(
        cfg,
        &run,
        &serde_json::to_value(&summary)?,
        &summary.outputs,
    )?;
    Ok(summary)
}

pub use crate::store::upstream_records;
