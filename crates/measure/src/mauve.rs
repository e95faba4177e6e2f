//! MAUVE: how far apart two sets of texts are in embedding space
//! (Pillutla et al. 2021, arXiv:2102.01454; JMLR 2023 for the smoothed
//! `mauve_star`). Back-and-forth translation uses it to show that rewritten
//! responses sit between web text and distilled responses (Nguyen et al. 2024,
//! §4).
//!
//! The steps follow the reference package `mauve-text` 0.4 with its default
//! settings, so numbers are comparable:
//! 1. stack Q then P, L2-normalise each row;
//! 2. PCA (centred, not whitened), keep the fewest leading components whose
//!    explained-variance ratio reaches `explained_variance` (0.9);
//! 3. k-means with `num_buckets` clusters (default `max(2, round(min(|P|,|Q|)/10))`),
//!    best inertia of `num_redo` (5) restarts of at most `max_iter` (500) Lloyd steps;
//! 4. histograms p, q of cluster labels; for mixture weights
//!    w ∈ linspace(1e-6, 1−1e-6, 25), r = w·p + (1−w)·q, the divergence curve
//!    point is (exp(−c·KL(q‖r)), exp(−c·KL(p‖r))) with c = 5, plus the two
//!    extreme points (0, 1) and (1, 0);
//! 5. MAUVE = mean of the trapezoid areas under the curve taken along x and
//!    along y. Identical sets give 1, sets in disjoint clusters give ≈ 0.
//!
//! Our own code because no Rust crate implements MAUVE; the clustering differs
//! from the reference in one respect: k-means++ seeding instead of faiss'
//! random seeding (fewer restarts needed for the same inertia). PCA uses
//! nalgebra's symmetric eigendecomposition of the covariance, distances use
//! its matrix product.

use nalgebra::{DMatrix, SymmetricEigen};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Row-major data matrix (rows = texts, columns = embedding dimensions).
pub type Matrix = DMatrix<f32>;

/// Settings, defaults as in `mauve-text` 0.4 `compute_mauve`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MauveSettings {
    /// Histogram size; `None` = `max(2, round(min(|P|, |Q|) / 10))`.
    pub num_buckets: Option<usize>,
    /// Share of variance the kept PCA components must explain (0 < v < 1).
    pub explained_variance: f64,
    /// k-means restarts; the lowest-inertia clustering is kept.
    pub num_redo: usize,
    /// Most Lloyd iterations per restart.
    pub max_iter: usize,
    /// Number of mixture weights on the divergence curve.
    pub curve_points: usize,
    /// The scaling constant c in exp(−c·KL).
    pub scaling: f64,
    /// Seed for k-means seeding.
    pub seed: u64,
}

impl Default for MauveSettings {
    fn default() -> Self {
        Self {
            num_buckets: None,
            explained_variance: 0.9,
            num_redo: 5,
            max_iter: 500,
            curve_points: 25,
            scaling: 5.0,
            seed: 25,
        }
    }
}

/// Result of [`mauve`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MauveResult {
    /// MAUVE in [0, 1]; higher = P closer to Q.
    pub mauve: f64,
    /// Frontier integral in [0, 1]; lower = closer.
    pub frontier_integral: f64,
    /// MAUVE on add-½ smoothed histograms (Pillutla et al. 2023).
    pub mauve_star: f64,
    /// Frontier integral on the smoothed histograms.
    pub frontier_integral_star: f64,
    /// Number of clusters used.
    pub num_buckets: usize,
    /// PCA dimensions kept before clustering.
    pub pca_dims: usize,
    /// Cluster histogram of P (sums to 1).
    pub p_hist: Vec<f64>,
    /// Cluster histogram of Q (sums to 1).
    pub q_hist: Vec<f64>,
    /// Divergence curve points (x, y), including the two extreme points.
    pub divergence_curve: Vec<(f64, f64)>,
    /// Sizes of P and Q.
    pub n_p: usize,
    pub n_q: usize,
}

