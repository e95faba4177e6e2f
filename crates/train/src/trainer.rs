//! The training loop: seeded length-bucketed batches, gradient accumulation,
//! warm-up + cosine schedule, held-out loss, checkpoints, resume.
//!
//! Output folder (`out`):
//! - `train_config.json`: the settings, base model id and data hash (a
//!   rerun with other settings into the same folder is refused);
//! - `progress.jsonl`: one line per update (step, loss, lr, tokens,
//!   tokens/s) and per evaluation (eval_loss);
//! - `checkpoints/step-NNNNNN/`: LoRA factors and optimiser moments
//!   (`state.safetensors`) and the step (`state.json`), written under a
//!   temporary name and renamed; the last two are kept;
//! - `adapter.gguf` (llama.cpp), `peft/` (PEFT safetensors + config) and
//!   `train_summary.json` at the end.
//!
//! Killed at any point (even `kill -9`), a rerun with the same settings
//! resumes from the last checkpoint: the batch order, dropout masks and
//! schedule are functions of the seed and the step, so the resumed run takes
//! the same path as an uninterrupted one (up to float summation order).

use crate::data::Encoded;
use crate::gguf::{self, Arch};
use crate::model::{LoraConfig, Model, Pass};
use crate::optim::{grads_of, schedule, AdamW, AdamWConfig};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Training settings (`[train]` in a config, or `backforth train` flags).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub lora: LoraConfig,
    pub optim: AdamWConfig,
    /// Passes over the training split (ignored when `max_steps` > 0).
    pub epochs: usize,
    /// Stop after this many updates (0 = `epochs` decides).
    pub max_steps: u64,
    /// Sequences per micro-batch.
    pub batch_size: usize,
    /// Most padded tokens (sequences × longest length) in one forward and
    /// backward pass: a micro-batch above it runs as several passes whose
    /// gradients add up to the same update (memory, not math: activations
    /// and their gradients grow with it: about 7 GB at 512 tokens for
    /// SmolLM2-135M on the CPU, 15 GB at 1024). 0 = no limit.
    pub max_pass_tokens: usize,
    /// Micro-batches per update.
    pub grad_accum: usize,
    /// Longest example in tokens (prompt + completion); longer ones are
    /// skipped and counted, not cut.
    pub max_seq: usize,
    /// Share of updates spent warming the learning rate up.
    pub warmup_ratio: f64,
    /// Final learning rate as a share of the peak.
    pub min_lr_ratio: f64,
    /// Share of examples held out for the eval loss (at least 1 when > 0).
    pub eval_fraction: f64,
    /// Evaluate every this many updates (0 = at the start and end only).
    pub eval_every: u64,
    /// Checkpoint every this many updates (0 = only at the end).
    pub checkpoint_every: u64,
    /// Seed of the split, batch order, LoRA init and dropout.
    pub seed: u64,
    /// A Hugging Face model folder (safetensors) whose weights replace the
    /// GGUF's dequantized ones for training (e.g. the unquantized original);
    /// empty = the GGUF's own. See [`crate::peft::overlay_hf_weights`].
    pub base_weights: String,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lora: LoraConfig::default(),
            optim: AdamWConfig::default(),
            epochs: 3,
            max_steps: 0,
            batch_size: 4,
            max_pass_tokens: 512,
            grad_accum: 1,
            max_seq: 512,
            warmup_ratio: 0.05,
            min_lr_ratio: 0.1,
            eval_fraction: 0.1,
            eval_every: 0,
            checkpoint_every: 20,
            seed: 42,
            base_weights: String::new(),
        }
    }
}

