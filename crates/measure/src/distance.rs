//! Distances between embedded text sets: MAUVE for chosen pairs and a 2-D
//! PCA map of all sets together (the back-and-forth paper's distribution
//! analyses, Nguyen et al. 2024 §5). Embedding happens elsewhere (any
//! sentence encoder); this module only takes vectors.

use crate::mauve::{self, MauveSettings};
use crate::report::{MapPoint, MauvePair};
use anyhow::{Context, Result};

/// One embedded text set: its name and one unit vector per text.
pub type EmbeddedSet = (String, Vec<Vec<f32>>);

/// Evenly spaced sample of at most `max` indices of `0..n` (deterministic).
pub fn sample(n: usize, max: usize) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    (0..max).map(|i| i * n / max).collect()
}

/// Every pair of set names, instructions left out (they are not responses).
pub fn default_pairs(sets: &[EmbeddedSet]) -> Vec<(String, String)> {
    let names: Vec<&String> = sets
        .iter()
        .map(|v| &v.0)
        .filter(|n| n.as_str() != "instructions")
        .collect();
    let mut p = Vec::new();
    for i in 0..names.len() {
        for j in i + 1..names.len() {
            p.push((names[i].clone(), names[j].clone()));
        }
    }
    p
}

/// MAUVE for each pair of set names. A pair with fewer than 2 texts on a
/// side is skipped (logged); a pair under 100 texts is computed with a
/// warning that MAUVE cannot tell such small sets apart reliably.
/// Errors: a name that is not a set, MAUVE's own.
pub fn mauve_pairs(
    sets: &[EmbeddedSet],
    pairs: &[(String, String)],
    settings: &MauveSettings,
) -> Result<Vec<MauvePair>> {
    let get = |n: &str| {
        sets.iter()
            .find(|v| v.0 == n)
            .map(|v| &v.1)
            .with_context(|| format!("--mauve: no set named {n}"))
    };
    let mut out = Vec::new();
    for (p, q) in pairs {
        let (pv, qv) = (get(p)?, get(q)?);
        if pv.len() < 2 || qv.len() < 2 {
            tracing::warn!("MAUVE {p} vs {q}: skipped (needs at least 2 texts in each set)");
            continue;
        }
        let r = mauve::mauve(pv, qv, settings).map_err(anyhow::Error::msg)?;
        tracing::info!(
            "MAUVE {p} vs {q}: {:.3} ({} vs {} texts, {} buckets, {} PCA dims)",
            r.mauve, r.n_p, r.n_q, r.num_buckets, r.pca_dims
        );
        if r.n_p.min(r.n_q) < 100 {
            tracing::warn!(
                "MAUVE on {} and {} texts with {} buckets is far below the thousands of texts it is meant for; it cannot tell these sets apart reliably",
                r.n_p, r.n_q, r.num_buckets
            );
        }
        out.push(MauvePair { p: p.clone(), q: q.clone(), result: r });
    }
    Ok(out)
}

/// A 2-D PCA map of a sample of at most `points` texts per set (all sets
/// projected together); empty under 3 points.
pub fn map(sets: &[EmbeddedSet], points: usize) -> Vec<MapPoint> {
    let mut names = Vec::new();
    let mut rows: Vec<&Vec<f32>> = Vec::new();
    for (name, v) in sets {
        for i in sample(v.len(), points) {
            names.push(name.clone());
            rows.push(&v[i]);
        }
    }
    if rows.len() < 3 {
        return vec![];
    }
    let d = rows[0].len();
    let m = mauve::Matrix::from_fn(rows.len(), d, |i, j| rows[i][j]);
    let proj = mauve::pca_2d(&m);
    names
        .into_iter()
        .enumerate()
        .map(|(i, set)| MapPoint { set, x: proj[(i, 0)], y: proj[(i, 1)] })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_even_and_pairs_skip_instructions() {
        assert_eq!(sample(10, 3), vec![0, 3, 6]);
        assert_eq!(sample(2, 5), vec![0, 1]);
        let sets: Vec<EmbeddedSet> = ["documents", "instructions", "rewrite"]
            .iter()
            .map(|n| (n.to_string(), vec![]))
            .collect();
        assert_eq!(default_pairs(&sets), vec![("documents".into(), "rewrite".into())]);
        assert!(map(&sets, 10).is_empty());
    }
}