/// Errors: either set empty, rows of different widths, or non-finite values.
pub fn mauve(p: &[Vec<f32>], q: &[Vec<f32>], s: &MauveSettings) -> Result<MauveResult, String> {
    if p.is_empty() || q.is_empty() {
        return Err(format!(
            "MAUVE needs two non-empty sets (got {} and {})",
            p.len(),
            q.len()
        ));
    }
    let d = q[0].len();
    if d == 0 || p.iter().chain(q).any(|r| r.len() != d) {
        return Err("MAUVE: all embeddings must have the same non-zero width".into());
    }
    if p.iter().chain(q).flatten().any(|x| !x.is_finite()) {
        return Err("MAUVE: non-finite value in embeddings".into());
    }
    if !(s.explained_variance > 0.0 && s.explained_variance < 1.0) {
        return Err(format!(
            "MAUVE: explained_variance must be in (0, 1), got {}",
            s.explained_variance
        ));
    }
    let k = s
        .num_buckets
        .unwrap_or_else(|| ((p.len().min(q.len()) as f64 / 10.0).round() as usize).max(2));
    let n = p.len() + q.len();
    // 1. Q first, then P, as the reference does; L2-normalise rows.
    let mut data = DMatrix::<f32>::zeros(n, d);
    for (i, row) in q.iter().chain(p).enumerate() {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        for (j, x) in row.iter().enumerate() {
            data[(i, j)] = x / norm;
        }
    }
    // 2. PCA.
    let (proj, pca_dims) = pca_reduce(&data, s.explained_variance);
    // 3. k-means.
    let labels = kmeans(
        &proj,
        k.min(n),
        s.num_redo.max(1),
        s.max_iter.max(1),
        s.seed,
    );
    // 4. histograms.
    let mut qc = vec![0f64; k];
    let mut pc = vec![0f64; k];
    for (i, &l) in labels.iter().enumerate() {
        if i < q.len() {
            qc[l] += 1.0;
        } else {
            pc[l] += 1.0;
        }
    }
    let norm = |v: &[f64]| {
        let t: f64 = v.iter().sum();
        v.iter().map(|x| x / t).collect::<Vec<_>>()
    };
    let (ph, qh) = (norm(&pc), norm(&qc));
    let smooth = |v: &[f64]| norm(&v.iter().map(|x| x + 0.5).collect::<Vec<_>>());
    let (ps, qs) = (smooth(&pc), smooth(&qc));
    let curve = divergence_curve(&ph, &qh, s.curve_points, s.scaling);
    Ok(MauveResult {
        mauve: area(&curve),
        frontier_integral: frontier_integral(&ph, &qh),
        mauve_star: area(&divergence_curve(&ps, &qs, s.curve_points, s.scaling)),
        frontier_integral_star: frontier_integral(&ps, &qs),
        num_buckets: k,
        pca_dims,
        p_hist: ph,
        q_hist: qh,
        divergence_curve: curve,
        n_p: p.len(),
        n_q: q.len(),
    })
}

/// KL(p‖q) over multinomials; +∞ if p has mass where q has none.
pub fn kl(p: &[f64], q: &[f64]) -> f64 {
    let mut t = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        if a > 0.0 {
            if b == 0.0 {
                return f64::INFINITY;
            }
            t += a * (a / b).ln();
        }
    }
    t
}

/// The divergence curve of two histograms (see the module docs, step 4).
pub fn divergence_curve(p: &[f64], q: &[f64], points: usize, c: f64) -> Vec<(f64, f64)> {
    let mut out = vec![(1.0, 0.0)]; // the reference's extreme point (KL 0, ∞) after exp(−c·)
    let points = points.max(2);
    for i in 0..points {
        let w = 1e-6 + (1.0 - 2e-6) * i as f64 / (points - 1) as f64;
        let r: Vec<f64> = p
            .iter()
            .zip(q)
            .map(|(a, b)| w * a + (1.0 - w) * b)
            .collect();
        out.push(((-c * kl(q, &r)).exp(), (-c * kl(p, &r)).exp()));
    }
    out.push((0.0, 1.0));
    out
}

