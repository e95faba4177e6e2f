//! Slurm launcher: a job array whose tasks are shards, and a merge job that
//! runs after all of them succeed (`--dependency=afterok`). We write the
//! batch scripts and call `sbatch`; Slurm schedules, requeues and throttles.
//!
//! Files written in the scripts folder, `<out>/slurm/` ([`scripts_dir`]; for
//! a run folder in object storage `.backforth/slurm-<hash>/` under the
//! submit folder, which the tasks run in):
//! - `config.toml`: the effective configuration (every `--set` applied,
//!   `output.dir` absolute), which every task reads;
//! - `shards-<offset>.sbatch`: one per array part. A cluster refuses task
//!   ids ≥ its `MaxArraySize`, so ranks are cut into windows of that size;
//!   each part's tasks add `BACKFORTH_SHARD_OFFSET` to `SLURM_ARRAY_TASK_ID`;
//! - with `dedup`: `sign-<offset>.sbatch` (the same arrays running `backforth
//!   dedup sign`), `buckets.sbatch` (an array over the bands running
//!   `backforth shard dedup buckets`) and `cluster.sbatch` (`backforth shard dedup
//!   cluster`), chained before the shards: sign → buckets → cluster → shards
//!   → merge, each `afterok`;
//! - `merge.sbatch`: `backforth shard merge`;
//! - `logs/%A_%a.log` (per task), `logs/merge-%j.log`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Settings of the array (what `backforth shard slurm submit` takes).
#[derive(Debug, Clone, Default)]
pub struct SlurmOptions {
    pub num_shards: u32,
    /// Ranks to launch (a relaunch of the missing ones); `None` = all.
    pub ranks: Option<Vec<u32>>,
    /// At most this many tasks at once (`%K`).
    pub throttle: Option<u32>,
    /// `--time`, `--partition`, `--cpus-per-task`, `--mem`, `--gres`.
    pub time: Option<String>,
    pub partition: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub mem: Option<String>,
    pub gres: Option<String>,
    /// The cluster's `MaxArraySize` (task ids must be below it).
    pub max_array_size: u32,
    /// More `#SBATCH` flags, each as written after `#SBATCH ` (e.g. `--account=x`).
    pub extra: Vec<String>,
    pub job_name: String,
    /// Dedup across shards first (sign array, bucket array over
    /// `dedup_bands` bands, cluster job).
    pub dedup: bool,
    pub dedup_bands: u32,
}

/// The scripts of one submission.
#[derive(Debug, Clone)]
pub struct Scripts {
    /// Dedup: sign arrays, the bucket array and the cluster job (empty /
    /// `None` without dedup).
    pub sign: Vec<ArrayScript>,
    pub buckets: Option<PathBuf>,
    pub cluster: Option<PathBuf>,
    pub shards: Vec<ArrayScript>,
    pub merge: PathBuf,
}

/// One array part: its script and the ranks it covers.
#[derive(Debug, Clone)]
pub struct ArrayScript {
    pub path: PathBuf,
    /// Added to `SLURM_ARRAY_TASK_ID`.
    pub offset: u32,
    /// The `--array` value (task ids, then `%throttle`).
    pub array: String,
}

/// `--array` values for `ranks` (sorted, unique), cut into windows of
/// `max_array_size`: `(offset, spec)` with task ids `rank - offset`, runs
/// of consecutive ids written as `a-b`.
pub fn array_specs(
    ranks: &[u32],
    max_array_size: u32,
    throttle: Option<u32>,
) -> Vec<(u32, String)> {
    let m = max_array_size.max(1);
    let mut ranks = ranks.to_vec();
    ranks.sort_unstable();
    ranks.dedup();
    let mut out: Vec<(u32, Vec<u32>)> = Vec::new();
    for r in ranks {
        let off = r / m * m;
        match out.last_mut() {
            Some((o, ids)) if *o == off => ids.push(r - off),
            _ => out.push((off, vec![r - off])),
        }
    }
    out.into_iter()
        .map(|(off, ids)| {
            let mut parts = Vec::new();
            let mut i = 0;
            while i < ids.len() {
                let mut j = i;
                while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
                    j += 1;
                }
                parts.push(if i == j {
                    ids[i].to_string()
                } else {
                    format!("{}-{}", ids[i], ids[j])
                });
                i = j + 1;
            }
            let mut spec = parts.join(",");
            if let Some(k) = throttle {
                spec += &format!("%{k}");
            }
            (off, spec)
        })
        .collect()
}

