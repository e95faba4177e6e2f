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
use crate::stage::def::{StageDef, StagePlan};
use crate::stages::{run_stage, totals, StageReport, StageSpec, StageTotals};
use crate::store::{RunDir, StageFile};
use anyhow::{bail, Context, Result};
use backforth_corpus::readers::{input_parts, DocumentStream, InputStats};
pub use backforth_inference::BackendProvider;
use backforth_inference::encoder::SentenceEmbedder;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Progress display for one stage: `(stage name, total_pending) -> callback`.
pub trait ProgressFactory {
    /// Start a display for the stage named `stage` with `total` records to generate.
    fn start(&mut self, stage: &str, total: u64) -> Box<dyn FnMut(u64, u64, u64, f64)>;
}

/// No progress display.
pub struct NoProgress;
impl ProgressFactory for NoProgress {
    fn start(&mut self, _: &str, _: u64) -> Box<dyn FnMut(u64, u64, u64, f64)> {
        Box::new(|_, _, _, _| {})
    }
}

/// The run summary written to `summary.json` (and read back through this
/// type by the merge of a sharded run, the analyses and the report).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
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
    /// `run.streaming`: seconds from the start of generation to the first
    /// record written by a last stage of the chain (the first finished pair).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_output_s: Option<f64>,
    /// A merged sharded run only: the shards it was merged from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardsSummary>,
}

/// The shards a merged summary was made from.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
#[serde(default)]
pub struct ShardsSummary {
    pub count: u64,
    /// The slowest shard's wall time, seconds.
    pub wall_s_max: f64,
    /// All shards' wall time, seconds (machine time spent).
    pub wall_s_sum: f64,
    /// Export lines dropped because an earlier shard had the same id, by file.
    pub duplicate_ids_dropped: BTreeMap<String, u64>,
}

impl Summary {
    /// Fold another shard's summary into this one: counts add, shares are
    /// recomputed from the added counts, problem messages and check
    /// examples stay capped, keys and seeds stay the first shard's (the
    /// merge checks that the shards' keys agree), per-invocation reports and
    /// wall times are not added (wall time goes to [`ShardsSummary`]).
    pub fn absorb(&mut self, o: &Summary) {
        self.input.absorb(&o.input);
        for (k, t) in &o.stages {
            self.stages.entry(k.clone()).or_default().absorb(t);
        }
        for (k, e) in &o.outputs {
            match self.outputs.get_mut(k) {
                Some(a) => a.absorb(e),
                None => {
                    self.outputs.insert(k.clone(), e.clone());
                }
            }
        }
        if self.keys.is_empty() {
            self.keys = o.keys.clone();
            self.seeds = o.seeds.clone();
        }
    }
}

/// Seed-pair statistics.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
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

/// The documents key: a hash of the `[input]` settings (without this
/// shard's parts) and, with `run.prepare`, of `[segment]`, `[filter]`,
/// `[dedup]` and `[decontam]`. The first link of the stage-key chain.
/// Errors: serialisation.
pub fn documents_key(cfg: &Config) -> Result<String> {
    let whole_input = cfg.input.without_parts();
    Ok(if cfg.run.prepare {
        let settings = (
            &whole_input,
            &cfg.segment,
            &cfg.filter,
            &cfg.dedup,
            &cfg.decontam,
        );
        let base = hash::key(&["documents+prepare", &serde_json::to_string(&settings)?]);
        if cfg.doc_filter.model.is_empty() {
            base
        } else {
            // the filter's settings and the model file's bytes (a model
            // retrained at the same path filters differently)
            let bytes = std::fs::read(&cfg.doc_filter.model).unwrap_or_default();
            hash::key(&[
                &base,
                &serde_json::to_string(&cfg.doc_filter)?,
                blake3::hash(&bytes).to_hex().as_str(),
            ])
        }
    } else {
        hash::key(&["documents", &serde_json::to_string(&whole_input)?])
    })
}

/// The sentence embedder the document filter needs (`doc_filter.embedding_model`
/// from `provider`), or `None` when `doc_filter.model` is empty. Errors: the filter is set without its
/// embedder, or the embedder does not load.
pub fn doc_filter_embedder<'p>(
    cfg: &Config,
    provider: &'p mut dyn BackendProvider,
) -> Result<Option<&'p mut dyn SentenceEmbedder>> {
    if cfg.doc_filter.model.is_empty() {
        return Ok(None);
    }
    anyhow::ensure!(
        !cfg.doc_filter.embedding_model.is_empty(),
        "doc_filter.model needs doc_filter.embedding_model (the sentence embedder it was trained with)"
    );
    Ok(Some(provider.embedder(&cfg.doc_filter.embedding_model)?))
}

