//! `backforth selfalign`: Humpback's self-alignment loop (Li et al. 2023 §2)
//! as one resumable command, built from `backforth train` and the pipeline.
//!
//! Under the root folder (`--out`):
//! - `myx/`: the backward model M_yx (seed pairs flipped, response → instruction);
//! - `m0/`: the seed model M_0 (seed pairs, seed system tag);
//! - `iter-0/`: a run that backtranslates the corpus with base + M_yx
//!   (`backtranslate.mode = finetuned`) and curates with base + M_0;
//! - `m<i>/`, `iter-<i>/` for i = 1..N: M_i trained on the seed pairs plus
//!   the pairs `iter-<i-1>` kept with score ≥ `--keep` (web system tag), and
//!   a run that curates iter-0's backtranslations again with M_i;
//! - `selfalign_summary.json`: per iteration, pairs scored, score counts,
//!   pairs exported (score ≥ `--keep` and passing the relevance/grounding
//!   checks: what the next model trains on) and how that set changed.
//!
//! Every step resumes: a model whose folder holds the same base, data and
//! settings is not retrained (a changed one is retrained from scratch, and
//! its new adapter hash changes the stage keys that use it), and the runs
//! reuse their stage records by key. The final data is the last
//! iteration's `curated.jsonl`.

use crate::cli::SelfAlignArgs;
use crate::progress::Bars;
use crate::provider::Provider;
use anyhow::{Context, Result};
use backforth::config::{BackwardMode, Config};
use backforth::pipeline::{self, RunOptions};
use backforth_train::data::{self, Example};
use backforth_train::trainer::{self, TrainConfig};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Train (or reuse) the adapter in `dir`; returns the adapter path.
fn ensure_model(
    base: &Path,
    dir: &Path,
    examples: &[Example],
    cfg: &TrainConfig,
    quiet: bool,
    what: &str,
) -> Result<PathBuf> {
    let enc = super::train::encode_all(base, examples)?;
    let adapter = dir.join("adapter.gguf");
    match trainer::same_run(dir, base, &enc, cfg)? {
        Some(true) if adapter.exists() => {
            eprintln!("{what}: {} is up to date", dir.display());
            return Ok(adapter);
        }
        Some(false) => {
            eprintln!(
                "{what}: data or settings changed; retraining in {}",
                dir.display()
            );
            std::fs::remove_dir_all(dir)?;
        }
        _ => {}
    }
    eprintln!(
        "{what}: training on {} examples → {}",
        enc.len(),
        dir.display()
    );
    let s = trainer::train(base, &enc, cfg, dir, !quiet)?;
    eprintln!(
        "{what}: held-out loss {} → {}",
        s.eval_loss_start
            .map(|v| format!("{v:.3}"))
            .unwrap_or("-".into()),
        s.eval_loss_end
            .map(|v| format!("{v:.3}"))
            .unwrap_or("-".into())
    );
    Ok(adapter)
}

/// Curation score per record id of a run (`stages/curate.jsonl`; unparsed scores left out).
fn scores(run: &Path) -> Result<BTreeMap<String, u8>> {
    let p = run.join("stages/curate.jsonl");
    let text = std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
    let mut out = BTreeMap::new();
    for l in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(l) else {
            continue;
        };
        let (Some(id), Some(score)) = (v["id"].as_str(), v["curation"]["score"].as_u64()) else {
            continue;
        };
        out.insert(id.to_string(), score as u8);
    }
    Ok(out)
}

/// Record ids in an exported JSONL file (`id` of each example).
fn exported_ids(path: &Path) -> Result<BTreeSet<String>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["id"].as_str().map(String::from))
        .collect())
}