/// Mean of the trapezoid areas under the curve sorted by x and sorted by y
/// (module docs, step 5). The curve falls as x grows, so points with equal x
/// are taken in falling y (the envelope); the reference leaves such ties to
/// numpy's unstable argsort.
pub fn area(curve: &[(f64, f64)]) -> f64 {
    let trap = |pts: &mut Vec<(f64, f64)>| {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(b.1.total_cmp(&a.1)));
        pts.windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum::<f64>()
    };
    let mut a: Vec<(f64, f64)> = curve.to_vec();
    let mut b: Vec<(f64, f64)> = curve.iter().map(|&(x, y)| (y, x)).collect();
    0.5 * (trap(&mut a) + trap(&mut b))
}

/// Frontier integral (Pillutla et al. 2023), scaled by 2 as the reference does.
pub fn frontier_integral(p: &[f64], q: &[f64]) -> f64 {
    let mut t = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        if a == 0.0 && b == 0.0 {
        } else if a == 0.0 {
            t += b / 4.0;
        } else if b == 0.0 {
            t += a / 4.0;
        } else if (a - b).abs() > 1e-8 {
            t += 0.25 * (a + b) - 0.5 * (a * b * (a.ln() - b.ln()) / (a - b));
        }
    }
    2.0 * t
}

/// Centre the rows, project on the leading principal components that explain
/// `explained` of the variance. Returns (n × k projection, k).
pub fn pca_reduce(data: &DMatrix<f32>, explained: f64) -> (DMatrix<f32>, usize) {
    let (comps, k) = pca_components(data, Some(explained), None);
    (project(data, &comps, k), k)
}

/// Project rows on the first 2 principal components (for 2-D maps).
pub fn pca_2d(data: &DMatrix<f32>) -> DMatrix<f32> {
    let (comps, k) = pca_components(data, None, Some(2));
    project(data, &comps, k)
}

fn project(data: &DMatrix<f32>, comps: &DMatrix<f64>, k: usize) -> DMatrix<f32> {
    let (n, d) = data.shape();
    let mean: Vec<f64> = (0..d)
        .map(|j| data.column(j).iter().map(|&x| x as f64).sum::<f64>() / n as f64)
        .collect();
    let mut centred = DMatrix::<f64>::zeros(n, d);
    for i in 0..n {
        for j in 0..d {
            centred[(i, j)] = data[(i, j)] as f64 - mean[j];
        }
    }
    let proj = centred * comps.columns(0, k);
    proj.map(|x| x as f32)
}

/// Principal directions as columns, sorted by decreasing variance, and how many to keep.
fn pca_components(
    data: &DMatrix<f32>,
    explained: Option<f64>,
    fixed: Option<usize>,
) -> (DMatrix<f64>, usize) {
    let (n, d) = data.shape();
    let x = data.map(|v| v as f64);
    let mean: Vec<f64> = (0..d).map(|j| x.column(j).sum() / n as f64).collect();
    let mut c = x.clone();
    for i in 0..n {
        for j in 0..d {
            c[(i, j)] -= mean[j];
        }
    }
    let cov = c.tr_mul(&c) / (n.saturating_sub(1).max(1)) as f64;
    let eig = SymmetricEigen::new(cov);
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let vals: Vec<f64> = order.iter().map(|&i| eig.eigenvalues[i].max(0.0)).collect();
    let mut comps = DMatrix::<f64>::zeros(d, d);
    for (new, &old) in order.iter().enumerate() {
        comps.set_column(new, &eig.eigenvectors.column(old));
    }
    // sklearn keeps min(n, d) components; ratios are over the total variance.
    let total: f64 = vals.iter().sum();
    let max_k = n.min(d).max(1);
    let k = match (explained, fixed) {
        (_, Some(f)) => f.min(d),
        (Some(e), None) if total > 0.0 => {
            let mut cum = 0.0;
            let mut k = max_k;
            for (i, v) in vals.iter().take(max_k).enumerate() {
                cum += v / total;
                if cum >= e {
                    k = i + 1;
                    break;
                }
            }
            k
        }
        _ => 1,
    };
    (comps, k.max(1))
}