/// What a finished training run reports (`train_summary.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainSummary {
    pub base_model: String,
    pub adapter_gguf: String,
    pub peft_dir: String,
    pub steps: u64,
    pub train_examples: usize,
    pub eval_examples: usize,
    /// Examples left out, by reason (`too_long`, `empty_completion`).
    pub skipped: HashMap<String, u64>,
    /// Completion tokens trained on by this process (a resumed run counts its own part).
    pub tokens: u64,
    /// Mean training loss of the first and last 10% of updates (nats/token).
    pub train_loss_first: f64,
    pub train_loss_last: f64,
    /// Held-out loss before training (the base model) and after.
    pub eval_loss_start: Option<f64>,
    pub eval_loss_end: Option<f64>,
    /// Update step this process started from (0, or the checkpoint resumed).
    pub resumed_from: u64,
    /// Prompt + completion tokens (no padding) through the training loop in this process.
    #[serde(default)]
    pub tokens_processed: u64,
    /// Seconds in the training loop in this process (no model loading).
    #[serde(default)]
    pub loop_seconds: f64,
    /// `tokens_processed / loop_seconds`.
    pub tokens_per_s: f64,
    pub seconds: f64,
}

/// One line of `progress.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ProgressLine {
    pub step: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f64>,
}

impl ProgressLine {
    /// A held-out loss measured after `step` updates.
    fn eval(step: u64, eval_loss: f64) -> Self {
        ProgressLine {
            step,
            loss: None,
            lr: None,
            tokens: None,
            tokens_per_s: None,
            eval_loss: Some(eval_loss),
        }
    }
}

/// A batch ready for the model: ids `(batch, time)` right-padded, and the
/// flat positions whose next token is a completion token, with those tokens.
struct Batch {
    ids: Tensor,
    positions: Vec<u32>,
    targets: Vec<u32>,
    tokens: usize,
}

fn make_batch(examples: &[&Encoded], device: &Device) -> Result<Batch> {
    let t = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
    let mut ids = Vec::with_capacity(examples.len() * t);
    let mut positions = Vec::new();
    let mut targets = Vec::new();
    let mut tokens = 0;
    for (b, e) in examples.iter().enumerate() {
        ids.extend_from_slice(&e.ids);
        ids.extend(std::iter::repeat(0u32).take(t - e.ids.len()));
        tokens += e.ids.len();
        for p in e.n_prompt.saturating_sub(1)..e.ids.len() - 1 {
            positions.push((b * t + p) as u32);
            targets.push(e.ids[p + 1]);
        }
    }
    Ok(Batch {
        ids: Tensor::from_vec(ids, (examples.len(), t), device)?,
        positions,
        targets,
        tokens,
    })
}

/// A micro-batch cut into passes of at most `budget` padded tokens
/// (sequences × longest), in order; a sequence longer than the budget gets
/// a pass of its own. `budget` 0 = one pass.
fn passes<'a>(ex: &[&'a Encoded], budget: usize) -> Vec<Vec<&'a Encoded>> {
    let mut out: Vec<Vec<&Encoded>> = Vec::new();
    let mut cur: Vec<&Encoded> = Vec::new();
    let mut longest = 0;
    for &e in ex {
        let l = longest.max(e.ids.len());
        if budget > 0 && !cur.is_empty() && l * (cur.len() + 1) > budget {
            out.push(std::mem::take(&mut cur));
            longest = 0;
        }
        longest = longest.max(e.ids.len());
        cur.push(e);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The micro-batches of `n_updates · accum` draws, in order: per epoch the
/// training indices are shuffled, cut into pools of 8 batches, each pool
/// sorted by length (little padding) and cut into batches, and the batches
/// shuffled. Deterministic in `seed`.
fn plan(lengths: &[usize], batch: usize, needed: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut out = Vec::new();
    let mut epoch = 0u64;
    while out.len() < needed && !lengths.is_empty() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (0xE90C_u64 << 32) ^ epoch);
        let mut idx: Vec<usize> = (0..lengths.len()).collect();
        idx.shuffle(&mut rng);
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for pool in idx.chunks(batch * 8) {
            let mut pool = pool.to_vec();
            pool.sort_by_key(|&i| lengths[i]);
            batches.extend(pool.chunks(batch).map(|c| c.to_vec()));
        }
        batches.shuffle(&mut rng);
        out.extend(batches);
        epoch += 1;
    }
    out.truncate(needed);
    out
}

