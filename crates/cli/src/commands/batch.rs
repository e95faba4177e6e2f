//! Offline batch files: `batch export` writes a stage's pending requests as
//! OpenAI Batch API JSONL (`custom_id`, `method`, `url`, `body`), accepted by the
//! OpenAI Batch API and `vllm run-batch`; `batch import` reads the results
//! file back. Matching is by `custom_id` = the response-cache key of the request
//! (model id + messages + sampling + seed + grammar), so import stores results
//! in the run's response cache and then runs the stage from the cache alone:
//! requests whose result line is missing or failed get no answer and stay
//! pending (export again to retry them).

use crate::cli::{BatchArgs, BatchCmd};
use crate::provider::Provider;
use anyhow::{Context, Result};
use backforth::pipeline::{self, NoProgress, RunOptions};
use backforth_inference::cache::{request_key, CachedBackend, ResponseCache};
use backforth_inference::{Backend, BackendProvider, GenRequest, Sink};
use std::io::{BufRead, Write};

/// A backend that never answers: it hands each request to `f` and leaves it pending.
struct Unanswering<F: FnMut(&GenRequest) -> Result<()>> {
    id: String,
    f: F,
}

impl<F: FnMut(&GenRequest) -> Result<()>> Backend for Unanswering<F> {
    fn model_id(&self) -> String {
        self.id.clone()
    }
    fn generate(
        &mut self,
        requests: &mut dyn Iterator<Item = GenRequest>,
        _: &mut Sink<'_>,
    ) -> Result<()> {
        for r in requests {
            (self.f)(&r)?;
        }
        Ok(())
    }
}

/// Serves one fixed backend for every model name.
struct One<'a> {
    id: String,
    backend: &'a mut dyn Backend,
}
impl BackendProvider for One<'_> {
    fn model_id(&mut self, _: &str) -> Result<String> {
        Ok(self.id.clone())
    }
    fn backend(&mut self, _: &str) -> Result<&mut dyn Backend> {
        Ok(&mut *self.backend)
    }
}

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(cmd: BatchCmd) -> Result<()> {
    match cmd {
        BatchCmd::Export(a) => export(a),
        BatchCmd::Import(a) => import(a),
    }
}

fn setup(a: &BatchArgs) -> Result<(backforth::Config, String, String, String)> {
    let cfg = a.config()?;
    // any stage of the plan, built-in or defined in the config
    let stage = backforth::stage::def::StagePlan::new(&cfg)?.require(&a.stage)?.name.clone();
    let model = cfg.model_path(&stage);
    let id = Provider::new(&cfg).model_id(&model)?;
    Ok((cfg, stage, model, id))
}

fn export(a: BatchArgs) -> Result<()> {
    let (cfg, stage, model, id) = setup(&a)?;
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(&a.file).with_context(|| format!("creating {}", a.file.display()))?,
    );
    let mut n = 0u64;
    let url = a
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("/v1{}", backforth_http::endpoint(cfg.http.api)));
    let mut backend = Unanswering {
        id: id.clone(),
        f: |r: &GenRequest| -> Result<()> {
            let line = serde_json::json!({
                "custom_id": request_key(&id, r),
                "method": "POST",
                "url": url,
                "body": backforth_http::request_body(&model, r, cfg.http.api, cfg.http.grammar_field),
            });
            serde_json::to_writer(&mut w, &line)?;
            w.write_all(b"\n")?;
            n += 1;
            Ok(())
        },
    };
    let mut p = One {
        id: id.clone(),
        backend: &mut backend,
    };
    pipeline::run(
        &cfg,
        &[stage.clone()],
        &mut p,
        &mut NoProgress,
        RunOptions::default(),
    )?;
    drop(backend);
    eprintln!(
        "{}: {n} pending requests written to {}",
        stage,
        a.file.display()
    );
    Ok(())
}

fn import(a: BatchArgs) -> Result<()> {
    let (cfg, stage, _model, id) = setup(&a)?;
    let cache = ResponseCache::open(&cfg.cache_path())?;
    let f =
        std::fs::File::open(&a.file).with_context(|| format!("opening {}", a.file.display()))?;
    let (mut ok, mut failed, mut bad) = (0u64, 0u64, 0u64);
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", a.file.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let where_ = format!("{}:{}", a.file.display(), i + 1);
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("{where_}: not JSON ({e}); skipped");
                bad += 1;
                continue;
            }
        };
        let Some(cid) = v["custom_id"].as_str() else {
            eprintln!("{where_}: no custom_id; skipped");
            bad += 1;
            continue;
        };
        let status = v["response"]["status_code"].as_u64().unwrap_or(0);
        if !v["error"].is_null() || status != 200 {
            eprintln!(
                "{where_}: request {cid} failed (status {status}, error {}); left pending",
                v["error"]
            );
            failed += 1;
            continue;
        }
        match backforth_http::parse_completion(&v["response"]["body"].to_string()) {
            Ok(o) => {
                cache.put(cid, &id, &o)?;
                ok += 1;
            }
            Err(e) => {
                eprintln!("{where_}: request {cid}: {e}; left pending");
                failed += 1;
            }
        }
    }
    drop(cache);
    let mut backend = CachedBackend {
        inner: Box::new(Unanswering {
            id: id.clone(),
            f: |_: &GenRequest| Ok(()),
        }),
        cache: ResponseCache::open(&cfg.cache_path())?,
        hits: 0,
        misses: 0,
    };
    let mut p = One {
        id,
        backend: &mut backend,
    };
    let summary = pipeline::run(
        &cfg,
        &[stage.clone()],
        &mut p,
        &mut NoProgress,
        RunOptions::default(),
    )?;
    let rep = &summary.invocation[&stage];
    eprintln!(
        "{}: {ok} result lines read, {failed} failed, {bad} unreadable; {} records imported, {} left pending",
        stage,
        rep.generated,
        rep.left_pending
    );
    Ok(())
}