/// k-means (k-means++ seeding, Lloyd iterations until no label changes or
/// `max_iter`), best inertia of `restarts`. Returns one label per row.
pub fn kmeans(
    x: &DMatrix<f32>,
    k: usize,
    restarts: usize,
    max_iter: usize,
    seed: u64,
) -> Vec<usize> {
    let n = x.nrows();
    let k = k.clamp(1, n.max(1));
    let sq: Vec<f32> = (0..n).map(|i| x.row(i).norm_squared()).collect();
    let mut best: Option<(f64, Vec<usize>)> = None;
    for r in 0..restarts {
        let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(r as u64 * 0x9E37_79B9));
        let mut centres = seed_plus_plus(x, &sq, k, &mut rng);
        let mut labels = vec![usize::MAX; n];
        let mut inertia = 0.0;
        for _ in 0..max_iter {
            let (new_labels, dist) = assign(x, &sq, &centres);
            inertia = dist.iter().map(|&d| d as f64).sum();
            let changed = new_labels != labels;
            labels = new_labels;
            if !changed {
                break;
            }
            centres = update(x, &labels, k, &dist, &mut rng);
        }
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, labels));
        }
    }
    best.map(|b| b.1).unwrap_or_default()
}

fn seed_plus_plus(x: &DMatrix<f32>, sq: &[f32], k: usize, rng: &mut ChaCha8Rng) -> DMatrix<f32> {
    let (n, d) = x.shape();
    let mut centres = DMatrix::<f32>::zeros(k, d);
    let first = rng.gen_range(0..n);
    centres.set_row(0, &x.row(first));
    let mut dmin: Vec<f32> = (0..n)
        .map(|i| (x.row(i) - x.row(first)).norm_squared())
        .collect();
    for c in 1..k {
        let total: f64 = dmin.iter().map(|&v| v as f64).sum();
        let pick = if total <= 0.0 {
            rng.gen_range(0..n)
        } else {
            let mut t = rng.gen::<f64>() * total;
            let mut pick = n - 1;
            for (i, &v) in dmin.iter().enumerate() {
                t -= v as f64;
                if t <= 0.0 {
                    pick = i;
                    break;
                }
            }
            pick
        };
        centres.set_row(c, &x.row(pick));
        let cn = sq[pick];
        for i in 0..n {
            let dot = x.row(i).dot(&x.row(pick));
            let dist = (sq[i] + cn - 2.0 * dot).max(0.0);
            if dist < dmin[i] {
                dmin[i] = dist;
            }
        }
    }
    centres
}

/// Nearest centre per row via ‖x‖² − 2x·c + ‖c‖² (one matrix product).
fn assign(x: &DMatrix<f32>, sq: &[f32], centres: &DMatrix<f32>) -> (Vec<usize>, Vec<f32>) {
    let k = centres.nrows();
    let cn: Vec<f32> = (0..k).map(|j| centres.row(j).norm_squared()).collect();
    let dots = x * centres.transpose(); // n × k
    let n = x.nrows();
    let mut labels = vec![0usize; n];
    let mut dist = vec![0f32; n];
    for i in 0..n {
        let mut best = f32::INFINITY;
        let mut bj = 0;
        for j in 0..k {
            let v = cn[j] - 2.0 * dots[(i, j)];
            if v < best {
                best = v;
                bj = j;
            }
        }
        labels[i] = bj;
        dist[i] = (best + sq[i]).max(0.0);
    }
    (labels, dist)
}