/// Held-out split of `n` examples: `(train, eval)` index lists, seeded by
/// `cfg.seed` and sized by `cfg.eval_fraction` (at least one held out when
/// the fraction is positive and there are two or more examples).
pub fn held_out_split(n: usize, cfg: &TrainConfig) -> (Vec<usize>, Vec<usize>) {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(
        cfg.seed ^ 0x5EED,
    ));
    let n_eval = if cfg.eval_fraction > 0.0 && n > 1 {
        ((n as f64 * cfg.eval_fraction).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let eval = order[..n_eval].to_vec();
    (order[n_eval..].to_vec(), eval)
}

fn split_seed(seed: u64, step: u64, micro: usize) -> u64 {
    let h = blake3::hash(format!("dropout {seed} {step} {micro}").as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

fn eval_loss(model: &Model, eval: &[&Encoded], cfg: &TrainConfig, device: &Device) -> Result<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for chunk in eval.chunks(cfg.batch_size.max(1)) {
        for part in passes(chunk, cfg.max_pass_tokens) {
            let b = make_batch(&part, device)?;
            let l = model.loss(&b.ids, &b.positions, &b.targets, Pass::eval())?;
            sum += l.to_scalar::<f32>()? as f64 * b.targets.len() as f64;
            n += b.targets.len();
        }
    }
    Ok(sum / n.max(1) as f64)
}

/// The device training runs on: the first CUDA GPU when built with the
/// `cuda` feature and one is present, else the CPU.
pub fn default_device() -> Device {
    #[cfg(feature = "cuda")]
    if let Ok(d) = Device::new_cuda(0) {
        return d;
    }
    Device::Cpu
}

/// Settings fingerprint stored in `train_config.json`.
#[derive(Serialize, Deserialize, PartialEq)]
struct RunId {
    base_model: String,
    data_blake3: String,
    config: TrainConfig,
}

fn checkpoint_dir(out: &Path, step: u64) -> PathBuf {
    out.join("checkpoints").join(format!("step-{step:06}"))
}

/// Steps of the complete checkpoints in `out` (a `state.json` is written
/// last, so a folder without one is a checkpoint cut short).
fn checkpoint_steps(out: &Path) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(out.join("checkpoints")) else {
        return vec![];
    };
    let mut steps: Vec<u64> = dir
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let n: u64 = name.strip_prefix("step-")?.parse().ok()?;
            e.path().join("state.json").exists().then_some(n)
        })
        .collect();
    steps.sort();
    steps
}

fn save_checkpoint(out: &Path, step: u64, opt: &AdamW, model: &Model) -> Result<()> {
    let dir = checkpoint_dir(out, step);
    let tmp = dir.with_extension("part");
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    let mut t: HashMap<String, Tensor> = HashMap::new();
    for (i, v) in opt.vars.iter().enumerate() {
        t.insert(format!("{i:05}.var"), v.as_tensor().clone());
        t.insert(format!("{i:05}.m"), opt.m[i].clone());
        t.insert(format!("{i:05}.v"), opt.v[i].clone());
    }
    candle_core::safetensors::save(&t, tmp.join("state.safetensors"))?;
    let names: Vec<String> = model
        .adapter_tensors()
        .into_iter()
        .map(|a| a.base)
        .collect();
    std::fs::write(
        tmp.join("state.json"),
        serde_json::to_vec_pretty(
            &serde_json::json!({"step": step, "t": opt.t, "projections": names}),
        )?,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    // keep the newest two
    let steps = checkpoint_steps(out);
    for s in steps.iter().rev().skip(2) {
        let _ = std::fs::remove_dir_all(checkpoint_dir(out, *s));
    }
    Ok(())
}

fn load_checkpoint(out: &Path, step: u64, opt: &mut AdamW, device: &Device) -> Result<()> {
    let dir = checkpoint_dir(out, step);
    let t = candle_core::safetensors::load(dir.join("state.safetensors"), device)
        .with_context(|| format!("reading checkpoint {}", dir.display()))?;
    let state: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("state.json"))?)?;
    for i in 0..opt.vars.len() {
        let get = |k: &str| {
            t.get(&format!("{i:05}.{k}"))
                .cloned()
                .with_context(|| format!("checkpoint {} lacks tensor {i}.{k}", dir.display()))
        };
        opt.vars[i].set(&get("var")?)?;
        opt.m[i] = get("m")?;
        opt.v[i] = get("v")?;
    }
    opt.t = state["t"].as_u64().unwrap_or(step);
    Ok(())
}

