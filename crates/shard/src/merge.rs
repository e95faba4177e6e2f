//! `backforth shard status` and `backforth shard merge`.
//!
//! Merge reads only finished shards (every shard needs its marker), checks
//! that they ran under one plan and one set of stage keys, and streams each
//! JSONL file of the shards, in rank order, into one file at the top of the
//! run folder while re-hashing it against the marker. Shards in rank order
//! are the inputs in order, so the merged files are ordered as a
//! single-process run's. A document id already merged from an earlier shard
//! (the same id in two input files) is dropped, as a single process drops
//! a repeated id, and counted. Parquet exports are not rewritten: each
//! shard's file is copied to `data/<name>-<I>-of-<N>.parquet`, the usual
//! layout of a multi-file Parquet dataset. Last, `summary.json` (counts
//! summed, shares recomputed), the dataset card and `_SUCCESS`.

use crate::plan::{read_plan, Plan};
use crate::remote::OutDir;
use crate::shard::{read_marker, shard_dir, Marker, LOCK_FILE, MARKER_FILE};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use backforth::pipeline::{ShardsSummary, Summary};
use serde_json::Value;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

/// File written last by a successful merge.
pub const SUCCESS_FILE: &str = "_SUCCESS";

/// Where a shard stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardState {
    /// Its completion marker is written.
    Done,
    /// A process holds its lock now.
    Running,
    /// Started before (its folder exists) but neither done nor running:
    /// killed or failed; a relaunch resumes it.
    Stopped,
    /// Never started.
    Missing,
}

impl ShardState {
    /// The state as `status` prints it (and as it serialises).
    pub fn name(self) -> &'static str {
        match self {
            ShardState::Done => "done",
            ShardState::Running => "running",
            ShardState::Stopped => "stopped",
            ShardState::Missing => "missing",
        }
    }
}

/// The state of every shard of the run in `out`. Errors: no plan, I/O.
pub fn status(out: &Path) -> Result<(Plan, Vec<ShardState>)> {
    let plan = read_plan(out)?.with_context(|| {
        format!(
            "{} has no plan.json: not a sharded run (or no shard has started)",
            out.display()
        )
    })?;
    let mut states = Vec::new();
    for i in 0..plan.num_shards {
        let dir = shard_dir(out, i);
        let s = if dir.join(MARKER_FILE).exists() {
            ShardState::Done
        } else if !dir.exists() {
            ShardState::Missing
        } else if lock_held(&dir.join(LOCK_FILE)) {
            ShardState::Running
        } else {
            ShardState::Stopped
        };
        states.push(s);
    }
    Ok((plan, states))
}

/// Block until every shard of the run is done (polling every `poll_s`
/// seconds; a run whose plan does not exist yet has not started). Errors:
/// `limit_s` seconds passed first (the message says how to see which
/// shards are missing), the store's.
pub fn wait_until_done(run: &OutDir, limit_s: Option<u64>, poll_s: u64) -> Result<()> {
    let t0 = std::time::Instant::now();
    loop {
        let done = match status_at(run) {
            Ok((_, st)) => st.iter().all(|s| *s == ShardState::Done),
            Err(_) => false, // no plan yet: the shards have not started
        };
        if done {
            return Ok(());
        }
        if let Some(limit) = limit_s {
            if t0.elapsed().as_secs() >= limit {
                bail!(
                    "waited {limit} s and the shards are not all done (backforth shard status --out {})",
                    run.name
                );
            }
        }
        std::thread::sleep(std::time::Duration::from_secs(poll_s.max(1)));
    }
}

/// Whether merge takes the shard file `name`: the exports always, the
/// documents and stage files only `with_stages`.
fn merged(name: &str, with_stages: bool) -> bool {
    with_stages || !(name.starts_with("stages/") || name == "documents.jsonl")
}

