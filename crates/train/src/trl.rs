//! The GPU path for 7B–70B models: hand the same examples and settings to
//! Hugging Face TRL's supervised fine-tuning (`trl sft`, LoRA through PEFT)
//! instead of training on candle. We only write its inputs and read its
//! output back: the trainer is TRL's.
//!
//! A job folder holds
//! - `data/train.jsonl` and `data/test.jsonl`: TRL's conversational
//!   prompt–completion format, one example per line,
//!   `{"prompt": [{"role", "content"}, …], "completion": [{"role": "assistant", "content"}]}`;
//!   with that format TRL puts the loss on the completion only
//!   (`completion_only_loss`, set explicitly);
//! - `sft.yaml`: the `trl sft --config` file, mapped from [`TrainConfig`]
//!   (written as JSON, which YAML parsers read);
//! - `output/`: TRL's checkpoints and, at the end, the PEFT adapter
//!   (`adapter_model.safetensors` + `adapter_config.json`), which
//!   [`crate::peft::read_peft`] turns into a llama.cpp adapter.
//!
//! Checked against [`CHECKED_VERSIONS`]; TRL renames settings between
//! releases (`warmup_ratio` went with transformers 5, `torch_dtype` became
//! `dtype`), so a different version may refuse a key: edit `sft.yaml` or pass
//! an override after the config on the command line.

use crate::data::Example;
use crate::model::TARGETS;
use crate::trainer::{held_out_split, TrainConfig};
use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The versions this mapping was run with (CPU, `scripts/bench-train.sh`).
pub const CHECKED_VERSIONS: &str = "trl 1.16.0, transformers 5.23.0, peft 0.21.2, torch 2.15.0";

/// A written TRL job (see the module docs for the layout).
#[derive(Debug, Clone, PartialEq)]
pub struct TrlJob {
    /// The job folder.
    pub dir: PathBuf,
    /// `sft.yaml`.
    pub config: PathBuf,
    /// TRL's `output_dir`, where the PEFT adapter lands.
    pub output_dir: PathBuf,
    pub train_examples: usize,
    pub eval_examples: usize,
}

/// One example as a line of TRL's conversational prompt–completion format.
pub fn example_line(e: &Example) -> Value {
    json!({
        "prompt": e.messages,
        "completion": [{"role": "assistant", "content": e.completion}],
    })
}

/// The PEFT module names of the configured LoRA targets.
/// Errors: an unknown target.
pub fn peft_targets(cfg: &TrainConfig) -> Result<Vec<&'static str>> {
    Ok(cfg
        .lora
        .stems()?
        .into_iter()
        .map(|g| {
            TARGETS
                .iter()
                .find(|(s, _)| *s == g)
                .map(|(_, h)| *h)
                .expect("stems() returns known stems")
        })
        .collect())
}

/// The `trl sft` settings for `cfg`: model `hf_model` (a Hub id or a local
/// Hugging Face folder of the same base as the GGUF), data in `data_dir`,
/// output in `output_dir`. Errors: an unknown LoRA target.
pub fn sft_config(
    cfg: &TrainConfig,
    hf_model: &str,
    data_dir: &Path,
    output_dir: &Path,
    has_eval: bool,
) -> Result<Value> {
    // TRL saves every N steps; our 0 ("only at the end") has no equivalent there
    let save_steps = if cfg.checkpoint_every > 0 {
        cfg.checkpoint_every
    } else {
        500
    };
    let mut v = json!({
        "model_name_or_path": hf_model,
        "dataset_name": data_dir.to_string_lossy(),
        "dataset_train_split": "train",
        "dataset_test_split": "test",
        "output_dir": output_dir.to_string_lossy(),
        "use_peft": true,
        "lora_r": cfg.lora.rank,
        "lora_alpha": cfg.lora.alpha,
        "lora_dropout": (cfg.lora.dropout as f64 * 1e6).round() / 1e6,
        "lora_target_modules": peft_targets(cfg)?,
        "completion_only_loss": true,
        "max_length": cfg.max_seq,
        "num_train_epochs": cfg.epochs.max(1),
        "max_steps": if cfg.max_steps > 0 { cfg.max_steps as i64 } else { -1 },
        "per_device_train_batch_size": cfg.batch_size,
        "per_device_eval_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.optim.lr,
        "adam_beta1": cfg.optim.beta1,
        "adam_beta2": cfg.optim.beta2,
        "adam_epsilon": cfg.optim.eps,
        "weight_decay": cfg.optim.weight_decay,
        // a value below 1 is a share of the updates (transformers ≥ 5)
        "warmup_steps": cfg.warmup_ratio,
        "lr_scheduler_type": "cosine_with_min_lr",
        "lr_scheduler_kwargs": {"min_lr_rate": cfg.min_lr_ratio},
        "seed": cfg.seed,
        // batches of similar length, as our trainer draws them
        "train_sampling_strategy": "group_by_length",
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": save_steps,
        "save_total_limit": 2,
        "report_to": "none",
    });
    let o = v.as_object_mut().expect("object");
    if has_eval {
        o.insert("eval_strategy".into(), json!("steps"));
        // our 0 means "start and end"; TRL has no start, so evaluate each save
        let every = if cfg.eval_every > 0 {
            cfg.eval_every
        } else {
            save_steps
        };
        o.insert("eval_steps".into(), json!(every));
    } else {
        o.insert("eval_strategy".into(), json!("no"));
    }
    Ok(v)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    backforth::export::write_atomic(path, |w| Ok(w.write_all(bytes)?))
        .with_context(|| format!("writing {}", path.display()))
}

