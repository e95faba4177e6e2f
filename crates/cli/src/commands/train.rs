//! `backforth train` and `backforth adapter import`: build the examples,
//! tokenize them with the embedded engine (so training sees the ids
//! inference sees), and hand them to `backforth-train`.

use crate::cli::{AdapterCmd, TrainArgs, TrainData, TrainEngine};
use anyhow::{bail, Context, Result};
use backforth_corpus::readers::InputStats;
use backforth_train::data::Example;
use backforth_train::selfalign;
use backforth_train::trainer::{self, TrainConfig};
use std::path::Path;

/// Examples for `args.data`, with the counts of skipped input lines.
pub fn examples(args: &TrainArgs) -> Result<(Vec<Example>, InputStats)> {
    let direction = match args.data {
        TrainData::Backward => selfalign::Direction::Backward,
        TrainData::Forward => selfalign::Direction::Forward,
    };
    selfalign::examples(direction, args.seeds.as_deref(), &args.dataset, args.system_tags)
}

/// Tell the user how to use a trained or imported adapter.
fn print_adapter_use(model: &Path, adapter: &str) {
    println!(
        "adapter: {adapter} (use as model.lora, or --model {}+lora:{adapter})",
        model.display()
    );
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
    if args.engine == TrainEngine::Trl {
        return run_trl(&args, &cfg, &examples, &stats);
    }
    let encoded = selfalign::encode_all(&args.model, &examples)?;
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
    let s = trainer::train(&args.model, &encoded, &cfg, &args.out, &mut crate::progress::BarProgress::new(args.quiet, "train"))?;
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
    print_adapter_use(&args.model, &s.adapter_gguf);
    Ok(())
}

/// `--engine trl`: write TRL's data and config; with `--launch`, run it and
/// import the PEFT adapter it leaves.
fn run_trl(
    args: &TrainArgs,
    cfg: &TrainConfig,
    examples: &[Example],
    stats: &InputStats,
) -> Result<()> {
    use backforth_train::trl;
    let Some(hf) = &args.hf_model else {
        bail!("--engine trl needs --hf-model (the same base as a Hugging Face model: Hub id or local folder)");
    };
    let job = trl::write_job(examples, cfg, hf, &args.out)?;
    let launch = trl::launch_args(&job, &args.trl_args);
    eprintln!(
        "train: {} examples for TRL ({} held out; {} input lines skipped) → {}",
        job.train_examples + job.eval_examples,
        job.eval_examples,
        stats.skipped_total(),
        job.dir.display()
    );
    let shown = std::iter::once(args.trl_bin.to_string_lossy().into_owned())
        .chain(launch.iter().map(|a| shell_quote(a)))
        .collect::<Vec<_>>()
        .join(" ");
    if !args.launch {
        println!("{shown}");
        println!(
            "then: backforth adapter import --peft {} --model {} --out {}",
            job.output_dir.display(),
            args.model.display(),
            args.out.join("adapter.gguf").display()
        );
        return Ok(());
    }
    eprintln!("running: {shown}");
    let status = std::process::Command::new(&args.trl_bin)
        .args(&launch)
        .status()
        .with_context(|| format!("starting {}", args.trl_bin.display()))?;
    if !status.success() {
        bail!("{shown} failed ({status}); rerun to resume from its newest checkpoint");
    }
    let out = args.out.join("adapter.gguf");
    import_peft(&job.output_dir, &args.model, &out)?;
    print_adapter_use(&args.model, &out.display().to_string());
    Ok(())
}

/// An argument as typed in a shell: plain when nothing in it needs quoting.
fn shell_quote(a: &str) -> String {
    if a.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+".contains(c))
    {
        a.to_string()
    } else {
        backforth_shard::slurm::sh_quote(a)
    }
}

/// Convert a PEFT folder to a llama.cpp adapter GGUF for `model` and prove it
/// loads there. Errors: unreadable or mismatched PEFT tensors; the adapter
/// does not load.
fn import_peft(peft: &Path, model: &Path, out: &Path) -> Result<()> {
    // shapes only: a 70B base is not dequantized to import its adapter
    let hp = backforth_train::gguf::read_hparams(model)?;
    let (tensors, alpha) = backforth_train::peft::read_peft(peft, &hp)?;
    backforth_train::gguf::write_adapter(out, hp.arch, alpha, &tensors)?;
    selfalign::one_sequence_engine(model)?.set_adapter(out, 1.0)?;
    println!(
        "{}: {} LoRA pairs, alpha {alpha}; loads in llama.cpp on {}",
        out.display(),
        tensors.len(),
        model.display()
    );
    Ok(())
}

/// `backforth adapter …`.
pub fn adapter(cmd: AdapterCmd) -> Result<()> {
    match cmd {
        AdapterCmd::Import { peft, model, out } => import_peft(&peft, &model, &out),
    }
}