/// [`status`] for a run folder that may be in object storage: there a
/// shard is done when the store holds its marker; a shard that is not is
/// `running` when this machine's mirror holds its lock, else `missing`
/// (tasks on other machines cannot be seen from here).
/// Errors: no plan in the store, the store's, I/O.
pub fn status_at(run: &OutDir) -> Result<(Plan, Vec<ShardState>)> {
    if !run.is_remote() {
        return status(&run.local);
    }
    if !run.fetch(crate::plan::PLAN_FILE)? {
        bail!(
            "{} has no plan.json: not a sharded run (or no shard has started)",
            run.name
        );
    }
    let plan = read_plan(&run.local)?.context("plan.json vanished from the mirror")?;
    let done: HashSet<String> = run
        .list(crate::shard::SHARDS_DIR)?
        .into_iter()
        .filter_map(|k| {
            k.strip_suffix(&format!("/{MARKER_FILE}"))
                .map(str::to_string)
        })
        .collect();
    let states = (0..plan.num_shards)
        .map(|i| {
            if done.contains(&format!("{i:05}")) {
                ShardState::Done
            } else if lock_held(&shard_dir(&run.local, i).join(LOCK_FILE)) {
                ShardState::Running
            } else {
                ShardState::Missing
            }
        })
        .collect();
    Ok((plan, states))
}