/// Write a TRL job for `examples` into `<out>/trl/`: the split data and
/// `sft.yaml`. Deterministic in its inputs, so a rerun rewrites the same
/// bytes and TRL can resume from its own checkpoints.
/// Errors: no examples; an unknown LoRA target; I/O.
pub fn write_job(
    examples: &[Example],
    cfg: &TrainConfig,
    hf_model: &str,
    out: &Path,
) -> Result<TrlJob> {
    if examples.is_empty() {
        bail!("no training examples");
    }
    let dir = std::path::absolute(out.join("trl"))
        .with_context(|| format!("resolving {}", out.display()))?;
    let data_dir = dir.join("data");
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let (train, eval) = held_out_split(examples.len(), cfg);
    // an empty split file is an error to `datasets`: no test.jsonl without held-out examples
    let test = data_dir.join("test.jsonl");
    if eval.is_empty() && test.exists() {
        std::fs::remove_file(&test).with_context(|| format!("removing {}", test.display()))?;
    }
    for (name, idx) in [("train.jsonl", &train), ("test.jsonl", &eval)] {
        if idx.is_empty() {
            continue;
        }
        let mut buf = Vec::new();
        for &i in idx {
            serde_json::to_writer(&mut buf, &example_line(&examples[i]))?;
            buf.write_all(b"\n")?;
        }
        write_atomic(&data_dir.join(name), &buf)?;
    }
    let output_dir = dir.join("output");
    let config = dir.join("sft.yaml");
    let v = sft_config(cfg, hf_model, &data_dir, &output_dir, !eval.is_empty())?;
    let mut text = format!(
        "# trl sft settings written by backforth (checked with {CHECKED_VERSIONS}).\n\
         # JSON is YAML; edit freely, or override a key on the command line.\n"
    );
    text.push_str(&serde_json::to_string_pretty(&v)?);
    text.push('\n');
    write_atomic(&config, text.as_bytes())?;
    Ok(TrlJob {
        dir,
        config,
        output_dir,
        train_examples: train.len(),
        eval_examples: eval.len(),
    })
}

/// TRL's newest `checkpoint-N` folder in `output_dir`, if any.
pub fn last_checkpoint(output_dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(output_dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u64 = name.strip_prefix("checkpoint-")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// Arguments after the `trl` program: `sft --config <sft.yaml>`, plus
/// `--resume_from_checkpoint <dir>` when TRL left a checkpoint (a rerun after
/// a kill goes on from there), plus `extra` overrides.
pub fn launch_args(job: &TrlJob, extra: &[String]) -> Vec<String> {
    let mut a = vec![
        "sft".to_string(),
        "--config".into(),
        job.config.to_string_lossy().into_owned(),
    ];
    if let Some(c) = last_checkpoint(&job.output_dir) {
        a.push("--resume_from_checkpoint".into());
        a.push(c.to_string_lossy().into_owned());
    }
    a.extend(extra.iter().cloned());
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use backforth_inference::ChatMessage;

    fn ex(i: usize) -> Example {
        Example {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: format!("question {i}"),
            }],
            completion: format!("answer {i}"),
            source: format!("seed {i}"),
        }
    }

    #[test]
    fn job_files_hold_every_example_once_in_trl_format() {
        let dir = std::env::temp_dir().join(format!("bf-trl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let examples: Vec<Example> = (0..20).map(ex).collect();
        let mut cfg = TrainConfig::default();
        cfg.lora.targets = vec!["attn_q".into(), "v_proj".into()];
        cfg.max_steps = 7;
        let job = write_job(&examples, &cfg, "org/base", &dir).unwrap();
        assert_eq!((job.train_examples, job.eval_examples), (18, 2));
        let mut seen = Vec::new();
        for f in ["train.jsonl", "test.jsonl"] {
            let text = std::fs::read_to_string(job.dir.join("data").join(f)).unwrap();
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert_eq!(v["prompt"][0]["role"], "user");
                assert_eq!(v["completion"][0]["role"], "assistant");
                let q = v["prompt"][0]["content"].as_str().unwrap().to_string();
                let a = v["completion"][0]["content"].as_str().unwrap();
                assert_eq!(a, q.replace("question", "answer"));
                seen.push(q);
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 20);
        // the config: comment lines, then JSON
        let text = std::fs::read_to_string(&job.config).unwrap();
        let body: String = text.lines().filter(|l| !l.starts_with('#')).collect();
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["lora_target_modules"], json!(["q_proj", "v_proj"]));
        assert_eq!(v["max_steps"], 7);
        assert_eq!(v["completion_only_loss"], true);
        assert_eq!(v["eval_strategy"], "steps");
        assert_eq!(v["model_name_or_path"], "org/base");
        // deterministic: a rerun writes the same bytes
        let before = std::fs::read(job.dir.join("data/train.jsonl")).unwrap();
        write_job(&examples, &cfg, "org/base", &dir).unwrap();
        assert_eq!(
            before,
            std::fs::read(job.dir.join("data/train.jsonl")).unwrap()
        );
        // resume picks TRL's newest checkpoint
        assert_eq!(launch_args(&job, &[]).len(), 3);
        std::fs::create_dir_all(job.output_dir.join("checkpoint-5")).unwrap();
        std::fs::create_dir_all(job.output_dir.join("checkpoint-10")).unwrap();
        let a = launch_args(&job, &["--bf16".into(), "false".into()]);
        assert_eq!(a[3], "--resume_from_checkpoint");
        assert!(a[4].ends_with("checkpoint-10"));
        assert_eq!(&a[5..], ["--bf16", "false"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
