//! `backforth shard slurm submit` and `backforth shard k8s manifest`: the
//! launchers of a sharded run (scripts and manifests from `backforth-shard`).

use crate::cli::{K8sArgs, K8sCmd, SlurmArgs, SlurmCmd};
use anyhow::{Context, Result};
use backforth_shard::merge::ranks_to_launch;
use backforth_shard::plan::ensure_plan_at;
use backforth_shard::slurm::{self, SlurmOptions};
use backforth_shard::OutDir;
use std::path::{Path, PathBuf};

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

