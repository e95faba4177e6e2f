//! `backforth plan | merge | status | slurm submit | k8s manifest`: the
//! sharded-run commands over `backforth_shard` (a shard itself runs through
//! `backforth run --num-shards`).

use crate::cli::{DedupCmd, MergeArgs, PlanArgs, ShardCmd, StatusArgs};
use anyhow::{Context, Result};
use backforth_shard::merge::ShardState;
use backforth_shard::plan::ensure_plan_at;
use backforth_shard::OutDir;

/// `backforth plan`: make (or check) the plan and print its shape.
/// `backforth shard …`.
pub fn run(cmd: ShardCmd) -> Result<()> {
    match cmd {
        ShardCmd::Plan(a) => plan(a),
        ShardCmd::Status(a) => status(a),
        ShardCmd::Merge(a) => merge(a),
        ShardCmd::Dedup { cmd } => dedup(cmd),
        ShardCmd::Slurm { cmd } => super::launch::slurm(cmd),
        ShardCmd::K8s { cmd } => super::launch::k8s(cmd),
    }
}

/// `backforth shard plan`.
pub fn plan(a: PlanArgs) -> Result<()> {
    let cfg = a.common.config()?;
    let run = OutDir::open(&cfg.output.dir)?;
    let t0 = std::time::Instant::now();
    let p = ensure_plan_at(&run, &cfg.input, a.num_shards)?;
    let sizes: Vec<u64> = p.shards.iter().map(|s| s.bytes).collect();
    let (lo, hi) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    eprintln!(
        "plan: {} files, {} bytes → {} shards ({}..{} bytes each, {} empty) in {:.2} s → {}",
        p.files,
        p.bytes,
        p.num_shards,
        lo,
        hi,
        p.shards.iter().filter(|s| s.parts.is_empty()).count(),
        t0.elapsed().as_secs_f64(),
        run.show(backforth_shard::plan::PLAN_FILE)
    );
    Ok(())
}

/// `backforth status`: one line per state with its ranks.
pub fn status(a: StatusArgs) -> Result<()> {
    let run = OutDir::open(&a.out.to_string_lossy())?;
    let (plan, states) = backforth_shard::status_at(&run)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&states)?);
        return Ok(());
    }
    for want in [
        ShardState::Done,
        ShardState::Running,
        ShardState::Stopped,
        ShardState::Missing,
    ] {
        let ranks: Vec<String> = states
            .iter()
            .enumerate()
            .filter(|(_, s)| **s == want)
            .map(|(i, _)| i.to_string())
            .collect();
        println!(
            "{:>8}: {:>5} of {}  {}",
            want.name(),
            ranks.len(),
            plan.num_shards,
            compact(&ranks)
        );
    }
    if run.fetch(backforth_shard::merge::SUCCESS_FILE)? {
        println!(
            "  merged: {}",
            run.show(backforth_shard::merge::SUCCESS_FILE)
        );
    }
    Ok(())
}

fn compact(ranks: &[String]) -> String {
    if ranks.len() > 20 {
        format!(
            "{} … {}",
            ranks[..10].join(","),
            ranks[ranks.len() - 5..].join(",")
        )
    } else {
        ranks.join(",")
    }
}

/// `backforth merge`: merge the shards (optionally waiting for them).
pub fn merge(a: MergeArgs) -> Result<()> {
    let run = OutDir::open(&a.out.to_string_lossy())?;
    if let Some(limit) = a.wait {
        // 0 = no limit; polls every 30 s
        backforth_shard::merge::wait_until_done(&run, (limit > 0).then_some(limit), 30)?;
    }
    let r = backforth_shard::merge_at(&run, a.with_stages)?;
    for (f, n) in &r.files {
        let dup = r
            .duplicate_ids
            .get(f)
            .map(|d| format!(" ({d} repeated ids dropped)"))
            .unwrap_or_default();
        eprintln!("{f:>28}: {n} lines{dup}");
    }
    eprintln!(
        "merged {} shards → {} (summary.json, _SUCCESS)",
        r.shards, r.run_dir
    );
    Ok(())
}

/// `backforth dedup sign | cluster`.
pub fn dedup(cmd: DedupCmd) -> Result<()> {
    match cmd {
        DedupCmd::Sign(a) => {
            let cfg = a.config()?;
            let n = a
                .shard
                .num_shards
                .context("dedup sign needs --num-shards")?;
            let i = backforth_shard::rank::shard_index_from_env(a.shard.shard, n)?;
            let job = match backforth_shard::begin_shard(&cfg, n, i)? {
                backforth_shard::ShardStart::Done(_) => anyhow::bail!(
                    "shard {i} has already run: dedup across shards must come before the shards run (use a new output folder)"
                ),
                backforth_shard::ShardStart::Run(j) => j,
            };
            let mut provider = crate::provider::Provider::new(&job.config);
            let embedder = if job.config.run.prepare {
                backforth::pipeline::doc_filter_embedder(&job.config, &mut provider)?
            } else {
                None
            };
            let docs = backforth_shard::dedup::sign_shard(&job, embedder)?;
            eprintln!(
                "shard {i} of {n}: {docs} documents signed → {}",
                job.run.show("dedup/sig")
            );
            Ok(())
        }
        DedupCmd::Buckets(a) => {
            let cfg = a.common.config()?;
            let run = OutDir::open(&cfg.output.dir)?;
            let band = backforth_shard::rank::shard_index_from_env(a.band, cfg.dedup.bands as u32)
                .context("the band (--band B)")?;
            let r = backforth_shard::dedup::buckets_at(&run, a.num_shards, &cfg.dedup, band)?;
            eprintln!(
                "band {band}: {} bucket pairs compared, {} confirmed",
                r.compared, r.confirmed
            );
            Ok(())
        }
        DedupCmd::Cluster(a) => {
            let cfg = a.common.config()?;
            let run = OutDir::open(&cfg.output.dir)?;
            let t0 = std::time::Instant::now();
            let r = backforth_shard::dedup::cluster_at(&run, a.num_shards, &cfg.dedup)?;
            eprintln!(
                "{} documents: {} exact and {} near duplicates across shards to drop ({} bucket pairs compared, {} confirmed) in {:.1} s → {}",
                r.documents,
                r.exact,
                r.near,
                r.compared,
                r.confirmed,
                t0.elapsed().as_secs_f64(),
                run.show("dedup/remove")
            );
            Ok(())
        }
    }
}