/// Keep the lines of `progress.jsonl` up to `step` (a resumed run rewrites
/// what came after its checkpoint) and return the kept training losses.
fn truncate_progress(path: &Path, step: u64) -> Result<Vec<f64>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(vec![]);
    };
    let mut kept = String::new();
    let mut losses = Vec::new();
    for line in text.lines() {
        let Ok(p) = serde_json::from_str::<ProgressLine>(line) else {
            continue;
        };
        if p.step <= step {
            kept.push_str(line);
            kept.push('\n');
            if let Some(l) = p.loss {
                losses.push(l);
            }
        }
    }
    std::fs::write(path, kept)?;
    Ok(losses)
}

fn append(path: &Path, line: &ProgressLine) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    writeln!(f, "{}", serde_json::to_string(line)?)?;
    Ok(())
}

fn run_id(base: &Path, examples: &[Encoded], cfg: &TrainConfig) -> Result<RunId> {
    let mut h = blake3::Hasher::new();
    for e in examples {
        h.update(&(e.n_prompt as u64).to_le_bytes());
        for t in &e.ids {
            h.update(&t.to_le_bytes());
        }
        h.update(b"|");
    }
    Ok(RunId {
        base_model: backforth_llama::model_id_for(base)?,
        data_blake3: h.finalize().to_hex()[..16].to_string(),
        config: cfg.clone(),
    })
}

/// Whether `out` holds a training run: `None` when it holds none, else
/// whether its base model, data and settings are these. Errors: the base
/// model cannot be read.
pub fn same_run(
    out: &Path,
    base: &Path,
    examples: &[Encoded],
    cfg: &TrainConfig,
) -> Result<Option<bool>> {
    let Ok(old) = std::fs::read(out.join("train_config.json")) else {
        return Ok(None);
    };
    let id = run_id(base, examples, cfg)?;
    Ok(Some(
        serde_json::from_slice::<RunId>(&old)
            .map(|o| o == id)
            .unwrap_or(false),
    ))
}

