//! A run folder made by the release before the crate layout changed resumes
//! with this build without redoing any stage.
//!
//! `tests/fixtures/run-before-layout/run` was written by the `backforth`
//! binary of commit fc73ff1 (one `crates/backforth` library crate) with
//! exactly [`ARGS`] below, run inside the fixture folder, on the SmolLM2-135M
//! test model; its `cache.sqlite` was then deleted, so nothing can be
//! answered from a cache: a stage whose key changed would have to call the
//! model again, and `summary.json` would count it as generated.
//! `templates-then/` holds the built-in curate and rewrite prompts of that
//! build (they were reordered later): a template's key is its text, so the
//! same text from a file keeps the stage keys.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The flags the fixture was made with (relative paths: the documents key
/// hashes the input paths as given).
const ARGS: &[&str] = &[
    "run",
    "--quiet",
    "--input",
    "docs.jsonl",
    "--seeds",
    "seeds.jsonl",
    "--out",
    "run",
    "--threads",
    "2",
    "--batch-size",
    "1",
    "--stages",
    "backtranslate,curate,rewrite,distill",
    "-s",
    "backtranslate.k=2",
    "-s",
    "backtranslate.max_seed_chars=400",
    "-s",
    "backtranslate.max_tokens=48",
    "-s",
    "curate.max_tokens=96",
    "-s",
    "rewrite.max_tokens=96",
    "-s",
    "distill.max_tokens=64",
    "-s",
    "model.context=2048",
    "-s",
    "curate.keep_min_score=1",
];

/// Files whose bytes must not change: the records.
const SAME: &[&str] = &[
    "run/documents.jsonl",
    "run/stages/backtranslate.jsonl",
    "run/stages/curate.jsonl",
    "run/stages/rewrite.jsonl",
    "run/stages/distill.jsonl",
];

/// Exports whose examples (id, instruction, output) must not change with the
/// checks off (the export format itself has changed since: provenance is a
/// string without local directories).
const SAME_EXAMPLES: &[&str] = &[
    "run/curated.jsonl",
    "run/dataset.jsonl",
    "run/distilled.jsonl",
];

fn examples(p: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let f = |k: &str| v[k].as_str().unwrap().to_string();
            (f("id"), f("instruction"), f("output"))
        })
        .collect()
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run-before-layout")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), dst).unwrap();
        }
    }
}

#[test]
fn run_folder_from_the_previous_layout_resumes_without_regenerating() {
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(), dir.path());
    assert!(
        !dir.path().join("run/cache.sqlite").exists(),
        "the fixture must not carry a response cache"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .current_dir(dir.path())
        .args(ARGS)
        .args(["--model", test_model().to_str().unwrap()])
        // the checks came after this run folder; off, its exports must come out the same
        .args(["-s", "checks.enabled=false"])
        // the built-in curate and rewrite prompts were reordered since (shared
        // prefix first); the prompts of that build, given as files, keep the keys
        .args([
            "-s",
            "curate.template=\"templates-then/curate.j2\"",
            "-s",
            "rewrite.template=\"templates-then/rewrite.j2\"",
        ])
        .env("BACKFORTH_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for f in SAME {
        let before =
            std::fs::read(fixture().join(f)).unwrap_or_else(|e| panic!("fixture {f}: {e}"));
        let after = std::fs::read(dir.path().join(f)).unwrap();
        assert!(before == after, "{f} changed on resume");
    }
    for f in SAME_EXAMPLES {
        assert_eq!(
            examples(&fixture().join(f)),
            examples(&dir.path().join(f)),
            "{f}"
        );
    }
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    let docs = std::fs::read_to_string(fixture().join("run/documents.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert!(docs > 0);
    for stage in ["backtranslate", "curate", "rewrite", "distill"] {
        let inv = &summary["invocation"][stage];
        assert_eq!(
            inv["generated"].as_u64(),
            Some(0),
            "{stage} was redone: {inv}"
        );
        assert!(
            inv["resumed"].as_u64().unwrap_or(0) > 0,
            "{stage} resumed nothing: {inv}"
        );
    }
    assert_eq!(
        summary["invocation"]["backtranslate"]["resumed"].as_u64(),
        Some(docs)
    );
}
