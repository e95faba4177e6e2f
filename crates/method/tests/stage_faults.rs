//! Stage logic under injected backend faults (a scripted backend stands in
//! for the model only to inject failures; the real path is tested with a
//! real GGUF in the CLI tests): per-request errors and unparseable outputs are
//! recorded with their raw text and reason, counted, and nothing is lost.

use backforth::stage::def::StageDef;
use backforth::config::{Config, Stage};
use backforth::prompt::PromptTemplate;
use backforth::record::{ParseStatus, Record, SourceLoc};
use backforth::stages::{run_stage, totals, StageSpec};
use backforth::store::StageFile;
use backforth_inference::backend::{Backend, FinishReason, GenOutput, GenRequest, Sink};

/// Answers by the record's position: 0 → valid score, 1 → prose without a score,
/// 2 → per-request error, 3 → out-of-range score, 4 → cut at max_tokens. Completes in reverse order.
struct Scripted;
impl Backend for Scripted {
    fn model_id(&self) -> String {
        "scripted".into()
    }
    fn generate(
        &mut self,
        requests: &mut dyn Iterator<Item = GenRequest>,
        sink: &mut Sink<'_>,
    ) -> anyhow::Result<()> {
        let reqs: Vec<GenRequest> = requests.collect();
        for r in reqs.iter().rev() {
            let user = &r.messages.last().unwrap().content;
            let i: usize = user.split("DOC").nth(1).unwrap()[..1].parse().unwrap();
            let ok = |text: &str, finish| {
                Ok(GenOutput {
                    text: text.into(),
                    prompt_tokens: 10,
                    completion_tokens: 5,
                    finish,
                    cached_prompt_tokens: 0,
                    logprobs: vec![],
                })
            };
            let res = match i % 5 {
                0 => ok("Reasoning: fine.\nScore: 5", FinishReason::Stop),
                1 => ok("I would rate this highly.", FinishReason::Stop),
                2 => Err("server said 500".to_string()),
                3 => ok("Reasoning: x\nScore: 7", FinishReason::Stop),
                _ => ok("Reasoning: this goes on and on", FinishReason::Length),
            };
            sink(r.tag, res)?;
        }
        Ok(())
    }
}

fn record(i: usize) -> Record {
    let mut r = Record::new(
        format!("d{i}"),
        i as u64,
        SourceLoc::default(),
        format!("DOC{i} text"),
        serde_json::Value::Null,
    );
    let def = StageDef::builtin(Stage::Backtranslate, &Config::default());
    let mut g = backforth::stages::StageSpec {
        def: &def,
        cfg: &Config::default(),
        template: &PromptTemplate::builtin("backtranslate_finetuned").unwrap(),
        seeds: &[],
        key: "k",
        model_id: "m",
        seed_index: None,
    }
    .interpret(
        &backforth::Record::new("x".into(), 0, Default::default(), "text".into(), serde_json::json!({})),
        Ok(GenOutput {
            text: "What is it?".into(),
            prompt_tokens: 1,
            completion_tokens: 1,
            finish: FinishReason::Stop,
            cached_prompt_tokens: 0,
            logprobs: vec![],
        }),
    );
    g.stage_key = "bt".into();
    r.backtranslation = Some(g);
    r
}

#[test]
fn faults_are_recorded_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("curate.jsonl");
    let cfg = Config::default();
    let tpl = PromptTemplate::builtin("curate").unwrap();
    let def = StageDef::builtin(Stage::Curate, &cfg);
    let spec = StageSpec {
        def: &def,
        cfg: &cfg,
        template: &tpl,
        seeds: &[],
        key: "ck",
        model_id: "scripted",
        seed_index: None,
    };
    let mut no_progress = |_: u64, _: u64, _: u64, _: f64| {};
    let rep = run_stage(
        &spec,
        &mut Scripted,
        (0..5).map(record),
        StageFile::open(&out, "curate", "ck").unwrap(),
        &mut no_progress,
    )
    .unwrap();
    assert_eq!(
        (
            rep.input,
            rep.generated,
            rep.parsed_ok,
            rep.parse_failed,
            rep.backend_errors
        ),
        (5, 5, 1, 3, 1)
    );

    let recs: Vec<Record> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 5);
    let by_id = |id: &str| {
        recs.iter()
            .find(|r| r.id == id)
            .unwrap()
            .curation
            .clone()
            .unwrap()
    };
    assert_eq!(by_id("d0").score, Some(5));
    assert_eq!(by_id("d1").raw, "I would rate this highly.");
    assert_eq!(
        by_id("d1").parse,
        ParseStatus::Failed {
            reason: "no `Score: N` line".into()
        }
    );
    assert_eq!(
        by_id("d2").parse,
        ParseStatus::Error {
            error: "server said 500".into()
        }
    );
    assert_eq!(
        by_id("d3").parse,
        ParseStatus::Failed {
            reason: "score 7 out of range 1-5".into()
        }
    );
    assert!(matches!(by_id("d4").parse, ParseStatus::Failed { .. }));
    assert_eq!(by_id("d4").finish_reason, "length");

    let t = totals(&out, "curate", "ck", &cfg).unwrap();
    assert_eq!(t.cost_usd, None);
    let mut priced = cfg.clone();
    priced.http.usd_per_million_prompt_tokens = 2.0;
    priced.http.usd_per_million_completion_tokens = 10.0;
    // 4 answered requests × (10 prompt, 5 completion) tokens
    let c = totals(&out, "curate", "ck", &priced)
        .unwrap()
        .cost_usd
        .unwrap();
    assert!((c - (40.0 * 2.0 + 20.0 * 10.0) / 1e6).abs() < 1e-12, "{c}");
    assert_eq!(t.done, 5);
    assert_eq!(t.score_histogram["5"], 1);
    assert_eq!(t.kept, Some(1));
    assert_eq!(t.parsed_share, Some(0.2));
    assert_eq!(t.failure_reasons.values().sum::<u64>(), 4);

    // rerun: all done, nothing generated again
    let rep = run_stage(
        &spec,
        &mut Scripted,
        (0..5).map(record),
        StageFile::open(&out, "curate", "ck").unwrap(),
        &mut no_progress,
    )
    .unwrap();
    assert_eq!((rep.resumed, rep.generated), (5, 0));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 5);
}

