//! `backforth train` and `backforth adapter import`: build the examples,
//! tokenize them with the embedded engine (so training sees the ids
//! inference sees), and hand them to `backforth-train`.

use crate::cli::{AdapterCmd, TrainArgs, TrainData};
use anyhow::{bail, Context, Result};
use backforth_corpus::readers::InputStats;
use backforth_llama::{LlamaEngine, LlamaOptions};
use backforth_train::data::{self, ChatTokenizer, Encoded, Example};
use backforth_train::trainer::{self, TrainConfig};
use std::path::Path;

/// Examples for `args.data`, with the counts of skipped input lines.
pub fn examples(args: &TrainArgs) -> Result<(Vec<Example>, InputStats)> {
    let mut stats = InputStats::default();
    let seeds = match &args.seeds {
        Some(p) => backforth::seeds::read_seeds(p, data::MAX_LINE_BYTES, &mut stats)?,
        None => vec![],
    };
    let out = match args.data {
        TrainData::Backward => {
            if seeds.is_empty() {
                bail!("--data backward needs --seeds (seed pairs JSONL)");
            }
            if !args.dataset.is_empty() {
                bail!("--dataset is for --data forward");
            }
            data::backward(&seeds, None)?
        }
        TrainData::Forward => {
            if seeds.is_empty() && args.dataset.is_empty() {
                bail!("--data forward needs --seeds and/or --dataset");
            }
            let tag = |t: &'static str| args.system_tags.then_some(t);
            let mut v = data::forward(&seeds, tag(data::SEED_TAG));
            for d in &args.dataset {
                v.extend(data::from_messages_jsonl(
                    d,
                    tag(data::WEB_TAG),
                    data::MAX_LINE_BYTES,
                    &mut stats,
                )?);
            }
            v
        }
    };
    Ok((out, stats))
}

/// Tokenize examples with the base model's own tokenizer and chat template.
/// Errors: the model does not load; a template cannot be applied (named by source).
pub fn encode_all(model: &Path, examples: &[Example]) -> Result<Vec<Encoded>> {
    let engine = LlamaEngine::load(
        model,
        LlamaOptions {
            batch_size: 1,
            ..Default::default()
        },
    )?;
    examples
        .iter()
        .map(|e| {
            engine
                .encode(e)
                .with_context(|| format!("tokenizing {}", e.source))
        })
        .collect()
}

/// CPU threads for candle's matrix kernels (rayon's pool is sized from this
/// on first use; 0 leaves every core).
pub fn set_threads(n: usize) {
    if n > 0 {
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    }
}

/// Train and print the summary.
pub fn run(args: TrainArgs) -> Result<()> {
    let cfg: TrainConfig =
        backforth::config::layered(TrainConfig::default(), args.config.as_deref(), &args.set)?;
    if args.print_config {
        print!("{}", toml::to_string(&cfg)?);
        return Ok(());
    }
    if let Some(t) = args.threads {
        set_threads(t);
    }
    let (examples, stats) = examples(&args)?;
    let encoded = encode_all(&args.model, &examples)?;
    let skipped = stats.skipped_total();
    eprintln!(
        "train: {} examples ({} input lines skipped{}) → {}",
        encoded.len(),
        skipped,
        if skipped > 0 {
            format!(": {:?}", stats.skipped)
        } else {
            String::new()
        },
        args.out.display()
    );
    let s = trainer::train(&args.model, &encoded, &cfg, &args.out, !args.quiet)?;
    let fmt = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "trained {} steps on {} examples ({} held out{}): train loss {:.3} → {:.3}, held-out loss {} → {}, {:.0} tokens/s{}",
        s.steps,
        s.train_examples,
        s.eval_examples,
        if s.skipped.is_empty() { String::new() } else { format!(", left out {:?}", s.skipped) },
        s.train_loss_first,
        s.train_loss_last,
        fmt(s.eval_loss_start),
        fmt(s.eval_loss_end),
        s.tokens_per_s,
        if s.resumed_from > 0 { format!(", resumed from step {}", s.resumed_from) } else { String::new() },
    );
    println!(
        "adapter: {} (use as model.lora, or --model {}+lora:{})",
        s.adapter_gguf,
        args.model.display(),
        s.adapter_gguf
    );
    Ok(())
}

/// `backforth adapter …`.
pub fn adapter(cmd: AdapterCmd) -> Result<()> {
    match cmd {
        AdapterCmd::Import { peft, model, out } => {
            let dev = backforth_train::Device::Cpu;
            let hp = backforth_train::gguf::load_base(&model, &dev)?.hp;
            let (tensors, alpha) = backforth_train::peft::read_peft(&peft, &hp)?;
            backforth_train::gguf::write_adapter(&out, hp.arch, alpha, &tensors)?;
            // prove it loads before saying so
            let mut e = LlamaEngine::load(
                &model,
                LlamaOptions {
                    batch_size: 1,
                    ..Default::default()
                },
            )?;
            e.set_adapter(&out, 1.0)?;
            println!(
                "{}: {} LoRA pairs, alpha {alpha}; loads in llama.cpp on {}",
                out.display(),
                tensors.len(),
                model.display()
            );
            Ok(())
        }
    }
}