/// [`merge`] for a run folder that may be in object storage: the plan, the
/// markers and the files to merge are downloaded into the mirror, merged
/// there (re-hashed against the markers), and the merged files uploaded,
/// `_SUCCESS` last and create-only. Errors: as [`merge`]; a run already
/// merged (its `_SUCCESS` in the store); the store's.
pub fn merge_at(run: &OutDir, with_stages: bool) -> Result<MergeReport> {
    if !run.is_remote() {
        return merge(&run.local, with_stages);
    }
    if run.fetch(SUCCESS_FILE)? {
        bail!(
            "{} is already merged ({} exists; delete it to merge again)",
            run.name,
            run.show(SUCCESS_FILE)
        );
    }
    let (plan, _) = status_at(run)?;
    for i in 0..plan.num_shards {
        let rel = crate::shard::shard_rel(i);
        if run.fetch(&format!("{rel}/{MARKER_FILE}"))? {
            run.fetch_tree(&rel, |name| {
                name != MARKER_FILE && merged(name, with_stages)
            })?;
        }
    }
    let mut report = merge(&run.local, with_stages)?;
    report.run_dir = run.name.clone();
    let mut outputs: Vec<String> = report.files.keys().cloned().collect();
    outputs.extend(["summary.json".to_string(), "README.md".to_string()]);
    for p in &report.parquet {
        if let Ok(rel) = Path::new(p).strip_prefix(&run.local) {
            outputs.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    for rel in &outputs {
        if run.local.join(rel).is_file() {
            run.push(rel)?;
        }
    }
    std::fs::write(
        run.local.join(SUCCESS_FILE),
        serde_json::to_vec_pretty(&report)?,
    )?;
    if !run.push_create(SUCCESS_FILE)? {
        bail!(
            "{} was written by another merge first",
            run.show(SUCCESS_FILE)
        );
    }
    Ok(report)
}

/// Ranks not done and not running: what a relaunch should cover.
pub fn ranks_to_launch(states: &[ShardState]) -> Vec<u32> {
    states
        .iter()
        .enumerate()
        .filter(|(_, s)| matches!(s, ShardState::Stopped | ShardState::Missing))
        .map(|(i, _)| i as u32)
        .collect()
}

fn lock_held(p: &Path) -> bool {
    let Ok(f) = std::fs::File::open(p) else {
        return false;
    };
    match f.try_lock_shared() {
        Ok(()) => false, // dropping the file releases it
        Err(std::fs::TryLockError::WouldBlock) => true,
        Err(std::fs::TryLockError::Error(_)) => false,
    }
}

/// What a merge wrote.
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    pub run_dir: String,
    pub shards: u32,
    /// Lines per merged file (relative path → lines).
    pub files: BTreeMap<String, u64>,
    /// Lines dropped per file because their id came from an earlier shard.
    pub duplicate_ids: BTreeMap<String, u64>,
    /// Parquet files copied to `data/`.
    pub parquet: Vec<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    id: Option<Value>,
}

/// Merge the finished shards of the run in `out` (see the module docs);
/// `with_stages` also merges `documents.jsonl` and `stages/*.jsonl` so the
/// merged folder is a run folder `analyze` and `report` can read.
/// Errors: shards not done (listed), shards from another plan or with other
/// stage keys, a shard file that no longer matches its marker, I/O.
pub fn merge(out: &Path, with_stages: bool) -> Result<MergeReport> {
    let (plan, states) = status(out)?;
    let not_done: Vec<String> = states
        .iter()
        .enumerate()
        .filter(|(_, s)| **s != ShardState::Done)
        .map(|(i, s)| format!("{i} ({})", s.name()))
        .collect();
    if !not_done.is_empty() {
        bail!(
            "{} of {} shards are not done: {}; relaunch them (backforth shard slurm submit --missing, or run --shard I), then merge",
            not_done.len(),
            plan.num_shards,
            not_done.join(", ")
        );
    }
    let mut markers: Vec<Marker> = Vec::new();
    for i in 0..plan.num_shards {
        let m = read_marker(&shard_dir(out, i))?.context("marker vanished")?;
        if m.plan_hash != plan.hash() {
            bail!(
                "shard {i} belongs to another plan ({} ≠ {})",
                m.plan_hash,
                plan.hash()
            );
        }
        markers.push(m);
    }
    // one set of stage keys: shards made under other prompts, models or settings do not mix
    let with_keys: Vec<&Marker> = markers.iter().filter(|m| !m.keys.is_empty()).collect();
    if let Some(first) = with_keys.first() {
        let odd: Vec<String> = with_keys
            .iter()
            .filter(|m| m.keys != first.keys)
            .map(|m| m.shard.to_string())
            .collect();
        if !odd.is_empty() {
            bail!(
                "shards {} ran under other stage keys than shard {} (the config changed between launches); rerun them with one config",
                odd.join(", "),
                first.shard
            );
        }
    }
    let mut names: Vec<String> = markers
        .iter()
        .flat_map(|m| m.files.keys().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|n| merged(n, with_stages))
        .collect();
    names.sort();
    let mut report = MergeReport {
        run_dir: out.display().to_string(),
        shards: plan.num_shards,
        files: BTreeMap::new(),
        duplicate_ids: BTreeMap::new(),
        parquet: Vec::new(),
    };
    for name in &names {
        let dedup = !name.starts_with("stages/");
        let (lines, dropped) = merge_file(out, &markers, name, dedup)?;
        report.files.insert(name.clone(), lines);
        if dropped > 0 {
            report.duplicate_ids.insert(name.clone(), dropped);
        }
    }
    // Parquet exports: one file per shard under data/
    let n = plan.num_shards;
    for m in &markers {
        let dir = shard_dir(out, m.shard);
        for e in std::fs::read_dir(&dir)? {
            let fname = e?.file_name().to_string_lossy().to_string();
            if let Some(stem) = fname.strip_suffix(".parquet") {
                let data = out.join("data");
                std::fs::create_dir_all(&data)?;
                let dest = data.join(format!("{stem}-{:05}-of-{n:05}.parquet", m.shard));
                std::fs::copy(dir.join(&fname), &dest)?;
                report.parquet.push(dest.display().to_string());
            }
        }
    }
    let mut summary = merged_summary(out, &markers, &report)?;
    // a file cut into ranges was opened by several shards: count it once
    summary.input.files = plan.files;
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    write_card(out, &summary)?;
    std::fs::write(out.join(SUCCESS_FILE), serde_json::to_vec_pretty(&report)?)?;
    Ok(report)
}

/// Stream `name` from every shard into `<out>/<name>` (temp file, renamed):
/// re-hash against the marker, drop lines whose id an earlier shard had.
/// Returns (lines written, lines dropped).
fn merge_file(out: &Path, markers: &[Marker], name: &str, dedup: bool) -> Result<(u64, u64)> {
    let dest = out.join(name);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = dest.with_extension("jsonl.merging");
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    let mut earlier: HashSet<String> = HashSet::new();
    let (mut written, mut dropped) = (0u64, 0u64);
    for m in markers {
        let Some(sum) = m.files.get(name) else {
            continue;
        };
        let src = shard_dir(out, m.shard).join(name);
        let mut r = BufReader::new(
            std::fs::File::open(&src).with_context(|| format!("opening {}", src.display()))?,
        );
        let mut h = blake3::Hasher::new();
        let mut this_shard: HashSet<String> = HashSet::new();
        let mut line = Vec::new();
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            h.update(&line);
            if dedup {
                if let Ok(IdOnly { id: Some(id) }) = serde_json::from_slice::<IdOnly>(&line) {
                    let id = match id {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    if earlier.contains(&id) {
                        dropped += 1;
                        continue;
                    }
                    this_shard.insert(id);
                }
            }
            w.write_all(&line)?;
            written += 1;
        }
        let got = h.finalize().to_hex().to_string();
        if got != sum.blake3 {
            drop(w);
            let _ = std::fs::remove_file(&tmp);
            bail!(
                "{} changed after its shard finished (blake3 {} ≠ marker {}): rerun shard {} (delete its {MARKER_FILE})",
                src.display(),
                &got[..16],
                &sum.blake3[..16],
                m.shard
            );
        }
        earlier.extend(this_shard);
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &dest)?;
    Ok((written, dropped))
}

/// The merged `summary.json`: every shard's [`Summary`] folded in rank
/// order ([`Summary::absorb`]: counts add, shares are recomputed, keys and
/// seeds are the first shard's — checked equal before), export counts taken
/// from the merged files, and the shards' wall times. Errors: a marker whose
/// summary does not read as a run summary.
fn merged_summary(out: &Path, markers: &[Marker], report: &MergeReport) -> Result<Summary> {
    let mut merged = Summary::default();
    let mut walls = Vec::new();
    for m in markers {
        if m.summary.get("input").is_none() {
            continue; // a shard with no input
        }
        let s: Summary = serde_json::from_value(m.summary.clone())
            .with_context(|| format!("shard {}: its marker's summary", m.shard))?;
        merged.absorb(&s);
        walls.push(s.wall_s);
    }
    merged.run_dir = out.display().to_string();
    merged.wall_s = 0.0;
    merged.invocation.clear();
    for (name, e) in merged.outputs.iter_mut() {
        let file = format!("{name}.jsonl");
        e.path = out.join(&file).display().to_string();
        e.examples = report.files.get(&file).copied().unwrap_or(0);
        e.also = [format!("{name}.sharegpt.jsonl")]
            .into_iter()
            .filter(|f| report.files.contains_key(f))
            .map(|f| out.join(f).display().to_string())
            .chain(
                report
                    .parquet
                    .iter()
                    .filter(|p| p.contains(&format!("/{name}-")))
                    .cloned(),
            )
            .collect();
    }
    merged.shards = Some(ShardsSummary {
        count: markers.len() as u64,
        wall_s_max: walls.iter().cloned().fold(0.0, f64::max),
        wall_s_sum: walls.iter().sum(),
        duplicate_ids_dropped: report.duplicate_ids.clone(),
    });
    Ok(merged)
}

/// The dataset card of the merged folder, from the first shard's config.
fn write_card(out: &Path, summary: &Summary) -> Result<()> {
    let cfg_path: PathBuf = shard_dir(out, 0).join("config.toml");
    if !cfg_path.exists() {
        return Ok(());
    }
    let mut cfg = backforth::config::Config::load(Some(&cfg_path), &[])?;
    cfg.output.dir = out.display().to_string();
    cfg.input.parts.clear();
    cfg.run.ordinal_base = 0;
    backforth::export::write_card(
        &cfg,
        &backforth::store::RunDir(out.to_path_buf()),
        &serde_json::to_value(summary)?,
        &summary.outputs,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_add_counts_and_recompute_shares() {
        use backforth::stages::StageTotals;
        let shard = |done: u64, kept: u64, wall: f64| {
            let mut s = Summary { wall_s: wall, ..Default::default() };
            s.input.documents = done;
            s.keys.insert("curate".into(), "k".into());
            s.stages.insert(
                "curate".into(),
                StageTotals {
                    done,
                    parsed_ok: done,
                    kept: Some(kept),
                    kept_share: Some(kept as f64 / done as f64),
                    parsed_share: Some(1.0),
                    score_histogram: [("5".to_string(), kept)].into(),
                    ..Default::default()
                },
            );
            s
        };
        let mut m = shard(4, 1, 10.0);
        m.absorb(&shard(6, 6, 30.0));
        let t = &m.stages["curate"];
        assert_eq!((t.done, t.kept, t.score_histogram["5"]), (10, Some(7), 7));
        // shares from the sums (0.7), not the sum of shares (1.25)
        assert_eq!(t.kept_share, Some(0.7));
        assert_eq!(t.parsed_share, Some(1.0));
        assert_eq!(m.input.documents, 10);
        assert_eq!(m.wall_s, 10.0, "wall times are not added");
    }
}
