//! `backforth bench-mauve`: MAUVE between two raw f32 embedding files, timed.

use crate::cli::MauveBenchArgs;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: MauveBenchArgs) -> Result<()> {
    let read = |p: &PathBuf| -> Result<Vec<Vec<f32>>> {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        anyhow::ensure!(
            b.len() % (4 * a.dim) == 0,
            "{}: {} bytes is not a whole number of {}-float rows",
            p.display(),
            b.len(),
            a.dim
        );
        let f: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let mut rows: Vec<Vec<f32>> = f.chunks(a.dim).map(|c| c.to_vec()).collect();
        if a.n > 0 {
            rows.truncate(a.n);
        }
        Ok(rows)
    };
    let (p, q) = (read(&a.p)?, read(&a.q)?);
    let t = std::time::Instant::now();
    let r = backforth_measure::mauve::mauve(
        &p,
        &q,
        &backforth_measure::mauve::MauveSettings {
            num_redo: a.redo,
            ..Default::default()
        },
    )
    .map_err(anyhow::Error::msg)?;
    println!(
        "{}",
        serde_json::json!({"what": "mauve", "n_p": r.n_p, "n_q": r.n_q, "buckets": r.num_buckets, "pca_dims": r.pca_dims, "mauve": r.mauve, "mauve_star": r.mauve_star, "seconds": t.elapsed().as_secs_f64()})
    );
    Ok(())
}