/// The scripts folder of the run folder `out`: `<out>/slurm`, or for a run
/// folder in object storage `<workdir>/.backforth/slurm-<16 hex of the URL>`
/// (the tasks run in `workdir`, so the nodes see it where they see the
/// submit folder).
pub fn scripts_dir(out: &str, workdir: &Path) -> PathBuf {
    if crate::remote::is_url(out) {
        workdir.join(".backforth").join(format!(
            "slurm-{}",
            backforth::hash::hex(out.trim_end_matches('/').as_bytes(), 16)
        ))
    } else {
        Path::new(out).join("slurm")
    }
}

/// Quote for a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Write the array scripts and the merge script (see the module docs) into
/// `dir` (the scripts folder, [`scripts_dir`]); `out` is the run folder
/// (a path or a URL) the merge job merges. `backforth` is the binary the
/// tasks run, `config` the effective config (already written), `workdir`
/// the tasks' working folder (relative input paths resolve against it).
/// Errors: I/O.
pub fn write_scripts(
    dir: &Path,
    out: &str,
    backforth: &Path,
    config: &Path,
    workdir: &Path,
    opts: &SlurmOptions,
) -> Result<Scripts> {
    std::fs::create_dir_all(dir.join("logs"))?;
    let ranks: Vec<u32> = opts
        .ranks
        .clone()
        .unwrap_or_else(|| (0..opts.num_shards).collect());
    if let Some(bad) = ranks.iter().find(|&&r| r >= opts.num_shards) {
        bail!("rank {bad} is out of range for {} shards", opts.num_shards);
    }
    let logs = dir.join("logs");
    let header = |name: &str, output: String| -> String {
        let mut h = format!(
            "#!/bin/bash\n# written by backforth slurm submit\n#SBATCH --job-name={name}\n#SBATCH --output={output}\n#SBATCH --chdir={}\n",
            workdir.display()
        );
        for (flag, v) in [
            ("time", opts.time.clone()),
            ("partition", opts.partition.clone()),
            ("cpus-per-task", opts.cpus_per_task.map(|c| c.to_string())),
            ("mem", opts.mem.clone()),
            ("gres", opts.gres.clone()),
        ] {
            if let Some(v) = v {
                h += &format!("#SBATCH --{flag}={v}\n");
            }
        }
        for e in &opts.extra {
            h += &format!("#SBATCH {e}\n");
        }
        h
    };
    let exe = sh_quote(&backforth.display().to_string());
    let cfg = sh_quote(&config.display().to_string());
    let arrays = |prefix: &str, sub: &str, name: &str| -> Result<Vec<ArrayScript>> {
        let mut v = Vec::new();
        for (offset, spec) in array_specs(&ranks, opts.max_array_size, opts.throttle) {
            let mut s = header(name, format!("{}/{prefix}-%A_%a.log", logs.display()));
            s +=
                &format!("#SBATCH --array={spec}\n#SBATCH --requeue\n#SBATCH --open-mode=append\n");
            s += &format!(
                "set -euo pipefail\nexport BACKFORTH_SHARD_OFFSET={offset}\nexec {exe} {sub} --config {cfg} --num-shards {}\n",
                opts.num_shards
            );
            let path = dir.join(format!("{prefix}-{offset}.sbatch"));
            std::fs::write(&path, s)?;
            v.push(ArrayScript {
                path,
                offset,
                array: spec,
            });
        }
        Ok(v)
    };
    let scripts = arrays("shards", "run", &opts.job_name)?;
    let (sign, buckets, cluster) = if opts.dedup {
        let sign = arrays("sign", "shard dedup sign", &format!("{}-sign", opts.job_name))?;
        let mut c = header(
            &format!("{}-cluster", opts.job_name),
            format!("{}/cluster-%j.log", logs.display()),
        );
        c += &format!(
            "set -euo pipefail\nexec {exe} shard dedup cluster --config {cfg} --num-shards {}\n",
            opts.num_shards
        );
        let p = dir.join("cluster.sbatch");
        std::fs::write(&p, c)?;
        let mut bk = header(
            &format!("{}-buckets", opts.job_name),
            format!("{}/buckets-%A_%a.log", logs.display()),
        );
        bk += &format!(
            "#SBATCH --array=0-{}\nset -euo pipefail\nexec {exe} shard dedup buckets --config {cfg} --num-shards {}\n",
            opts.dedup_bands.max(1) - 1,
            opts.num_shards
        );
        let bp = dir.join("buckets.sbatch");
        std::fs::write(&bp, bk)?;
        (sign, Some(bp), Some(p))
    } else {
        (Vec::new(), None, None)
    };
    let mut m = header(
        &format!("{}-merge", opts.job_name),
        format!("{}/merge-%j.log", logs.display()),
    );
    m += &format!(
        "set -euo pipefail\nexec {} shard merge --out {}\n",
        sh_quote(&backforth.display().to_string()),
        sh_quote(out)
    );
    let merge = dir.join("merge.sbatch");
    std::fs::write(&merge, m)?;
    Ok(Scripts {
        sign,
        buckets,
        cluster,
        shards: scripts,
        merge,
    })
}

