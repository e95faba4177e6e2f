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
use anyhow::Result;
use backforth::config::{BackwardMode, Config};
use backforth::pipeline::{self, RunOptions};
use backforth_train::data::{self, Example};
use backforth_train::selfalign::{self, Ensured, Round};
use backforth_train::trainer::TrainConfig;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Train (or reuse) the adapter in `dir`, saying which; returns the adapter path.
fn ensure_model(
    base: &Path,
    dir: &Path,
    examples: &[Example],
    cfg: &TrainConfig,
    quiet: bool,
    what: &str,
) -> Result<PathBuf> {
    let enc = selfalign::encode_all(base, examples)?;
    eprintln!("{what}: {} examples → {}", enc.len(), dir.display());
    let (adapter, done) = selfalign::ensure_model(base, dir, &enc, cfg, &mut crate::progress::BarProgress::new(quiet, "train"))?;
    match done {
        Ensured::UpToDate => eprintln!("{what}: {} is up to date", dir.display()),
        Ensured::Trained { summary: s, replaced } => eprintln!(
            "{what}: {}held-out loss {} → {}",
            if replaced { "data or settings changed, retrained; " } else { "" },
            s.eval_loss_start.map(|v| format!("{v:.3}")).unwrap_or("-".into()),
            s.eval_loss_end.map(|v| format!("{v:.3}")).unwrap_or("-".into())
        ),
    }
    Ok(adapter)
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
        let round = Round::read(&dir, args.keep)?;
        let kept = round.kept.clone();
        let change = prev.as_ref().map(|p| round.change(p));
        println!(
            "iteration {i}: {} of {} pairs scored ≥ {} (scores {:?}); {} passed the checks and were exported{}",
            round.scored_at_keep,
            round.scored,
            args.keep,
            round.scores,
            kept.len(),
            change
                .as_ref()
                .map(|c| format!("; vs previous: +{} −{} ={}", c.added, c.dropped, c.stayed))
                .unwrap_or_default()
        );
        summary.push(serde_json::json!({
            "iteration": i,
            "curation_model": curator.display().to_string(),
            "run": dir.display().to_string(),
            "scored": round.scored,
            "scored_at_keep": round.scored_at_keep,
            "kept": kept.len(),
            "scores": round.scores,
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
            &backforth::store::RunDir(dir.clone()).export("curated"),
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