/// Train a LoRA adapter on `examples` over the GGUF base model `base`,
/// writing everything under `out` (see the module docs). Resumes from the
/// newest checkpoint in `out` when its settings match.
///
/// Errors: unreadable base model; no example fits `max_seq`; `out` holds a
/// run with other settings; I/O.
pub fn train(
    base: &Path,
    examples: &[Encoded],
    cfg: &TrainConfig,
    out: &Path,
    progress: &mut dyn backforth_inference::progress::Progress,
) -> Result<TrainSummary> {
    let started = Instant::now();
    let device = default_device();
    anyhow::ensure!(
        cfg.batch_size >= 1 && cfg.grad_accum >= 1,
        "batch_size and grad_accum must be ≥ 1"
    );
    anyhow::ensure!(cfg.lora.rank >= 1, "lora.rank must be ≥ 1");
    let mut skipped: HashMap<String, u64> = HashMap::new();
    let usable: Vec<&Encoded> = examples
        .iter()
        .filter(|e| {
            let reason = if e.ids.len() > cfg.max_seq {
                "too_long"
            } else if e.ids.len() <= e.n_prompt {
                "empty_completion"
            } else {
                return true;
            };
            *skipped.entry(reason.into()).or_default() += 1;
            false
        })
        .collect();
    if usable.is_empty() {
        bail!(
            "no training example fits max_seq = {} tokens ({} given)",
            cfg.max_seq,
            examples.len()
        );
    }
    // held-out split
    let (train_idx, eval_idx) = held_out_split(usable.len(), cfg);
    let eval: Vec<&Encoded> = eval_idx.iter().map(|&i| usable[i]).collect();
    let train_set: Vec<&Encoded> = train_idx.iter().map(|&i| usable[i]).collect();
    let per_epoch = train_set.len().div_ceil(cfg.batch_size);
    let total = if cfg.max_steps > 0 {
        cfg.max_steps
    } else {
        ((per_epoch * cfg.epochs.max(1)).div_ceil(cfg.grad_accum)) as u64
    };
    let lengths: Vec<usize> = train_set.iter().map(|e| e.ids.len()).collect();
    let micro = plan(
        &lengths,
        cfg.batch_size,
        total as usize * cfg.grad_accum,
        cfg.seed,
    );
    let warmup = ((total as f64 * cfg.warmup_ratio).round() as u64).max(1);

    let run_id = run_id(base, examples, cfg)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let id_path = out.join("train_config.json");
    if let Ok(old) = std::fs::read(&id_path) {
        let same = serde_json::from_slice::<RunId>(&old)
            .map(|o| o == run_id)
            .unwrap_or(false);
        if !same {
            bail!(
                "{} holds a training run with other settings, data or base model; use a new folder (or remove it to start over)",
                out.display()
            );
        }
    } else {
        std::fs::write(&id_path, serde_json::to_vec_pretty(&run_id)?)?;
    }

    let mut weights = gguf::load_base(base, &device)?;
    if !cfg.base_weights.is_empty() {
        let n = crate::peft::overlay_hf_weights(&mut weights, Path::new(&cfg.base_weights))?;
        tracing::info!("{n} base weights from {}", cfg.base_weights);
    }
    let arch: Arch = weights.hp.arch;
    let model = Model::new(weights, Some(cfg.lora.clone()), cfg.seed, &device)?;
    let mut opt = AdamW::new(model.vars(), cfg.optim.clone())?;
    let progress_path = out.join("progress.jsonl");
    let mut start = 0u64;
    let mut losses = Vec::new();
    if let Some(&step) = checkpoint_steps(out).last() {
        load_checkpoint(out, step, &mut opt, &device)?;
        losses = truncate_progress(&progress_path, step)?;
        start = step;
        tracing::info!("resuming {} from step {step} of {total}", out.display());
    } else {
        let _ = std::fs::remove_file(&progress_path);
    }
    let eval_loss_start = if !eval.is_empty() && start == 0 {
        let l = eval_loss(&model, &eval, cfg, &device)?;
        append(&progress_path, &ProgressLine::eval(0, l))?;
        Some(l)
    } else {
        None
    };

    progress.update(start, total, "");
    let mut tokens_this_run = 0u64;
    let mut completion_tokens = 0u64;
    let loop_start = Instant::now();
    let mut eval_loss_end = None;
    let vars = opt.vars.clone();
    for step in start..total {
        let t0 = Instant::now();
        let mut batches: Vec<Batch> = Vec::new();
        for m in 0..cfg.grad_accum {
            let idx = &micro[(step as usize * cfg.grad_accum + m) % micro.len()];
            let ex: Vec<&Encoded> = idx.iter().map(|&i| train_set[i]).collect();
            for part in passes(&ex, cfg.max_pass_tokens) {
                batches.push(make_batch(&part, &device)?);
            }
        }
        let n_targets: usize = batches.iter().map(|b| b.targets.len()).sum();
        let mut acc: Vec<Option<Tensor>> = vec![None; vars.len()];
        let mut step_loss = 0.0;
        for (m, b) in batches.iter().enumerate() {
            let pass = Pass {
                dropout: cfg.lora.dropout,
                seed: split_seed(cfg.seed, step, m),
            };
            let loss = model.loss(&b.ids, &b.positions, &b.targets, pass)?;
            // weight each micro-batch by its share of the update's tokens
            let w = b.targets.len() as f64 / n_targets as f64;
            step_loss += loss.to_scalar::<f32>()? as f64 * w;
            let grads = (loss * w)?.backward()?;
            for (a, g) in acc.iter_mut().zip(grads_of(&grads, &vars)) {
                *a = match (a.take(), g) {
                    (Some(x), Some(y)) => Some((x + y)?),
                    (x, y) => x.or(y),
                };
            }
            tokens_this_run += b.tokens as u64;
        }
        completion_tokens += n_targets as u64;
        let lr = schedule(step, total, warmup, cfg.optim.lr, cfg.min_lr_ratio);
        opt.step(&acc, lr)?;
        losses.push(step_loss);
        let tps =
            batches.iter().map(|b| b.tokens).sum::<usize>() as f64 / t0.elapsed().as_secs_f64();
        append(
            &progress_path,
            &ProgressLine {
                step: step + 1,
                loss: Some(step_loss),
                lr: Some(lr),
                tokens: Some(n_targets as u64),
                tokens_per_s: Some(tps),
                eval_loss: None,
            },
        )?;
        progress.update(
            step + 1,
            total,
            &format!("loss {step_loss:.4} · lr {lr:.2e} · {tps:.0} tok/s"),
        );
        let last = step + 1 == total;
        if !eval.is_empty() && (last || (cfg.eval_every > 0 && (step + 1) % cfg.eval_every == 0)) {
            let l = eval_loss(&model, &eval, cfg, &device)?;
            append(&progress_path, &ProgressLine::eval(step + 1, l))?;
            if last {
                eval_loss_end = Some(l);
            }
        }
        if last || (cfg.checkpoint_every > 0 && (step + 1) % cfg.checkpoint_every == 0) {
            save_checkpoint(out, step + 1, &opt, &model)?;
        }
    }
    progress.finish();
    if eval_loss_end.is_none() && !eval.is_empty() {
        eval_loss_end = Some(eval_loss(&model, &eval, cfg, &device)?);
    }
    let eval_loss_start = match eval_loss_start {
        Some(l) => Some(l),
        None => std::fs::read_to_string(&progress_path).ok().and_then(|t| {
            t.lines().find_map(|l| {
                serde_json::from_str::<ProgressLine>(l)
                    .ok()
                    .filter(|p| p.step == 0)?
                    .eval_loss
            })
        }),
    };

    // outputs
    let adapter = out.join("adapter.gguf");
    gguf::write_adapter(&adapter, arch, cfg.lora.alpha, &model.adapter_tensors())?;
    let peft_dir = out.join("peft");
    crate::peft::write_peft(&peft_dir, &model, &cfg.lora, &run_id.base_model)?;
    let tenth = (losses.len() / 10).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let secs = loop_start.elapsed().as_secs_f64();
    let summary = TrainSummary {
        base_model: run_id.base_model.clone(),
        adapter_gguf: adapter.display().to_string(),
        peft_dir: peft_dir.display().to_string(),
        steps: total,
        train_examples: train_set.len(),
        eval_examples: eval.len(),
        skipped,
        tokens: completion_tokens,
        train_loss_first: mean(&losses[..tenth.min(losses.len())]),
        train_loss_last: mean(&losses[losses.len().saturating_sub(tenth)..]),
        eval_loss_start,
        eval_loss_end,
        resumed_from: start,
        tokens_processed: tokens_this_run,
        loop_seconds: secs,
        tokens_per_s: tokens_this_run as f64 / secs.max(1e-9),
        seconds: started.elapsed().as_secs_f64(),
    };
    std::fs::write(
        out.join("train_summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lengths(p: &[Vec<&Encoded>]) -> Vec<Vec<usize>> {
        p.iter()
            .map(|v| v.iter().map(|x| x.ids.len()).collect())
            .collect()
    }

    #[test]
    fn passes_keep_every_sequence_once_within_the_budget() {
        let e = |n: usize| Encoded {
            ids: vec![1; n],
            n_prompt: 1,
        };
        let ex = [e(100), e(300), e(200), e(600), e(50)];
        let refs: Vec<&Encoded> = ex.iter().collect();
        assert_eq!(
            lengths(&passes(&refs, 1024)),
            vec![vec![100, 300, 200], vec![600], vec![50]]
        );
        assert_eq!(
            lengths(&passes(&refs, 512)),
            vec![vec![100], vec![300], vec![200], vec![600], vec![50]]
        );
        assert_eq!(
            lengths(&passes(&refs, 0)),
            vec![vec![100, 300, 200, 600, 50]]
        );
    }
}