/// Job ids of a submission.
#[derive(Debug, Clone)]
pub struct Submitted {
    pub sign_jobs: Vec<String>,
    pub buckets_job: Option<String>,
    pub cluster_job: Option<String>,
    pub array_jobs: Vec<String>,
    pub merge_job: String,
}

fn after(ids: &[String]) -> Vec<String> {
    if ids.is_empty() {
        vec![]
    } else {
        vec![format!("--dependency=afterok:{}", ids.join(":"))]
    }
}

fn sbatch(args: &[String]) -> Result<String> {
    let o = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .output()
        .context("running sbatch (is Slurm installed and SLURM_CONF set?)")?;
    if !o.status.success() {
        bail!(
            "sbatch {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    // --parsable prints "jobid" or "jobid;cluster"
    let s = String::from_utf8_lossy(&o.stdout);
    Ok(s.trim().split(';').next().unwrap_or("").to_string())
}

/// Submit the chain: (sign arrays → bucket array → cluster →) shard arrays → merge, each
/// step `afterok` on the one before. Errors: sbatch missing or refusing a
/// script (its message).
pub fn submit(s: &Scripts) -> Result<Submitted> {
    let mut sign_jobs = Vec::new();
    for a in &s.sign {
        sign_jobs.push(sbatch(&[a.path.display().to_string()])?);
    }
    let buckets_job = match &s.buckets {
        Some(b) => {
            let mut args = after(&sign_jobs);
            args.push(b.display().to_string());
            Some(sbatch(&args)?)
        }
        None => None,
    };
    let cluster_job = match &s.cluster {
        Some(c) => {
            let mut args = after(&buckets_job.iter().cloned().collect::<Vec<_>>());
            args.push(c.display().to_string());
            Some(sbatch(&args)?)
        }
        None => None,
    };
    let before_shards: Vec<String> = cluster_job.iter().cloned().collect();
    let mut array_jobs = Vec::new();
    for a in &s.shards {
        let mut args = after(&before_shards);
        args.push(a.path.display().to_string());
        array_jobs.push(sbatch(&args)?);
    }
    let mut args = after(&array_jobs);
    args.push(s.merge.display().to_string());
    let merge_job = sbatch(&args)?;
    Ok(Submitted {
        sign_jobs,
        buckets_job,
        cluster_job,
        array_jobs,
        merge_job,
    })
}

/// The cluster's `MaxArraySize` from `scontrol show config`, if it answers.
pub fn cluster_max_array_size() -> Option<u32> {
    let o = Command::new("scontrol")
        .args(["show", "config"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_split_at_max_array_size_with_offsets() {
        assert_eq!(
            array_specs(&[0, 1, 2, 3], 1001, Some(2)),
            vec![(0, "0-3%2".to_string())]
        );
        assert_eq!(
            array_specs(&[5, 2, 999, 1000, 1001, 2500], 1000, None),
            vec![
                (0, "2,5,999".into()),
                (1000, "0-1".into()),
                (2000, "500".into())
            ]
        );
        assert!(array_specs(&[], 10, None).is_empty());
    }

    #[test]
    fn scripts_name_the_binary_config_and_offset() {
        let d = tempfile::tempdir().unwrap();
        let opts = SlurmOptions {
            num_shards: 3,
            ranks: Some(vec![1, 2]),
            max_array_size: 2,
            throttle: Some(1),
            time: Some("01:00:00".into()),
            job_name: "bf".into(),
            ..Default::default()
        };
        let written = write_scripts(
            &d.path().join("slurm"),
            "/run",
            Path::new("/opt/bf it's"),
            Path::new("/c.toml"),
            Path::new("/w"),
            &opts,
        )
        .unwrap();
        assert!(written.sign.is_empty() && written.cluster.is_none());
        let (scripts, merge) = (written.shards, written.merge);
        assert_eq!(scripts.len(), 2);
        let s0 = std::fs::read_to_string(&scripts[0].path).unwrap();
        assert!(s0.contains("#SBATCH --array=1%1\n"), "{s0}");
        assert!(s0.contains("#SBATCH --time=01:00:00\n"));
        assert!(s0.contains("export BACKFORTH_SHARD_OFFSET=0\nexec '/opt/bf it'\\''s' run --config '/c.toml' --num-shards 3\n"), "{s0}");
        let s1 = std::fs::read_to_string(&scripts[1].path).unwrap();
        assert!(
            s1.contains("#SBATCH --array=0%1\n") && s1.contains("BACKFORTH_SHARD_OFFSET=2\n"),
            "{s1}"
        );
        let m = std::fs::read_to_string(merge).unwrap();
        assert!(m.contains(" shard merge --out '/run'\n"), "{m}");
        assert_eq!(
            scripts_dir("/run", Path::new("/w")),
            Path::new("/run/slurm")
        );
        let remote = scripts_dir("s3://b/run", Path::new("/w"));
        assert_eq!(remote.parent().unwrap(), Path::new("/w/.backforth"));
        assert!(remote
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("slurm-"));
        let with_dedup = write_scripts(
            &d.path().join("slurm"),
            "/run",
            Path::new("/b"),
            Path::new("/c"),
            Path::new("/w"),
            &SlurmOptions {
                dedup: true,
                dedup_bands: 14,
                ..opts.clone()
            },
        )
        .unwrap();
        assert_eq!(with_dedup.sign.len(), 2);
        let bk = std::fs::read_to_string(with_dedup.buckets.unwrap()).unwrap();
        assert!(
            bk.contains("#SBATCH --array=0-13\n")
                && bk.contains("dedup buckets --config '/c' --num-shards 3"),
            "{bk}"
        );
        let sign = std::fs::read_to_string(&with_dedup.sign[0].path).unwrap();
        assert!(
            sign.contains("exec '/b' shard dedup sign --config '/c' --num-shards 3\n"),
            "{sign}"
        );
        let cluster = std::fs::read_to_string(with_dedup.cluster.unwrap()).unwrap();
        assert!(
            cluster.contains("dedup cluster --config '/c' --num-shards 3"),
            "{cluster}"
        );
        let e = write_scripts(
            &d.path().join("slurm"),
            "/run",
            Path::new("b"),
            Path::new("c"),
            Path::new("/w"),
            &SlurmOptions {
                ranks: Some(vec![3]),
                ..opts
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("out of range"));
    }
}
