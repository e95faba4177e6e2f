//! AdamW with decoupled weight decay (Loshchilov & Hutter 2019) and a
//! linear warm-up + cosine learning-rate schedule.
//!
//! Why our own and not `candle_nn::AdamW`: its moment estimates are private,
//! so a checkpoint could not hold them and a resumed run would restart the
//! optimiser cold, changing the trajectory. Here the moments are plain
//! tensors saved and restored with the LoRA factors.

use anyhow::Result;
use candle_core::{backprop::GradStore, Tensor, Var};
use serde::{Deserialize, Serialize};

/// Optimiser settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdamWConfig {
    /// Peak learning rate (after warm-up).
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled weight decay per step, as a fraction of `lr` (PyTorch's convention).
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW over a fixed list of variables; `m` and `v` are the first and
/// second moment estimates, one per variable, same shapes.
pub struct AdamW {
    pub cfg: AdamWConfig,
    pub vars: Vec<Var>,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
    /// Updates applied so far (bias correction uses it).
    pub t: u64,
}

impl AdamW {
    /// Fresh optimiser state (zero moments). Errors: tensor allocation.
    pub fn new(vars: Vec<Var>, cfg: AdamWConfig) -> Result<Self> {
        let m = vars
            .iter()
            .map(|v| v.as_tensor().zeros_like())
            .collect::<candle_core::Result<Vec<_>>>()?;
        let v = m.clone();
        Ok(AdamW {
            cfg,
            vars,
            m,
            v,
            t: 0,
        })
    }

    /// One update at learning rate `lr` from `grads` divided by `grad_div`
    /// (the number of accumulated micro-batches). Variables without a
    /// gradient are left as they are.
    pub fn step(&mut self, grads: &[Option<Tensor>], lr: f64) -> Result<()> {
        self.t += 1;
        let c = &self.cfg;
        let bc1 = 1.0 - c.beta1.powi(self.t as i32);
        let bc2 = 1.0 - c.beta2.powi(self.t as i32);
        for (i, var) in self.vars.iter().enumerate() {
            let Some(g) = &grads[i] else { continue };
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&m / bc1)? / ((&v / bc2)?.sqrt()? + c.eps)?)?;
            let theta = var.as_tensor();
            let decayed = if c.weight_decay > 0.0 {
                (theta * (1.0 - lr * c.weight_decay))?
            } else {
                theta.clone()
            };
            var.set(&(decayed - (update * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// Gradients of `vars` from a backward pass (None where the graph did not reach).
pub fn grads_of(store: &GradStore, vars: &[Var]) -> Vec<Option<Tensor>> {
    vars.iter()
        .map(|v| store.get(v.as_tensor()).cloned())
        .collect()
}

/// Learning rate at update `step` (0-based) of `total`: linear warm-up over
/// `warmup` steps to `peak`, then cosine decay to `peak · min_ratio`.
pub fn schedule(step: u64, total: u64, warmup: u64, peak: f64, min_ratio: f64) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup) as f64 / span).min(1.0);
    let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
    peak * (min_ratio + (1.0 - min_ratio) * cos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_the_floor() {
        assert!((schedule(0, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        assert!((schedule(9, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((schedule(10, 100, 10, 1.0, 0.1) - 1.0).abs() < 1e-12);
        assert!((schedule(100, 100, 10, 1.0, 0.1) - 0.1).abs() < 1e-12);
        let mid = schedule(55, 100, 10, 1.0, 0.0);
        assert!((mid - 0.5).abs() < 1e-9, "{mid}");
    }

    #[test]
    fn adamw_moves_a_parameter_downhill() {
        let dev = candle_core::Device::Cpu;
        let x = Var::new(&[3.0f32, -2.0], &dev).unwrap();
        let mut opt = AdamW::new(
            vec![x.clone()],
            AdamWConfig {
                lr: 0.1,
                ..Default::default()
            },
        )
        .unwrap();
        for _ in 0..200 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            let g = loss.backward().unwrap();
            opt.step(&grads_of(&g, &opt.vars.clone()), 0.1).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|z| z.abs() < 0.05), "{v:?}");
    }
}