/// Run the loop.
pub fn run(args: SelfAlignArgs) -> Result<()> {
    let cfg = args.config()?;
    let tcfg: TrainConfig = backforth::config::layered(
        TrainConfig::default(),
        args.train_config.as_deref(),
        &args.train_set,
    )?;
    let root = PathBuf::from(&cfg.output.dir);
    anyhow::ensure!(
        !backforth_shard::remote::is_url(&cfg.output.dir),
        "selfalign works in a local folder"
    );
    anyhow::ensure!(
        !cfg.model.path.is_empty(),
        "selfalign needs the base model: --model base.gguf"
    );
    anyhow::ensure!(
        !cfg.seeds.path.is_empty(),
        "selfalign needs seed pairs: --seeds seeds.jsonl"
    );
    let base = PathBuf::from(&cfg.model.path);
    std::fs::create_dir_all(&root)?;
    let mut stats = backforth_corpus::readers::InputStats::default();
    let seeds =
        backforth::seeds::read_seeds(Path::new(&cfg.seeds.path), data::MAX_LINE_BYTES, &mut stats)?;
    anyhow::ensure!(!seeds.is_empty(), "no seed pairs in {}", cfg.seeds.path);
    let quiet = args.common.quiet();
    super::train::set_threads(cfg.model.threads);

    let myx = ensure_model(
        &base,
        &root.join("myx"),
        &data::backward(&seeds, None)?,
        &tcfg,
        quiet,
        "M_yx",
    )?;
    let seed_examples = data::forward(&seeds, Some(data::SEED_TAG));
    let mut curator = ensure_model(&base, &root.join("m0"), &seed_examples, &tcfg, quiet, "M_0")?;

    let run_cfg = |dir: &Path, curator: &Path| -> Config {
        let mut c = cfg.clone();
        c.output.dir = dir.display().to_string();
        c.backtranslate.mode = BackwardMode::Finetuned;
        c.backtranslate.lora = vec![myx.display().to_string()];
        c.curate.lora = vec![curator.display().to_string()];
        // curated.jsonl then holds exactly the pairs the next model trains on
        c.curate.keep_min_score = args.keep;
        c
    };
    let mut summary = Vec::new();
    let mut prev: Option<BTreeSet<String>> = None;
    for i in 0..=args.iterations {
        let dir = root.join(format!("iter-{i}"));
        let c = run_cfg(&dir, &curator);
        let (stages, from) = if i == 0 {
            (vec!["backtranslate".to_string(), "curate".to_string()], None)
        } else {
            (
                vec!["curate".to_string()],
                Some(root.join("iter-0/stages/backtranslate.jsonl")),
            )
        };
        eprintln!(
            "iteration {i}: curating with {} → {}",
            curator.display(),
            dir.display()
        );
        let mut provider = Provider::new(&c);
        pipeline::run(
            &c,
            &stages,
            &mut provider,
            &mut Bars { quiet },
            RunOptions { from },
        )?;
        let sc = scores(&dir)?;
        let at_keep = sc.values().filter(|s| **s >= args.keep).count();
        // what the next model trains on: the exported pairs (score ≥ keep and passing the checks)
        let kept = exported_ids(&dir.join("curated.jsonl"))?;
        let mut hist = BTreeMap::new();
        for s in sc.values() {
            *hist.entry(*s).or_insert(0u64) += 1;
        }
        let change = prev.as_ref().map(|p| {
            serde_json::json!({
                "added": kept.difference(p).count(),
                "dropped": p.difference(&kept).count(),
                "stayed": kept.intersection(p).count(),
            })
        });
        println!(
            "iteration {i}: {at_keep} of {} pairs scored ≥ {} (scores {:?}); {} passed the checks and were exported{}",
            sc.len(),
            args.keep,
            hist,
            kept.len(),
            change
                .as_ref()
                .map(|c| format!(
                    "; vs previous: +{} −{} ={}",
                    c["added"], c["dropped"], c["stayed"]
                ))
                .unwrap_or_default()
        );
        summary.push(serde_json::json!({
            "iteration": i,
            "curation_model": curator.display().to_string(),
            "run": dir.display().to_string(),
            "scored": sc.len(),
            "scored_at_keep": at_keep,
            "kept": kept.len(),
            "scores": hist,
            "change": change,
        }));
        prev = Some(kept);
        if i == args.iterations {
            break;
        }
        // M_{i+1}: seed pairs + this round's best pairs, each with its tag
        let mut examples = seed_examples.clone();
        let mut ds = backforth_corpus::readers::InputStats::default();
        let curated = data::from_messages_jsonl(
            &dir.join("curated.jsonl"),
            Some(data::WEB_TAG),
            data::MAX_LINE_BYTES,
            &mut ds,
        )?;
        let n_before = examples.len();
        examples.extend(curated);
        eprintln!(
            "M_{}: {} seed + {} curated pairs",
            i + 1,
            n_before,
            examples.len() - n_before
        );
        curator = ensure_model(
            &base,
            &root.join(format!("m{}", i + 1)),
            &examples,
            &tcfg,
            quiet,
            &format!("M_{}", i + 1),
        )?;
    }
    std::fs::write(
        root.join("selfalign_summary.json"),
        serde_json::to_vec_pretty(&summary)?,
    )?;
    println!(
        "final data: {}",
        root.join(format!("iter-{}/curated.jsonl", args.iterations))
            .display()
    );
    Ok(())
}
