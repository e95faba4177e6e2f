//! The learned document filter end to end, on real text and models:
//! - the `doc-rubric` preset rates real news stories with the test model;
//! - `checks train-filter` fits the filter on ratings the demo model gave
//!   (a committed stage file: 80 of the Lee corpus's stories rated by
//!   Qwen2.5-Coder-0.5B with the same preset) and reports agreement;
//! - `prepare` with `doc_filter.model` drops exactly the candidates the
//!   filter rates under `doc_filter.min_probability`, counts them, and keeps
//!   the probability in each candidate's metadata; `run` with
//!   `run.prepare = true` reads only the kept ones;
//! - bad input gets a clear error: a label file that is not UTF-8, a filter
//!   without its embedder.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;


fn rated() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doc-rubric/news-rated.jsonl")
}

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
    c.env("BACKFORTH_LOG", "warn");
    c
}

fn ok(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(
        o.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn failure(c: &mut Command) -> String {
    let o = c.output().unwrap();
    assert!(!o.status.success(), "expected a failure");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn the_rubric_preset_rates_documents() {
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 5);
    let out = dir.path().join("rubric");
    ok(backforth_cmd(&["run"], &out, &input).args(["--preset", "doc-rubric", "--batch-size", "1"]));
    let recs = read_jsonl(&out.join("stages/doc_rubric.jsonl"));
    assert_eq!(recs.len(), 5);
    let mut parsed = 0;
    for r in &recs {
        let g = &r["outputs"]["doc_rubric"];
        assert!(g["raw"].is_string(), "{r}");
        if g["parse"]["status"] == "ok" {
            parsed += 1;
            let s = g["score"].as_u64().unwrap();
            assert!((1..=5).contains(&s), "{g}");
        }
    }
    // the grammar makes every output parse
    assert_eq!(parsed, 5, "{recs:?}");
    let export = read_jsonl(&out.join("doc_rubric.jsonl"));
    assert_eq!(export.len(), 5);
}

#[test]
fn a_trained_filter_drops_candidates_in_prepare_and_run() {
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let fdir = dir.path().join("filter");
    let stdout = ok(bin()
        .args([
            "checks",
            "train-filter",
            "--labels",
            rated().to_str().unwrap(),
        ])
        .args([
            "--embedding-model",
            minilm().to_str().unwrap(),
            "--threads",
            "2",
        ])
        .args(["--out", fdir.to_str().unwrap()]));
    assert!(
        stdout.contains("held out:") && stdout.contains("agreement"),
        "{stdout}"
    );
    let model: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fdir.join("doc_filter.json")).unwrap())
            .unwrap();
    let held = model["held_out"]["documents"].as_u64().unwrap();
    assert!((10..=35).contains(&held), "held out {held} of 80");

    // prepare the first 60 stories of the corpus (the fixture rated others too;
    // this checks the mechanics, BENCHMARKS.md measures agreement on unseen sets)
    let input = dolma_sample(dir.path(), 60);
    let prep = |name: &str, min_p: &str| -> (serde_json::Value, Vec<serde_json::Value>) {
        let out = dir.path().join(name);
        ok(bin()
            .args([
                "prepare",
                "--quiet",
                "--input",
                input.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .args([
                "-s",
                &format!(
                    "doc_filter.model={:?}",
                    fdir.join("doc_filter.json").display().to_string()
                ),
            ])
            .args([
                "-s",
                &format!(
                    "doc_filter.embedding_model={:?}",
                    minilm().display().to_string()
                ),
            ])
            .args([
                "-s",
                &format!("doc_filter.min_probability={min_p}"),
                "--threads",
                "2",
            ]));
        let st =
            serde_json::from_str(&std::fs::read_to_string(out.join("prepare_stats.json")).unwrap())
                .unwrap();
        (st, read_jsonl(&out.join("candidates.jsonl")))
    };
    let (all_st, all) = prep("all", "0.0");
    // prepare's own rules drop a few (too short); the filter at 0 drops none
    let n = all.len();
    assert!(
        n >= 40 && all_st["kept"].as_u64().unwrap() as usize == n,
        "{all_st}"
    );
    assert!(all_st["dropped"].get("doc_filter").is_none(), "{all_st}");
    let p: Vec<f64> = all
        .iter()
        .map(|r| r["metadata"]["doc_filter"].as_f64().unwrap())
        .collect();
    assert!(p.iter().all(|x| (0.0..=1.0).contains(x)));
    // a threshold between the scores: those under it leave, counted, ordinals stay contiguous
    let mut sorted = p.clone();
    sorted.sort_by(f64::total_cmp);
    let cut = sorted[sorted.len() / 3];
    let (st, kept) = prep("cut", &cut.to_string());
    let expect: Vec<&str> = all
        .iter()
        .zip(&p)
        .filter(|(_, x)| **x >= cut)
        .map(|(r, _)| r["id"].as_str().unwrap())
        .collect();
    let got: Vec<&str> = kept.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(got, expect);
    assert!(got.len() < n && got.len() >= n / 2, "{} of {n}", got.len());
    assert_eq!(
        st["dropped"]["doc_filter"].as_u64().unwrap() as usize,
        n - got.len(),
        "{st}"
    );
    assert_eq!(st["kept"].as_u64().unwrap() as usize, got.len());
    for (i, r) in kept.iter().enumerate() {
        assert_eq!(r["ordinal"].as_u64().unwrap() as usize, i);
    }

    // inside `run` (run.prepare = true): the documents are the kept candidates
    let out = dir.path().join("run");
    let filter_set = [
        "-s".to_string(),
        "run.prepare=true".into(),
        "-s".into(),
        format!(
            "doc_filter.model={:?}",
            fdir.join("doc_filter.json").display().to_string()
        ),
        "-s".into(),
        format!("doc_filter.min_probability={cut}"),
    ];
    // without its embedder: a clear error, nothing generated
    let err = failure(
        backforth_cmd(&["run"], &out, &input)
            .args(&filter_set)
            .args(["--stages", "backtranslate"]),
    );
    assert!(err.contains("doc_filter.embedding_model"), "{err}");
    ok(backforth_cmd(&["run"], &out, &input)
        .args(&filter_set)
        .args([
            "-s",
            &format!(
                "doc_filter.embedding_model={:?}",
                minilm().display().to_string()
            ),
        ])
        .args(["--stages", "backtranslate", "--limit", "60"])
        .args(["-s", "backtranslate.max_tokens=8", "--batch-size", "4"]));
    let docs: Vec<String> = read_jsonl(&out.join("documents.jsonl"))
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(docs, expect);
    assert_eq!(
        read_jsonl(&out.join("stages/backtranslate.jsonl")).len(),
        expect.len()
    );
}

#[test]
fn bad_label_files_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let mut bytes = std::fs::read(rated()).unwrap();
    bytes.extend_from_slice(b"{\"id\": \"x\", \"text\": \"\xff\xfe\"}\n");
    std::fs::write(&bad, bytes).unwrap();
    let err = failure(
        bin()
            .args(["checks", "train-filter", "--labels", bad.to_str().unwrap()])
            .args(["--embedding-model", minilm().to_str().unwrap()])
            .args(["--out", dir.path().join("f").to_str().unwrap()]),
    );
    assert!(
        err.contains("bad.jsonl:81") && err.contains("UTF-8"),
        "{err}"
    );
    let err = failure(
        bin()
            .args([
                "checks",
                "train-filter",
                "--labels",
                rated().to_str().unwrap(),
                "--stage",
                "nothing",
            ])
            .args(["--embedding-model", minilm().to_str().unwrap()])
            .args(["--out", dir.path().join("f").to_str().unwrap()]),
    );
    assert!(err.contains("0 training documents"), "{err}");
}
