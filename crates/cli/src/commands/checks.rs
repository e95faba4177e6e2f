//! `backforth checks train`: the learned grounding checker
//! ([`backforth::grounding`]) trained on a corpus, with a progress bar
//! (documents featurised with ETA, then epochs) and a summary of how it did
//! on held-out documents' weak labels.

use crate::cli::{ChecksCmd, ChecksTrainArgs};
use anyhow::{Context, Result};
use backforth::grounding::mlp::FitOptions;
use backforth::grounding::train::{train, Phase, TrainOptions};
use backforth_corpus::readers::{input_parts, DocumentStream};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;

/// Dispatch a `checks` subcommand.
pub fn run(cmd: ChecksCmd) -> Result<()> {
    match cmd {
        ChecksCmd::Train(a) => train_cmd(a),
        ChecksCmd::TrainFilter(a) => crate::commands::doc_filter::train(a),
    }
}

fn train_cmd(a: ChecksTrainArgs) -> Result<()> {
    let common = crate::cli::CommonArgs {
        base: crate::cli::ConfigArgs {
            config: a.config.clone(),
            set: a.set.clone(),
            threads: a.threads,
            quiet: a.quiet,
            ..Default::default()
        },
        input: a.input.clone(),
        out: Some(a.out.clone()),
        limit: a.limit,
    };
    let mut cfg = common.config()?;
    if let Some(m) = &a.embedding_model {
        cfg.checks.embedding_model = m.clone();
    }
    if cfg.checks.embedding_model.is_empty() {
        cfg.checks.embedding_model = crate::provider::default_embedder()
            .display()
            .to_string();
    }
    anyhow::ensure!(
        !cfg.input.paths.is_empty(),
        "no input: give the corpus with --input (files, folders or globs, any format `run` reads)"
    );
    let out = PathBuf::from(&cfg.output.dir);
    // read the corpus (bad records are skipped and counted, as in `run`)
    let mut stream = DocumentStream::from_parts(input_parts(&cfg.input)?, cfg.input.clone());
    let mut docs = Vec::new();
    for d in stream.by_ref() {
        docs.push(d.text);
        if cfg.input.limit > 0 && docs.len() as u64 >= cfg.input.limit {
            break;
        }
    }
    eprintln!(
        "corpus: {} documents read from {} files, {} skipped {:?}",
        stream.stats.documents,
        stream.stats.files,
        stream.stats.skipped_total(),
        stream.stats.skipped
    );
    let dir = std::path::Path::new(&cfg.checks.embedding_model);
    let mut emb = crate::provider::load_embedder(dir, "llama", cfg.model.threads)
        .with_context(|| format!("checks.embedding_model = {}", dir.display()))?;
    let opts = TrainOptions {
        claims_per_document: a.claims_per_document,
        neighbours: a.neighbours,
        seed: a.seed,
        max_documents: a.max_documents,
        fit: FitOptions {
            epochs: a.epochs,
            ..Default::default()
        },
    };
    let pb = if a.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("valid template"),
    );
    use std::io::IsTerminal;
    let log = !std::io::stderr().is_terminal() && !a.quiet;
    let mut last_pct = 0;
    let t0 = std::time::Instant::now();
    let model = train(&docs, &mut emb, &out, &opts, &mut |p| match p {
        Phase::Features(done, total) => {
            pb.set_prefix("features");
            pb.set_length(total as u64);
            pb.set_position(done as u64);
            let pct = done * 20 / total.max(1);
            if log && pct > last_pct {
                last_pct = pct;
                eprintln!(
                    "features: {done}/{total} documents, {:.1} documents/s",
                    done as f64 / t0.elapsed().as_secs_f64().max(1e-9)
                );
            }
        }
        Phase::Fit(name, done, total, loss) => {
            if pb.prefix() != name {
                pb.reset();
                pb.set_prefix(name);
                pb.set_length(total as u64);
            }
            pb.set_position(done as u64);
            pb.set_message(format!("loss {loss:.4}"));
            if log && done == total {
                eprintln!("{name}: {total} epochs, loss {loss:.4}");
            }
        }
    })?;
    pb.finish_and_clear();
    let t = &model.training;
    println!(
        "grounding model: {} ({} documents, {} held out; held-out AUC claims {}, instructions {})",
        out.join("grounding.json").display(),
        t.documents,
        t.held_out_documents,
        t.held_out_auc_claim.map_or("–".into(), |a| format!("{a:.3}")),
        t.held_out_auc_instruction.map_or("–".into(), |a| format!("{a:.3}")),
    );
    for (class, acc) in &t.held_out_accuracy {
        println!("  held out {class}: {:.0}% right at 0.5", 100.0 * acc);
    }
    println!(
        "use it: --set checks.grounding_model='\"{}\"' --set checks.embedding_model='\"{}\"'",
        out.join("grounding.json").display(),
        cfg.checks.embedding_model
    );
    Ok(())
}