/// Centroids of the labels; an empty cluster is re-seeded at the point
/// farthest from its centre (so k clusters survive, as faiss does by splitting).
fn update(
    x: &DMatrix<f32>,
    labels: &[usize],
    k: usize,
    dist: &[f32],
    rng: &mut ChaCha8Rng,
) -> DMatrix<f32> {
    let (n, d) = x.shape();
    let mut sums = DMatrix::<f64>::zeros(k, d);
    let mut counts = vec![0usize; k];
    for i in 0..n {
        counts[labels[i]] += 1;
        for j in 0..d {
            sums[(labels[i], j)] += x[(i, j)] as f64;
        }
    }
    let mut far: Vec<usize> = (0..n).collect();
    far.sort_by(|&a, &b| dist[b].total_cmp(&dist[a]));
    let mut far = far.into_iter();
    let mut centres = DMatrix::<f32>::zeros(k, d);
    for c in 0..k {
        if counts[c] == 0 {
            let i = far.next().unwrap_or_else(|| rng.gen_range(0..n));
            centres.set_row(c, &x.row(i));
        } else {
            for j in 0..d {
                centres[(c, j)] = (sums[(c, j)] / counts[c] as f64) as f32;
            }
        }
    }
    centres
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points around `centres` with Gaussian-ish noise (sum of uniforms), deterministic.
    fn blob(centres: &[Vec<f32>], n: usize, noise: f32, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let c = &centres[i % centres.len()];
                c.iter()
                    .map(|&v| v + noise * ((0..4).map(|_| rng.gen::<f32>() - 0.5).sum::<f32>()))
                    .collect()
            })
            .collect()
    }

    fn centres(count: usize, d: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..count)
            .map(|_| (0..d).map(|_| rng.gen::<f32>() * 2.0 - 1.0).collect())
            .collect()
    }

    #[test]
    fn identical_sets_score_one_disjoint_near_zero() {
        let c = centres(8, 16, 1);
        let p = blob(&c, 400, 0.05, 2);
        let same = mauve(&p, &p, &MauveSettings::default()).unwrap();
        assert!((same.mauve - 1.0).abs() < 1e-6, "{}", same.mauve);
        assert!(same.frontier_integral < 1e-9);
        let other = centres(8, 16, 99);
        let q = blob(&other, 400, 0.05, 3);
        let far = mauve(&p, &q, &MauveSettings::default()).unwrap();
        assert!(far.mauve < 0.05, "disjoint sets gave {}", far.mauve);
        assert!(far.frontier_integral > 0.9);
    }

    #[test]
    fn two_samples_of_one_distribution_score_high() {
        let c = centres(8, 16, 1);
        let a = blob(&c, 500, 0.3, 10);
        let b = blob(&c, 500, 0.3, 11);
        let r = mauve(&a, &b, &MauveSettings::default()).unwrap();
        assert!(r.mauve > 0.9, "{}", r.mauve);
        assert_eq!(r.num_buckets, 50);
    }

    #[test]
    fn monotone_as_sets_are_mixed() {
        let c1 = centres(6, 16, 1);
        let c2 = centres(6, 16, 2);
        let p = blob(&c1, 300, 0.1, 5);
        let pure_q = blob(&c2, 300, 0.1, 6);
        let fresh_p = blob(&c1, 300, 0.1, 7);
        let mut last = -1.0;
        for mix in [0usize, 75, 150, 225, 300] {
            // q = `mix` points from P's distribution, the rest from the other.
            let q: Vec<Vec<f32>> = fresh_p[..mix]
                .iter()
                .chain(&pure_q[mix..])
                .cloned()
                .collect();
            let m = mauve(&p, &q, &MauveSettings::default()).unwrap().mauve;
            assert!(m > last, "mix {mix}: {m} not above {last}");
            last = m;
        }
        assert!(last > 0.9);
    }

    #[test]
    fn curve_and_area_on_known_histograms() {
        let p = [0.5, 0.5];
        let c = divergence_curve(&p, &p, 25, 5.0);
        assert_eq!(c.len(), 27);
        assert!((area(&c) - 1.0).abs() < 1e-9);
        // Disjoint supports: every interior point has KL = −ln(w) or −ln(1−w).
        let c = divergence_curve(&[1.0, 0.0], &[0.0, 1.0], 25, 5.0);
        assert!(area(&c) < 0.01);
        assert!((frontier_integral(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(kl(&[1.0, 0.0], &[0.0, 1.0]), f64::INFINITY);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(mauve(&[], &[vec![1.0]], &MauveSettings::default()).is_err());
        assert!(mauve(&[vec![1.0, 2.0]], &[vec![1.0]], &MauveSettings::default()).is_err());
        assert!(mauve(&[vec![f32::NAN]], &[vec![1.0]], &MauveSettings::default()).is_err());
    }

    #[test]
    fn pca_keeps_enough_components() {
        // Variance only along two axes: 2 components explain everything.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let mut m = DMatrix::<f32>::zeros(200, 10);
        for i in 0..200 {
            m[(i, 0)] = rng.gen::<f32>() * 10.0;
            m[(i, 3)] = rng.gen::<f32>() * 5.0;
        }
        let (proj, k) = pca_reduce(&m, 0.9);
        assert_eq!(k, 2);
        assert_eq!(proj.shape(), (200, 2));
    }
}
