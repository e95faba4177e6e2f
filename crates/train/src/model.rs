//! Decoder-only transformers (llama, qwen2) written from plain differentiable
//! candle ops, with LoRA on chosen projections.
//!
//! Why our own model code and not candle-transformers: its llama and qwen2
//! models use fused kernels (RMSNorm, last-dim softmax, rotary embedding)
//! that have no backward pass in candle 0.9 (candle issue #2168), so
//! gradients stop there without an error. Every op here (matmul, exp, sum,
//! mul, narrow, cat, index_select, gather) has one.
//!
//! Shapes: token ids `(batch, time)` as u32; hidden states are kept flat as
//! `(batch·time, n_embd)` outside attention. Base weights are frozen f32
//! tensors in GGUF layout (`(out, in)`); only the LoRA factors are [`Var`]s.

use crate::gguf::{AdapterTensor, Arch, BaseWeights, HParams};
use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor, Var, D};
use rand::{Rng, RngCore, SeedableRng};
use serde::{Deserialize, Serialize};

/// Projections LoRA can target, by their GGUF tensor stem; the Hugging Face
/// (PEFT) module names are accepted as aliases.
pub const TARGETS: [(&str, &str); 7] = [
    ("attn_q", "q_proj"),
    ("attn_k", "k_proj"),
    ("attn_v", "v_proj"),
    ("attn_output", "o_proj"),
    ("ffn_gate", "gate_proj"),
    ("ffn_up", "up_proj"),
    ("ffn_down", "down_proj"),
];

/// LoRA settings (Hu et al. 2021): update `ΔW = (alpha / rank) · B·A` with
/// `A` of shape `(rank, in)` and `B` of shape `(out, rank)`; `B` starts at
/// zero so the adapted model starts as the base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoraConfig {
    /// Rank r of the update.
    pub rank: usize,
    /// Scale numerator: the update is multiplied by `alpha / rank`.
    pub alpha: f32,
    /// Dropout probability on the LoRA path's input during training.
    pub dropout: f32,
    /// Target projections: GGUF stems (`attn_q`, …) or PEFT names (`q_proj`, …).
    pub targets: Vec<String>,
}

impl Default for LoraConfig {
    fn default() -> Self {
        LoraConfig {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: TARGETS.iter().map(|(g, _)| g.to_string()).collect(),
        }
    }
}

