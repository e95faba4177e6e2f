//! `backforth plan | merge | status | slurm submit | k8s manifest`: the
//! sharded-run commands over `backforth_shard` (a shard itself runs through
//! `backforth run --num-shards`).

use crate::cli::{DedupCmd, K8sArgs, K8sCmd, MergeArgs, PlanArgs, ShardCmd, SlurmArgs, SlurmCmd, StatusArgs};
use anyhow::{Context, Result};
use backforth_shard::merge::{ranks_to_launch, ShardState};
use backforth_shard::plan::ensure_plan_at;
use backforth_shard::slurm::{self, SlurmOptions};
use backforth_shard::OutDir;
use std::path::{Path, PathBuf};

/// `backforth plan`: make (or check) the plan and print its shape.
/// `backforth shard …`.
pub fn run(cmd: ShardCmd) -> Result<()> {
    match cmd {
        ShardCmd::Plan(a) => plan(a),
        ShardCmd::Status(a) => status(a),
        ShardCmd::Merge(a) => merge(a),
        ShardCmd::Dedup { cmd } => dedup(cmd),
        ShardCmd::Slurm { cmd } => slurm(cmd),
        ShardCmd::K8s { cmd } => k8s(cmd),
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
        let t0 = std::time::Instant::now();
        loop {
            let done = match backforth_shard::status_at(&run) {
                Ok((_, st)) => st.iter().all(|s| *s == ShardState::Done),
                Err(_) => false, // no plan yet: the shards have not started
            };
            if done {
                break;
            }
            if limit > 0 && t0.elapsed().as_secs() >= limit {
                anyhow::bail!(
                    "waited {limit} s and the shards are not all done (backforth status --out {})",
                    a.out.display()
                );
            }
            std::thread::sleep(std::time::Duration::from_secs(30));
        }
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

/// Write the effective config (every override applied) for launched tasks
/// into `dir`. Returns its path.
fn write_effective_config(cfg: &backforth::config::Config, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("config.toml");
    std::fs::write(&path, cfg.to_toml()?)?;
    Ok(path)
}

/// `backforth slurm submit`.
pub fn slurm(cmd: SlurmCmd) -> Result<()> {
    let SlurmCmd::Submit(a) = cmd;
    submit(a)
}

fn submit(a: SlurmArgs) -> Result<()> {
    let mut cfg = a.config()?;
    let workdir = std::env::current_dir()?;
    if !backforth_shard::remote::is_url(&cfg.output.dir) {
        cfg.output.dir = std::path::absolute(&cfg.output.dir)
            .context("output.dir")?
            .display()
            .to_string();
    }
    let dir = slurm::scripts_dir(&cfg.output.dir, &workdir);
    let config = write_effective_config(&cfg, &dir)?;
    let run = OutDir::open(&cfg.output.dir)?;
    // plan now, so tasks only read it and `--missing` knows the ranks
    ensure_plan_at(&run, &cfg.input, a.num_shards)?;
    let ranks = if a.missing {
        let (_, states) = backforth_shard::status_at(&run)?;
        let r = ranks_to_launch(&states);
        if r.is_empty() {
            eprintln!("no shard to relaunch (all done or running); submitting the merge only");
        }
        Some(r)
    } else {
        None
    };
    let exe = match a.backforth {
        Some(p) => p,
        None => std::env::current_exe().context("locating this binary")?,
    };
    let max_array_size = a
        .max_array_size
        .or_else(slurm::cluster_max_array_size)
        .unwrap_or(1001);
    let opts = SlurmOptions {
        num_shards: a.num_shards,
        ranks,
        throttle: a.throttle,
        time: a.time,
        partition: a.partition,
        cpus_per_task: a.cpus_per_task,
        mem: a.mem,
        gres: a.gres,
        max_array_size,
        extra: a.extra,
        dedup: a.dedup,
        dedup_bands: cfg.dedup.bands as u32,
        job_name: format!(
            "backforth-{}",
            cfg.output
                .dir
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or_default()
        ),
    };
    let scripts = slurm::write_scripts(&dir, &cfg.output.dir, &exe, &config, &workdir, &opts)?;
    for s in scripts.sign.iter().chain(&scripts.shards) {
        eprintln!(
            "wrote {} (--array={}, offset {})",
            s.path.display(),
            s.array,
            s.offset
        );
    }
    for p in scripts
        .buckets
        .iter()
        .chain(&scripts.cluster)
        .chain([&scripts.merge])
    {
        eprintln!("wrote {}", p.display());
    }
    if a.dry_run {
        return Ok(());
    }
    let sub = slurm::submit(&scripts)?;
    let dedup = if sub.sign_jobs.is_empty() {
        String::new()
    } else {
        format!(
            "dedup sign {} → buckets {} → cluster {} → ",
            sub.sign_jobs.join(", "),
            sub.buckets_job.clone().unwrap_or_default(),
            sub.cluster_job.clone().unwrap_or_default()
        )
    };
    eprintln!(
        "submitted {dedup}array job(s) {} → merge job {}, each afterok on the step before",
        sub.array_jobs.join(", "),
        sub.merge_job
    );
    println!(
        "{}",
        serde_json::json!({"sign_jobs": sub.sign_jobs, "buckets_job": sub.buckets_job, "cluster_job": sub.cluster_job, "array_jobs": sub.array_jobs, "merge_job": sub.merge_job})
    );
    Ok(())
}

/// `backforth k8s manifest`.
pub fn k8s(cmd: K8sCmd) -> Result<()> {
    let K8sCmd::Manifest(a) = cmd;
    manifest(a)
}

fn manifest(a: K8sArgs) -> Result<()> {
    let cfg = a.config()?;
    let out = cfg.output.dir.clone();
    let remote = backforth_shard::remote::is_url(&out);
    anyhow::ensure!(
        remote || (a.pvc.is_some() && Path::new(&out).starts_with(&a.mount_path)),
        "output.dir {out} is not under --mount-path {} of a --pvc: the pods would write where no other pod sees (or put it in object storage: s3://…)",
        a.mount_path
    );
    let o = backforth_shard::k8s::K8sOptions {
        name: a.name,
        image: a.image,
        num_shards: a.num_shards,
        parallelism: a.parallelism,
        backoff_limit_per_index: a.backoff_limit_per_index,
        pvc: a.pvc,
        mount_path: a.mount_path,
        out: out.clone(),
        cpu: a.cpu,
        memory: a.memory,
        gpus: a.gpus,
        secret_env: a.secret_env,
    };
    let m = backforth_shard::k8s::manifest(&cfg.to_toml()?, &o);
    let path = a.manifest.unwrap_or_else(|| {
        if remote {
            PathBuf::from("backforth-k8s.json")
        } else {
            PathBuf::from(&out).join("k8s").join("backforth.json")
        }
    });
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p)?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&m)?)?;
    eprintln!(
        "wrote {} (kubectl apply -f {})",
        path.display(),
        path.display()
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
            let docs = backforth_shard::dedup::sign_shard(&job)?;
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
