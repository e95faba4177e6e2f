//! The scorer on top of the alignment features: one hidden layer of tanh
//! units and a sigmoid output, trained with Adam on weighted binary
//! cross-entropy. Written here rather than on candle because it has a few
//! hundred weights and runs inside the checks of every export: a tensor
//! library in the method crate would cost more build time than the whole
//! model costs to run, and the forward pass is two small loops.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// A trained (or training) network: standardisation, weights, and the Adam
/// state that lets training resume exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Mlp {
    /// Per-feature mean and standard deviation (inputs are standardised).
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Hidden layer: `hidden × inputs`, row-major, and its biases.
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    /// Output layer weights (`hidden`) and bias.
    pub w2: Vec<f32>,
    pub b2: f32,
}

/// Training settings.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct FitOptions {
    pub hidden: usize,
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub seed: u64,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            hidden: 16,
            epochs: 40,
            batch: 64,
            learning_rate: 0.01,
            l2: 1e-4,
            seed: 42,
        }
    }
}

/// Where an interrupted fit stands: the network, Adam's moments and the
/// epochs done (see [`fit`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FitState {
    pub net: Mlp,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub step: u64,
    pub epochs_done: usize,
    pub options: FitOptions,
}

impl Mlp {
    fn n_in(&self) -> usize {
        self.mean.len()
    }

    fn hidden(&self) -> usize {
        self.b1.len()
    }