impl LoraConfig {
    /// The GGUF stems targeted. Errors: an unknown name.
    pub fn stems(&self) -> Result<Vec<&'static str>> {
        let mut out = Vec::new();
        for t in &self.targets {
            match TARGETS.iter().find(|(g, h)| g == t || h == t) {
                Some((g, _)) => {
                    if !out.contains(g) {
                        out.push(*g)
                    }
                }
                None => bail!(
                    "unknown LoRA target {t:?}; known: {}",
                    TARGETS
                        .iter()
                        .map(|(g, h)| format!("{g}/{h}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        Ok(out)
    }

    /// The multiplier `alpha / rank` applied to `B·A`.
    pub fn scale(&self) -> f64 {
        self.alpha as f64 / self.rank as f64
    }
}

/// The two trainable factors of one adapted projection.
pub struct LoraPair {
    /// `(rank, in)`.
    pub a: Var,
    /// `(out, rank)`.
    pub b: Var,
}

/// A linear map `y = x·Wᵀ (+ bias) (+ scale · dropout(x)·Aᵀ·Bᵀ)`.
pub struct Proj {
    /// GGUF name of the base weight, e.g. `blk.3.ffn_up.weight`.
    pub name: String,
    w: Tensor,
    bias: Option<Tensor>,
    /// The LoRA factors when this projection is a target.
    pub lora: Option<LoraPair>,
}

struct Block {
    attn_norm: Tensor,
    q: Proj,
    k: Proj,
    v: Proj,
    o: Proj,
    ffn_norm: Tensor,
    gate: Proj,
    up: Proj,
    down: Proj,
}

/// Per-forward settings: LoRA dropout is on only in training, with masks
/// drawn from a seeded generator so a run (and its resume) is reproducible.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Dropout probability (0 = off, as in evaluation).
    pub dropout: f32,
    /// Seed of this pass's dropout masks (derive it from the run seed and step).
    pub seed: u64,
}

impl Pass {
    /// No dropout: evaluation and inference.
    pub fn eval() -> Self {
        Pass {
            dropout: 0.0,
            seed: 0,
        }
    }
}

/// A transformer with frozen base weights and optional LoRA factors.
pub struct Model {
    pub hp: HParams,
    embd: Tensor,
    output: Tensor,
    output_norm: Tensor,
    blocks: Vec<Block>,
    /// LoRA settings in force (`None`: the base model).
    pub lora: Option<LoraConfig>,
    device: Device,
}

fn take(w: &mut BaseWeights, name: &str) -> Result<Tensor> {
    w.tensors
        .remove(name)
        .with_context(|| format!("the model has no tensor {name}"))
}

impl Model {
    /// Build the model from base weights, with fresh LoRA factors when
    /// `lora` is given: `A` uniform in ±1/√in (seeded by `seed`), `B` zero.
    /// Errors: a missing tensor or an unknown target.
    pub fn new(
        mut w: BaseWeights,
        lora: Option<LoraConfig>,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        let hp = w.hp.clone();
        let stems = match &lora {
            Some(l) => l.stems()?,
            None => vec![],
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let mut blocks = Vec::with_capacity(hp.n_layer);
        for i in 0..hp.n_layer {
            let mut proj = |stem: &str, w: &mut BaseWeights| -> Result<Proj> {
                let name = format!("blk.{i}.{stem}.weight");
                let weight = take(w, &name)?;
                let bias = w.tensors.remove(&format!("blk.{i}.{stem}.bias"));
                let lora = match &lora {
                    Some(l) if stems.contains(&stem) => {
                        let (out, inp) = weight.dims2()?;
                        let bound = 1.0 / (inp as f32).sqrt();
                        let a: Vec<f32> = (0..l.rank * inp)
                            .map(|_| rng.gen_range(-bound..bound))
                            .collect();
                        Some(LoraPair {
                            a: Var::from_tensor(&Tensor::from_vec(a, (l.rank, inp), device)?)?,
                            b: Var::zeros((out, l.rank), DType::F32, device)?,
                        })
                    }
                    _ => None,
                };
                Ok(Proj {
                    name,
                    w: weight,
                    bias,
                    lora,
                })
            };
            let q = proj("attn_q", &mut w)?;
            let k = proj("attn_k", &mut w)?;
            let v = proj("attn_v", &mut w)?;
            let o = proj("attn_output", &mut w)?;
            let gate = proj("ffn_gate", &mut w)?;
            let up = proj("ffn_up", &mut w)?;
            let down = proj("ffn_down", &mut w)?;
            blocks.push(Block {
                attn_norm: take(&mut w, &format!("blk.{i}.attn_norm.weight"))?,
                q,
                k,
                v,
                o,
                ffn_norm: take(&mut w, &format!("blk.{i}.ffn_norm.weight"))?,
                gate,
                up,
                down,
            });
        }
        let embd = take(&mut w, "token_embd.weight")?;
        // Tied embeddings (SmolLM2, small Qwen2.5): no separate output matrix.
        let output = w
            .tensors
            .remove("output.weight")
            .unwrap_or_else(|| embd.clone());
        Ok(Model {
            hp,
            embd,
            output,
            output_norm: take(&mut w, "output_norm.weight")?,
            blocks,
            lora,
            device: device.clone(),
        })
    }

    /// Every adapted projection, in layer order.
    pub fn projections(&self) -> impl Iterator<Item = &Proj> {
        self.blocks
            .iter()
            .flat_map(|b| [&b.q, &b.k, &b.v, &b.o, &b.gate, &b.up, &b.down])
    }

    /// The trainable variables (LoRA `A` then `B` of each adapted projection).
    pub fn vars(&self) -> Vec<Var> {
        self.projections()
            .filter_map(|p| p.lora.as_ref())
            .flat_map(|l| [l.a.clone(), l.b.clone()])
            .collect()
    }

    /// The adapter as GGUF-named tensor pairs (see [`crate::gguf::write_adapter`]).
    pub fn adapter_tensors(&self) -> Vec<AdapterTensor> {
        self.projections()
            .filter_map(|p| {
                p.lora.as_ref().map(|l| AdapterTensor {
                    base: p.name.clone(),
                    a: l.a.as_tensor().clone(),
                    b: l.b.as_tensor().clone(),
                })
            })
            .collect()
    }

    /// Set LoRA factors from an adapter (e.g. to continue training or to
    /// evaluate one). Errors: a tensor for a projection that is not adapted,
    /// or of another shape.
    pub fn set_adapter(&self, tensors: &[AdapterTensor]) -> Result<()> {
        for t in tensors {
            let p = self
                .projections()
                .find(|p| p.name == t.base)
                .with_context(|| format!("adapter tensor {} matches no projection", t.base))?;
            let l = p.lora.as_ref().with_context(|| {
                format!("{} is not a LoRA target in this configuration", t.base)
            })?;
            l.a.set(&t.a)?;
            l.b.set(&t.b)?;
        }
        Ok(())
    }

    fn linear(&self, p: &Proj, x: &Tensor, pass: Pass, salt: u64) -> Result<Tensor> {
        let mut y = x.matmul(&p.w.t()?)?;
        if let Some(b) = &p.bias {
            y = y.broadcast_add(b)?;
        }
        if let (Some(l), Some(cfg)) = (&p.lora, &self.lora) {
            let xin = if pass.dropout > 0.0 {
                dropout(
                    x,
                    pass.dropout,
                    pass.seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                )?
            } else {
                x.clone()
            };
            let delta = xin
                .matmul(&l.a.as_tensor().t()?)?
                .matmul(&l.b.as_tensor().t()?)?;
            y = (y + (delta * cfg.scale())?)?;
        }
        Ok(y)
    }

    /// RMSNorm from plain ops: `x / sqrt(mean(x²) + eps) · weight` over the last dim.
    fn rms_norm(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
        Ok(x.broadcast_div(&(ms + self.hp.rms_eps)?.sqrt()?)?
            .broadcast_mul(w)?)
    }

    /// Rotary position embedding on `(batch, heads, time, head_dim)`.
    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        let (b, h, t, d) = x.dims4()?;
        let half = d / 2;
        Ok(match self.hp.arch {
            // llama.cpp's "normal" rotation: pairs (2i, 2i+1).
            Arch::Llama => {
                let x = x.reshape((b, h, t, half, 2))?;
                let x0 = x.narrow(4, 0, 1)?.squeeze(4)?;
                let x1 = x.narrow(4, 1, 1)?.squeeze(4)?;
                let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
                let r1 = (x0.broadcast_mul(sin)? + x1.broadcast_mul(cos)?)?;
                Tensor::stack(&[r0, r1], 4)?.reshape((b, h, t, d))?
            }
            // NeoX rotation: pairs (i, i + d/2).
            Arch::Qwen2 => {
                let x0 = x.narrow(3, 0, half)?;
                let x1 = x.narrow(3, half, half)?;
                let r0 = (x0.broadcast_mul(cos)? - x1.broadcast_mul(sin)?)?;
                let r1 = (x1.broadcast_mul(cos)? + x0.broadcast_mul(sin)?)?;
                Tensor::cat(&[r0, r1], 3)?
            }
        })
    }

    fn rope_tables(&self, t: usize) -> Result<(Tensor, Tensor)> {
        let half = self.hp.head_dim / 2;
        let mut cos = Vec::with_capacity(t * half);
        let mut sin = Vec::with_capacity(t * half);
        for pos in 0..t {
            for i in 0..half {
                let inv = self
                    .hp
                    .rope_base
                    .powf(-(2.0 * i as f64) / self.hp.head_dim as f64);
                let a = pos as f64 * inv;
                cos.push(a.cos() as f32);
                sin.push(a.sin() as f32);
            }
        }
        Ok((
            Tensor::from_vec(cos, (t, half), &self.device)?,
            Tensor::from_vec(sin, (t, half), &self.device)?,
        ))
    }

    /// Final hidden states, flat `(batch·time, n_embd)`, for token ids
    /// `(batch, time)`. Attention is causal; right padding therefore never
    /// reaches real tokens. Errors: shape mismatches (ids out of vocabulary).
    pub fn hidden(&self, ids: &Tensor, pass: Pass) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let hp = &self.hp;
        let (hd, nh, nkv) = (hp.head_dim, hp.n_head, hp.n_head_kv);
        let mut x = self.embd.index_select(&ids.flatten_all()?, 0)?;
        let (cos, sin) = self.rope_tables(t)?;
        let mask: Vec<f32> = (0..t * t)
            .map(|k| {
                if k % t > k / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (t, t), &self.device)?;
        let heads = |y: Tensor, n: usize| -> Result<Tensor> {
            Ok(y.reshape((b, t, n, hd))?.transpose(1, 2)?.contiguous()?)
        };
        for (i, blk) in self.blocks.iter().enumerate() {
            let salt = (i as u64) << 8;
            let h = self.rms_norm(&x, &blk.attn_norm)?;
            let q = self.rope(
                &heads(self.linear(&blk.q, &h, pass, salt | 1)?, nh)?,
                &cos,
                &sin,
            )?;
            let k = self.rope(
                &heads(self.linear(&blk.k, &h, pass, salt | 1)?, nkv)?,
                &cos,
                &sin,
            )?;
            let v = heads(self.linear(&blk.v, &h, pass, salt | 1)?, nkv)?;
            let (k, v) = if nh != nkv {
                let rep = nh / nkv;
                let expand = |z: Tensor| -> Result<Tensor> {
                    Ok(z.unsqueeze(2)?
                        .broadcast_as((b, nkv, rep, t, hd))?
                        .contiguous()?
                        .reshape((b, nh, t, hd))?)
                };
                (expand(k)?, expand(v)?)
            } else {
                (k, v)
            };
            let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (hd as f64).sqrt()))?
                .broadcast_add(&mask)?;
            let att = candle_nn::ops::softmax(&scores, D::Minus1)?.matmul(&v)?;
            let att = att
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * t, nh * hd))?;
            x = (x + self.linear(&blk.o, &att, pass, salt | 4)?)?;
            let h = self.rms_norm(&x, &blk.ffn_norm)?;
            let g = self.linear(&blk.gate, &h, pass, salt | 5)?;
            let u = self.linear(&blk.up, &h, pass, salt | 5)?;
            let m = (g.silu()? * u)?;
            x = (x + self.linear(&blk.down, &m, pass, salt | 6)?)?;
        }
        self.rms_norm(&x, &self.output_norm)
    }

    /// Vocabulary logits `(rows, vocab)` for rows of flat hidden states.
    pub fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        Ok(hidden.matmul(&self.output.t()?)?)
    }

    /// Mean cross-entropy (nats per token) of `targets` at flat `positions`
    /// of the hidden states of `ids` `(batch, time)`; with the sum and count
    /// for accumulation. Errors: empty `positions`.
    pub fn loss(
        &self,
        ids: &Tensor,
        positions: &[u32],
        targets: &[u32],
        pass: Pass,
    ) -> Result<Tensor> {
        if positions.is_empty() {
            bail!("no completion tokens to score");
        }
        let h = self.hidden(ids, pass)?;
        let pos = Tensor::new(positions, &self.device)?;
        let sel = h.index_select(&pos, 0)?;
        let logp = candle_nn::ops::log_softmax(&self.logits(&sel)?, D::Minus1)?;
        let tgt = Tensor::new(targets, &self.device)?.unsqueeze(1)?;
        let picked = logp.gather(&tgt, 1)?;
        Ok(picked.mean_all()?.neg()?)
    }
}

/// Inverted dropout with a mask from a seeded generator: entries kept with
/// probability `1 − p` are scaled by `1 / (1 − p)`.
fn dropout(x: &Tensor, p: f32, seed: u64) -> Result<Tensor> {
    let n = x.elem_count();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let keep = 1.0 / (1.0 - p);
    let threshold = (p as f64 * u32::MAX as f64) as u32;
    let mask: Vec<f32> = (0..n)
        .map(|_| {
            if rng.next_u32() >= threshold {
                keep
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
    Ok((x * mask)?)
}