#[test]
fn fewshot_draws_are_deterministic_per_record() {
    let cfg = Config::default();
    let tpl = PromptTemplate::builtin("backtranslate_fewshot").unwrap();
    let seeds: Vec<backforth::seeds::Seed> = (0..20)
        .map(|i| backforth::seeds::Seed {
            instruction: format!("q{i}"),
            response: format!("a{i}"),
        })
        .collect();
    let def = StageDef::builtin(Stage::Backtranslate, &cfg);
    let spec = StageSpec {
        def: &def,
        cfg: &cfg,
        template: &tpl,
        seeds: &seeds,
        key: "k",
        model_id: "m",
        seed_index: None,
    };
    let a: Vec<_> = spec
        .pick_seeds("doc-1")
        .iter()
        .map(|s| s.instruction.clone())
        .collect();
    let b: Vec<_> = spec
        .pick_seeds("doc-1")
        .iter()
        .map(|s| s.instruction.clone())
        .collect();
    assert_eq!(a, b);
    assert_eq!(a.len(), cfg.backtranslate.k);
    let distinct: std::collections::HashSet<_> = a.iter().collect();
    assert_eq!(distinct.len(), a.len());
    let others: std::collections::HashSet<Vec<String>> = (0..10)
        .map(|i| {
            spec.pick_seeds(&format!("doc-{i}"))
                .iter()
                .map(|s| s.instruction.clone())
                .collect()
        })
        .collect();
    assert!(others.len() > 1);
    let req = spec.request(&record(0), 1).unwrap();
    assert_eq!(req.messages.len(), 2 + 2 * cfg.backtranslate.k);
}

#[test]
fn nearest_seed_selection_shows_seeds_on_the_documents_topic() {
    let mut cfg = Config::default();
    cfg.backtranslate.k = 1;
    let tpl = PromptTemplate::builtin("backtranslate_fewshot").unwrap();
    let seeds: Vec<backforth::seeds::Seed> = [
        (
            "How do I reverse a list in Python?",
            "Call list.reverse() or use slicing with a step of -1.",
        ),
        (
            "Why do bushfires spread so fast in strong winds?",
            "Wind carries embers ahead of the fire front and dries the fuel.",
        ),
    ]
    .iter()
    .map(|(i, r)| backforth::seeds::Seed {
        instruction: i.to_string(),
        response: r.to_string(),
    })
    .collect();
    let ix = backforth::seeds::SeedIndex::new(&seeds);
    let def = StageDef::builtin(Stage::Backtranslate, &cfg);
    let spec = StageSpec {
        def: &def,
        cfg: &cfg,
        template: &tpl,
        seeds: &seeds,
        key: "k",
        model_id: "m",
        seed_index: Some(&ix),
    };
    let r = Record::new(
        "fire".into(),
        0,
        SourceLoc::default(),
        "Strong winds pushed a huge bushfire towards the town; embers started new fires.".into(),
        serde_json::Value::Null,
    );
    assert_eq!(spec.seeds_for(&r)[0].instruction, seeds[1].instruction);
    let req = spec.request(&r, 1).unwrap();
    assert!(
        req.messages
            .iter()
            .any(|m| m.content.contains("bushfires spread")),
        "{:?}",
        req.messages
    );
    // the choice is part of the stage key; the default adds nothing (old runs keep their keys)
    let random = StageDef::builtin(Stage::Backtranslate, &cfg).fingerprint(&cfg);
    cfg.backtranslate.seed_selection = backforth::seeds::SeedSelection::Nearest;
    let nearest = StageDef::builtin(Stage::Backtranslate, &cfg).fingerprint(&cfg);
    assert_ne!(random, nearest);
    assert!(!random.contains("seeds="));
}