    fn standardise(&self, x: &[f32]) -> Vec<f32> {
        x.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    /// The output probability (0–1) for one raw feature vector.
    /// Panics only on a vector of the wrong length (a programming error:
    /// callers build vectors from the same feature list as the model).
    pub fn predict(&self, x: &[f32]) -> f32 {
        assert_eq!(x.len(), self.n_in(), "feature vector length");
        let z = self.standardise(x);
        let mut out = self.b2;
        for j in 0..self.hidden() {
            let row = &self.w1[j * self.n_in()..(j + 1) * self.n_in()];
            let a = self.b1[j] + row.iter().zip(&z).map(|(w, v)| w * v).sum::<f32>();
            out += self.w2[j] * a.tanh();
        }
        sigmoid(out)
    }

    fn params_len(&self) -> usize {
        self.w1.len() + self.b1.len() + self.w2.len() + 1
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A fresh network for `xs` (mean/std from the data, Xavier-uniform weights from `seed`).
pub fn init(xs: &[Vec<f32>], opts: &FitOptions) -> FitState {
    let d = xs.first().map_or(0, Vec::len);
    let n = xs.len().max(1) as f32;
    let mut mean = vec![0f32; d];
    for x in xs {
        for (m, v) in mean.iter_mut().zip(x) {
            *m += v / n;
        }
    }
    let mut std = vec![0f32; d];
    for x in xs {
        for ((s, v), m) in std.iter_mut().zip(x).zip(&mean) {
            *s += (v - m) * (v - m) / n;
        }
    }
    let std: Vec<f32> = std.into_iter().map(|s| s.sqrt().max(1e-3)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed);
    let h = opts.hidden;
    let a1 = (6.0 / (d + h) as f32).sqrt();
    let a2 = (6.0 / (h + 1) as f32).sqrt();
    let net = Mlp {
        mean,
        std,
        w1: (0..h * d).map(|_| rng.gen_range(-a1..a1)).collect(),
        b1: vec![0.0; h],
        w2: (0..h).map(|_| rng.gen_range(-a2..a2)).collect(),
        b2: 0.0,
    };
    let p = net.params_len();
    FitState {
        net,
        m: vec![0.0; p],
        v: vec![0.0; p],
        step: 0,
        epochs_done: 0,
        options: *opts,
    }
}

/// Train `state` on `xs` (features) and `ys` (1 = good) until
/// `options.epochs`, calling `after_epoch(state, mean loss)` after each epoch
/// (the caller checkpoints there). Classes are weighted to count equally.
/// Epoch `e` shuffles with a generator seeded by `seed + e`, so a fit
/// resumed from a checkpoint reaches the same weights as one that ran
/// through. Errors: whatever `after_epoch` returns.
pub fn fit(
    state: &mut FitState,
    xs: &[Vec<f32>],
    ys: &[bool],
    mut after_epoch: impl FnMut(&FitState, f32) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let opts = state.options;
    let pos = ys.iter().filter(|y| **y).count().max(1) as f32;
    let neg = ys.iter().filter(|y| !**y).count().max(1) as f32;
    let (wp, wn) = (ys.len() as f32 / (2.0 * pos), ys.len() as f32 / (2.0 * neg));
    let zs: Vec<Vec<f32>> = xs.iter().map(|x| state.net.standardise(x)).collect();
    let (d, h) = (state.net.n_in(), state.net.hidden());
    let mut order: Vec<usize> = (0..xs.len()).collect();
    while state.epochs_done < opts.epochs {
        let mut rng =
            rand_chacha::ChaCha8Rng::seed_from_u64(opts.seed.wrapping_add(state.epochs_done as u64 + 1));
        order.sort_unstable();
        order.shuffle(&mut rng);
        let mut loss_sum = 0f32;
        for batch in order.chunks(opts.batch.max(1)) {
            let mut g = vec![0f32; state.net.params_len()];
            for &i in batch {
                let z = &zs[i];
                let net = &state.net;
                let mut act = vec![0f32; h];
                let mut out = net.b2;
                for j in 0..h {
                    let row = &net.w1[j * d..(j + 1) * d];
                    act[j] = (net.b1[j] + row.iter().zip(z).map(|(w, v)| w * v).sum::<f32>()).tanh();
                    out += net.w2[j] * act[j];
                }
                let p = sigmoid(out);
                let (y, w) = if ys[i] { (1.0, wp) } else { (0.0, wn) };
                loss_sum += -w * (y * p.max(1e-7).ln() + (1.0 - y) * (1.0 - p).max(1e-7).ln());
                let dout = w * (p - y);
                // layout: w1 | b1 | w2 | b2
                for j in 0..h {
                    g[h * d + h + j] += dout * act[j];
                    let da = dout * net.w2[j] * (1.0 - act[j] * act[j]);
                    g[h * d + j] += da;
                    for k in 0..d {
                        g[j * d + k] += da * z[k];
                    }
                }
                g[h * d + 2 * h] += dout;
            }
            let bn = batch.len() as f32;
            state.step += 1;
            let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
            let t = state.step as i32;
            let lr = opts.learning_rate * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t));
            let net = &mut state.net;
            let mut params: Vec<&mut f32> = net
                .w1
                .iter_mut()
                .chain(net.b1.iter_mut())
                .chain(net.w2.iter_mut())
                .chain(std::iter::once(&mut net.b2))
                .collect();
            for (i, p) in params.iter_mut().enumerate() {
                let decay = if i < h * d || (i >= h * d + h && i < h * d + 2 * h) {
                    opts.l2 * **p
                } else {
                    0.0
                };
                let gi = g[i] / bn + decay;
                state.m[i] = b1 * state.m[i] + (1.0 - b1) * gi;
                state.v[i] = b2 * state.v[i] + (1.0 - b2) * gi * gi;
                **p -= lr * state.m[i] / (state.v[i].sqrt() + eps);
            }
        }
        state.epochs_done += 1;
        after_epoch(state, loss_sum / xs.len().max(1) as f32)?;
    }
    Ok(())
}

/// Area under the ROC curve of `scores` for `ys` (1 = positive): the chance
/// that a random positive outscores a random negative (ties count half).
/// `None` when one class is absent.
pub fn auc(scores: &[f32], ys: &[bool]) -> Option<f64> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let (np, nn) = (
        ys.iter().filter(|y| **y).count() as f64,
        ys.iter().filter(|y| !**y).count() as f64,
    );
    if np == 0.0 || nn == 0.0 {
        return None;
    }
    // rank sum of the positives, average ranks for ties
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            if ys[k] {
                rank_sum += r;
            }
        }
        i = j + 1;
    }
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_xor_like_data_and_resumes_to_the_same_weights() {
        // y = (x0 > 0) xor (x1 > 0): not linearly separable
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let xs: Vec<Vec<f32>> = (0..400)
            .map(|_| vec![rng.gen_range(-1.0..1.0), rng.gen_range(-1.0..1.0)])
            .collect();
        let ys: Vec<bool> = xs.iter().map(|x| (x[0] > 0.0) != (x[1] > 0.0)).collect();
        let opts = FitOptions { epochs: 60, ..Default::default() };
        let mut a = init(&xs, &opts);
        fit(&mut a, &xs, &ys, |_, _| Ok(())).unwrap();
        let acc = xs.iter().zip(&ys).filter(|(x, y)| (a.net.predict(x) > 0.5) == **y).count();
        assert!(acc > 360, "accuracy {acc} of 400");
        // stop after 25 epochs, serialise, resume: same weights as one run
        let mut b = init(&xs, &opts);
        let stop = fit(&mut b, &xs, &ys, |s, _| {
            anyhow::ensure!(s.epochs_done < 25, "killed");
            Ok(())
        });
        assert!(stop.is_err());
        let mut c: FitState = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        fit(&mut c, &xs, &ys, |_, _| Ok(())).unwrap();
        assert_eq!(c.net, a.net);
        let s: Vec<f32> = xs.iter().map(|x| a.net.predict(x)).collect();
        assert!(auc(&s, &ys).unwrap() > 0.95);
        assert_eq!(auc(&[0.1, 0.9], &[false, true]), Some(1.0));
        assert_eq!(auc(&[0.5, 0.5], &[false, true]), Some(0.5));
        assert_eq!(auc(&[0.5], &[true]), None);
    }
}