/// Curate with `curate.skip_failing_instructions`: count the upstream pairs
/// that got no request and why, from the upstream stage file (derived, like
/// the rest of the totals, so every invocation reports the same). Nothing
/// for other stages or when the upstream file is absent. Errors: I/O.
fn count_skipped(
    d: &StageDef,
    cfg: &Config,
    run: &RunDir,
    keys: &BTreeMap<String, String>,
    t: &mut StageTotals,
) -> Result<()> {
    let Some(u) = d.input.as_ref().filter(|_| cfg.curate.skip_failing_instructions) else {
        return Ok(());
    };
    let path = run.stage(u);
    if d.builtin_stage() != Some(Stage::Curate) || !path.exists() {
        return Ok(());
    }
    for r in upstream_records(&path, Some((u.clone(), keys[u].clone())))? {
        let reasons = d.skip_reasons(&r, cfg);
        if !reasons.is_empty() {
            t.skipped_by_checks += 1;
            for c in reasons {
                *t.skip_reasons.entry(c.to_string()).or_default() += 1;
            }
        }
    }
    tracing::info!(
        "{}: {} pairs sent no request (the instruction checks drop them): {:?}",
        d.name,
        t.skipped_by_checks,
        t.skip_reasons
    );
    Ok(())
}

/// Read the corpus into `documents.jsonl` (once per input-config key): ids
/// deduplicated, ordinals assigned, limit applied. Returns (key, stats).
/// `embedder` runs the document filter of `run.prepare` (needed when
/// `doc_filter.model` is set; see [`doc_filter_embedder`]).
/// Errors: missing inputs, I/O on the run folder.
pub fn prepare_documents(
    cfg: &Config,
    run: &RunDir,
    embedder: Option<&mut dyn SentenceEmbedder>,
) -> Result<(String, InputStats)> {
    // The key names the logical input (the same for every shard of a run, so
    // stage keys and per-record seeds match a single-process run); the done
    // marker also names this run folder's share of it (a shard's parts and
    // ordinal base), so a folder never reuses documents read for another share.
    let key = documents_key(cfg)?;
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
        let st = crate::prepare::prepare_to(cfg, &run.documents(), embedder)?;
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

/// A stage's template (its file, or the built-in one). Errors: unreadable
/// file, template syntax.
pub fn load_template(cfg: &Config, def: &StageDef) -> Result<PromptTemplate> {
    PromptTemplate::load(&def.gen.template, def.default_template(cfg))
}

/// The key chain: each stage's key hashes its generation settings, template,
/// model id, run seed, the seeds (few-shot backtranslation), its grammar and
/// its input's key. Returns keys by stage name, for every stage of `plan`.
pub fn stage_keys(
    cfg: &Config,
    plan: &StagePlan,
    docs_key: &str,
    seeds: &[Seed],
    templates: &HashMap<String, PromptTemplate>,
    provider: &mut dyn BackendProvider,
) -> Result<BTreeMap<String, String>> {
    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let seeds_hash = hash::key(&[&serde_json::to_string(seeds)?]);
    for d in &plan.defs {
        let up = match &d.input {
            None => docs_key.to_string(),
            Some(u) => keys.get(u).cloned().context("upstream key")?,
        };
        let model_id = provider.model_id(&cfg.model_path(&d.name))?;
        let seeds_part = if d.builtin_stage() == Some(Stage::Backtranslate)
            && cfg.backtranslate.mode == BackwardMode::Fewshot
        {
            seeds_hash.as_str()
        } else {
            ""
        };
        let grammar_part = d
            .grammar(cfg)
            .map(|g| hash::hex(g.as_bytes(), 16))
            .unwrap_or_default();
        let k = hash::key(&[
            &d.name,
            &d.fingerprint(cfg),
            &templates[&d.name].hash,
            &model_id,
            &cfg.model.seed.to_string(),
            if cfg.model.raw_prompt { "raw" } else { "chat" },
            seeds_part,
            &grammar_part,
            &up,
        ]);
        keys.insert(d.name.clone(), k);
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

/// Run the stages named `stages` (in plan order: each after its input)
/// and export. Returns the summary (also written to `summary.json`).
/// Errors: configuration (unknown stage names included), I/O, fatal
/// backend errors; bad input lines are counted, not errors.
pub fn run(
    cfg: &Config,
    stages: &[String],
    provider: &mut dyn BackendProvider,
    progress: &mut dyn ProgressFactory,
    opts: RunOptions,
) -> Result<Summary> {
    let start = Instant::now();
    let plan = StagePlan::new(cfg)?;
    let selected: Vec<&StageDef> = plan.select(stages)?;
    for d in &plan.defs {
        if d.builtin_stage().is_none() && !cfg.run.stages.contains(&d.name) && !stages.contains(&d.name) {
            tracing::warn!("[stage.{}] is defined but not in run.stages: it does not run (add it to run.stages, or run it alone with `backforth run --stages {}`)", d.name, d.name);
        }
    }
    let run = RunDir(PathBuf::from(&cfg.output.dir));
    std::fs::create_dir_all(run.0.join("stages"))
        .with_context(|| format!("creating {}", run.0.display()))?;
    std::fs::write(run.0.join("config.toml"), cfg.to_toml()?)?;

    // a stage run alone on a given file (`from`) needs no corpus unless one was read before
    let (docs_key, input_stats) = if opts.from.is_none() || run.documents().exists() {
        let embedder = if cfg.run.prepare {
            doc_filter_embedder(cfg, provider)?
        } else {
            None
        };
        prepare_documents(cfg, &run, embedder)?
    } else {
        ("none".to_string(), InputStats::default())
    };
    let (seeds, seed_summary) = load_seeds(cfg)?;
    if selected.iter().any(|d| d.builtin_stage() == Some(Stage::Backtranslate))
        && cfg.backtranslate.mode == BackwardMode::Fewshot
        && seeds.is_empty()
    {
        bail!("few-shot backtranslation needs seed pairs: set seeds.path (JSONL of instruction/response), or backtranslate.mode = \"finetuned\"");
    }
    let seed_index = (cfg.backtranslate.seed_selection == crate::seeds::SeedSelection::Nearest
        && !seeds.is_empty())
    .then(|| crate::seeds::SeedIndex::new(&seeds));
    let mut templates = HashMap::new();
    for d in &plan.defs {
        templates.insert(
            d.name.clone(),
            load_template(cfg, d).with_context(|| format!("{} template", d.name))?,
        );
    }
    let mut keys = stage_keys(cfg, &plan, &docs_key, &seeds, &templates, provider)?;
    if let (Some(from), Some(first)) = (&opts.from, selected.first()) {
        // a stage run alone on a given file: its key and those after it also
        // hash the file's content, so another input file never counts as done
        let content = std::fs::read(from).with_context(|| format!("reading {}", from.display()))?;
        let fk = hash::key(&["from", &hash::hex(&content, 32)]);
        let pos = plan.defs.iter().position(|d| d.name == first.name).unwrap_or(0);
        for d in &plan.defs[pos..] {
            let k = hash::key(&[&keys[&d.name], &fk]);
            keys.insert(d.name.clone(), k);
        }
    }

    let mut summary = Summary {
        run_dir: run.0.display().to_string(),
        input: input_stats,
        seeds: seed_summary,
        ..Default::default()
    };
    let one_model = selected.iter().all(|d| cfg.model_path(&d.name) == cfg.model_path(&selected[0].name));
    if cfg.run.streaming && selected.len() > 1 && !one_model {
        tracing::warn!("run.streaming: the stages run on different models, so they run one after another");
    }
    let streamed = cfg.run.streaming && selected.len() > 1 && one_model;
    if streamed {
        let model_path = cfg.model_path(&selected[0].name);
        let model_id = provider.model_id(&model_path)?;
        let mut chain = Vec::new();
        let mut first_pending = 0;
        for (i, d) in selected.iter().enumerate() {
            // the stage of the chain whose results this one reads, if any
            let fed_by = d
                .input
                .as_ref()
                .and_then(|u| selected.iter().position(|s| &s.name == u))
                .filter(|_| !(i == 0 && opts.from.is_some()));
            let (path, filter) = upstream_of(&opts, &run, &keys, i, d);
            if fed_by.is_none() && !path.exists() {
                bail!("{} needs {} (run the earlier stage first, or pass --from FILE)", d.name, path.display());
            }
            // the upstream file as it stands now: what a fed stage's upstream wrote before (a backlog)
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            let file = StageFile::open(&run.stage(&d.name), &d.name, &keys[&d.name])?;
            if i == 0 {
                first_pending = crate::store::upstream_records_until(&path, filter.clone(), len)?
                    .filter(|r| !file.done.contains(&r.id) && d.eligible(r, cfg))
                    .count() as u64;
            }
            chain.push(crate::stream::ChainStage {
                spec: StageSpec {
                    def: d,
                    cfg,
                    template: &templates[&d.name],
                    seeds: &seeds,
                    key: &keys[&d.name],
                    model_id: &model_id,
                    seed_index: seed_index.as_ref(),
                },
                source: Box::new(crate::store::upstream_records_until(&path, filter, len)?),
                fed_by,
                file,
            });
        }
        let names: Vec<&str> = selected.iter().map(|d| d.name.as_str()).collect();
        tracing::info!("streaming {}: {first_pending} records enter the chain", names.join(" → "));
        let mut bar = progress.start(&names.join("→"), first_pending);
        let backend = provider.backend(&model_path)?;
        let rep = crate::stream::run_chain(chain, backend, &mut *bar)?;
        for (d, r) in selected.iter().zip(rep.stages) {
            summary.invocation.insert(d.name.clone(), r);
        }
        summary.first_output_s = rep.first_output_s;
    }
    for (i, d) in selected.iter().enumerate().filter(|_| !streamed) {
        let (upstream_path, upstream) = upstream_of(&opts, &run, &keys, i, d);
        if !upstream_path.exists() {
            bail!(
                "{} needs {} (run the earlier stage first, or pass --from FILE)",
                d.name,
                upstream_path.display()
            );
        }
        let model_path = cfg.model_path(&d.name);
        let model_id = provider.model_id(&model_path)?;
        let spec = StageSpec {
            def: d,
            cfg,
            template: &templates[&d.name],
            seeds: &seeds,
            key: &keys[&d.name],
            model_id: &model_id,
            seed_index: seed_index.as_ref(),
        };
        // pending count for the progress bar (cheap next to generation)
        let file = StageFile::open(&run.stage(&d.name), &d.name, &keys[&d.name])?;
        let pending = upstream_records(&upstream_path, upstream.clone())?
            .filter(|r| !file.done.contains(&r.id) && d.eligible(r, cfg))
            .count() as u64;
        tracing::info!("{}: {pending} records to generate", d.name);
        let mut bar = progress.start(&d.name, pending);
        let report = if pending == 0 {
            // nothing to do: still account for the input
            let mut rep = StageReport::default();
            for r in upstream_records(&upstream_path, upstream.clone())? {
                rep.input += 1;
                if d.eligible(&r, cfg) {
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
        summary.invocation.insert(d.name.clone(), report);
    }
    for d in &plan.defs {
        summary.keys.insert(d.name.clone(), keys[&d.name].clone());
        let p = run.stage(&d.name);
        if p.exists() {
            let mut t = totals(&p, &d.name, &keys[&d.name], cfg)?;
            count_skipped(d, cfg, &run, &keys, &mut t)?;
            if t.done > 0 || stages.contains(&d.name) {
                summary.stages.insert(d.name.clone(), t);
            }
        }
    }
    let embedder = if cfg.checks.enabled && !cfg.checks.embedding_model.is_empty() {
        Some(provider.embedder(&cfg.checks.embedding_model)?)
    } else {
        None
    };
    summary.outputs = export(cfg, &plan, &run, &keys, embedder)?;
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

/// The file the `i`-th selected stage reads and the (stage, key) filter on
/// it: `--from`'s file for the first stage, else the documents or its input
/// stage's file under that stage's key.
fn upstream_of(
    opts: &RunOptions,
    run: &RunDir,
    keys: &BTreeMap<String, String>,
    i: usize,
    d: &StageDef,
) -> (PathBuf, Option<(String, String)>) {
    match (&opts.from, i) {
        (Some(f), 0) => (f.clone(), None),
        _ => match &d.input {
            None => (run.documents(), None),
            Some(u) => (run.stage(u), Some((u.clone(), keys[u].clone()))),
        },
    }
}
