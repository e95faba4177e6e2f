//! Which shard this process is: `--shard I` when given, else the rank the
//! scheduler sets — Slurm job arrays (`SLURM_ARRAY_TASK_ID`, plus
//! `BACKFORTH_SHARD_OFFSET` for arrays split at the cluster's
//! `MaxArraySize`), Kubernetes Indexed Jobs (`JOB_COMPLETION_INDEX`).

use anyhow::{bail, Context, Result};

/// Environment variable added to `SLURM_ARRAY_TASK_ID` (a split array's
/// second part starts its task ids at 0 again).
pub const OFFSET_VAR: &str = "BACKFORTH_SHARD_OFFSET";

/// The shard index: `explicit` if given, else from the environment (read
/// through `env`, so tests need not set process variables). Errors: no
/// rank anywhere, a variable that is not a number, an index ≥ `num_shards`.
pub fn shard_index(
    explicit: Option<u32>,
    num_shards: u32,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<u32> {
    let num = |name: &str| -> Result<Option<u32>> {
        match env(name) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<u32>()
                .map(Some)
                .with_context(|| format!("{name}={v:?} is not a shard number")),
        }
    };
    let i = if let Some(i) = explicit {
        i
    } else if let Some(t) = num("SLURM_ARRAY_TASK_ID")? {
        t + num(OFFSET_VAR)?.unwrap_or(0)
    } else if let Some(t) = num("JOB_COMPLETION_INDEX")? {
        t
    } else {
        bail!("--num-shards without a shard index: pass --shard I, or run as a Slurm array task (SLURM_ARRAY_TASK_ID) or a Kubernetes Indexed Job (JOB_COMPLETION_INDEX)")
    };
    if i >= num_shards {
        bail!(
            "shard index {i} is out of range for {num_shards} shards (0..{})",
            num_shards - 1
        );
    }
    Ok(i)
}

/// [`shard_index`] over the process environment.
pub fn shard_index_from_env(explicit: Option<u32>, num_shards: u32) -> Result<u32> {
    shard_index(explicit, num_shards, &|k| std::env::var(k).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn rank_from_flag_slurm_offset_and_kubernetes() {
        assert_eq!(
            shard_index(Some(2), 4, &with(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap(),
            2
        );
        assert_eq!(
            shard_index(None, 4, &with(&[("SLURM_ARRAY_TASK_ID", "1")])).unwrap(),
            1
        );
        assert_eq!(
            shard_index(
                None,
                3000,
                &with(&[("SLURM_ARRAY_TASK_ID", "5"), (OFFSET_VAR, "1000")])
            )
            .unwrap(),
            1005
        );
        assert_eq!(
            shard_index(None, 4, &with(&[("JOB_COMPLETION_INDEX", "3")])).unwrap(),
            3
        );
        let e = shard_index(None, 4, &with(&[])).unwrap_err().to_string();
        assert!(e.contains("--shard I"), "{e}");
        let e = shard_index(None, 4, &with(&[("JOB_COMPLETION_INDEX", "4")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of range"), "{e}");
        let e = shard_index(None, 4, &with(&[("SLURM_ARRAY_TASK_ID", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a shard number"), "{e}");
    }
}
