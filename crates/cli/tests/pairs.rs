//! Several pairs per document (`--preset multi-pair`,
//! `backtranslate.pairs_per_document`) with the real test model on real
//! manual sections (Python library pages, `prepare` with heading
//! segmentation), under the settings that make a run bit-reproducible:
//! - a single-process run writes several pairs for a section, each a record
//!   `<id>#p<k>` that is curated and rewritten, and every exported pair
//!   points at its passage: `span.of` names a record of the input and its
//!   character range is the text the pair was curated on;
//! - a run killed with SIGKILL mid-curation and resumed has byte-identical
//!   exports and no duplicate ids;
//! - two shards merged, and a streamed run, give byte-identical exports.

mod common;
use common::*;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const EXPORTS: [&str; 4] = ["dataset.jsonl", "curated.jsonl", "checks.jsonl", "curated.sharegpt.jsonl"];

/// Sections of small Python library pages (the first four `prepare` keeps),
/// split into two JSONL files (two sections each), as `prepare` writes them.
fn inputs(dir: &Path) -> (PathBuf, PathBuf) {
    let html = cache().join("corpus/python3.11-doc/html/library");
    assert!(html.exists(), "{} is missing: scripts/fetch-assets.sh corpus", html.display());
    let pages = dir.join("pages");
    std::fs::create_dir_all(&pages).unwrap();
    for p in ["copy", "linecache", "getpass", "colorsys", "keyword", "pwd", "grp", "tty", "imghdr", "quopri", "uu"] {
        std::fs::copy(html.join(format!("{p}.html")), pages.join(format!("{p}.html"))).unwrap();
    }
    let prep = dir.join("prep");
    let st = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(["prepare", "--quiet", "--input", pages.to_str().unwrap()])
        .args(["--out", prep.to_str().unwrap(), "-s", "segment.mode=\"headings\""])
        .env("BACKFORTH_LOG", "error")
        .status()
        .unwrap();
    assert!(st.success());
    let lines: Vec<String> = std::fs::read_to_string(prep.join("candidates.jsonl"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(lines.len() >= 4, "{} sections", lines.len());
    let (a, b) = (dir.join("part-a.jsonl"), dir.join("part-b.jsonl"));
    std::fs::write(&a, lines[..2].join("\n") + "\n").unwrap();
    std::fs::write(&b, lines[2..4].join("\n") + "\n").unwrap();
    (a, b)
}

fn cmd(out: &Path, (a, b): &(PathBuf, PathBuf)) -> Command {
    let mut c = backforth_cmd(&["run"], out, a);
    reproducible(c.args(["--input", b.to_str().unwrap(), "--preset", "multi-pair"]));
    c.args(["-s", "backtranslate.max_tokens=160", "-s", "export.formats=[\"jsonl\",\"sharegpt\"]"]);
    c
}

fn lines_in(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0)
}

fn assert_same(a: &Path, b: &Path) {
    for f in EXPORTS {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x == y, "{f} differs:\n{}\n---\n{}", String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
    }
}

fn no_duplicate_ids(stage_file: &Path) {
    let ids: Vec<String> = read_jsonl(stage_file).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), unique.len(), "{ids:?}");
}

#[test]
fn several_pairs_per_section_resume_and_shard_like_one_process() {
    let _serial = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let ins = inputs(dir.path());

    // the single-process reference
    let single = dir.path().join("single");
    let o = cmd(&single, &ins).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: Value = serde_json::from_slice(&std::fs::read(single.join("summary.json")).unwrap()).unwrap();
    let bt = &summary["stages"]["backtranslate"];
    let pairs = bt["pairs"].as_u64().unwrap_or(0);
    assert_eq!(bt["done"], 4, "{bt}");
    assert!(pairs > bt["parsed_ok"].as_u64().unwrap(), "several pairs for some section: {bt}");
    // every pair is a record of its own downstream
    assert_eq!(summary["stages"]["curate"]["done"].as_u64().unwrap(), pairs, "{summary}");
    let curate = read_jsonl(&single.join("stages/curate.jsonl"));
    assert!(curate.iter().all(|r| r["id"].as_str().unwrap().contains("#p")));
    // every exported pair points at its passage of an input record
    let inputs: HashMap<String, String> = read_jsonl(&single.join("documents.jsonl"))
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["text"].as_str().unwrap().to_string()))
        .collect();
    let curated = read_jsonl(&single.join("curated.jsonl"));
    assert!(!curated.is_empty(), "the reference exports pairs");
    for e in &curated {
        let s = &e["span"];
        let text = &inputs[s["of"].as_str().unwrap()];
        let (a, b) = (s["start"].as_u64().unwrap() as usize, s["end"].as_u64().unwrap() as usize);
        let passage: String = text.chars().skip(a).take(b - a).collect();
        assert_eq!(passage.trim(), e["output"].as_str().unwrap(), "{e}");
        assert!(e["id"].as_str().unwrap().starts_with(s["of"].as_str().unwrap()));
    }
    for e in read_jsonl(&single.join("dataset.jsonl")) {
        assert!(e["span"]["of"].is_string(), "{e}");
    }
    // in input order: ordinal, then pair index
    let ids: Vec<&str> = curated.iter().map(|e| e["id"].as_str().unwrap()).collect();
    let order: Vec<(String, u32)> = ids
        .iter()
        .map(|id| {
            let (doc, k) = id.rsplit_once("#p").unwrap();
            (doc.to_string(), k.parse().unwrap())
        })
        .collect();
    let docs: Vec<String> = read_jsonl(&single.join("documents.jsonl")).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    let rank = |d: &str| docs.iter().position(|x| x == d).unwrap();
    assert!(order.windows(2).all(|w| (rank(&w[0].0), w[0].1) < (rank(&w[1].0), w[1].1)), "{ids:?}");

    // killed with SIGKILL mid-backtranslation, resumed and killed again
    // mid-curation (the stage that reads the fanned-out pairs), then resumed
    let resumed = dir.path().join("resumed");
    for (file, at) in [("stages/backtranslate.jsonl", 1), ("stages/curate.jsonl", 2)] {
        let mut child = cmd(&resumed, &ins).spawn().unwrap();
        let t0 = Instant::now();
        while lines_in(&resumed.join(file)) < at {
            assert!(child.try_wait().unwrap().is_none(), "finished before it was killed");
            assert!(t0.elapsed() < Duration::from_secs(600), "timeout");
            std::thread::sleep(Duration::from_millis(20));
        }
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(!resumed.join("dataset.jsonl").exists(), "killed before it finished");
    }
    let o = cmd(&resumed, &ins).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same(&single, &resumed);
    for s in ["backtranslate", "curate", "rewrite"] {
        no_duplicate_ids(&resumed.join(format!("stages/{s}.jsonl")));
    }

    // streamed through the stages (the pairs fanned out as results arrive)
    let streamed = dir.path().join("streamed");
    let o = cmd(&streamed, &ins).args(["-s", "run.streaming=true"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same(&single, &streamed);

    // two shards, merged
    let sharded = dir.path().join("sharded");
    for i in ["1", "0"] {
        let o = cmd(&sharded, &ins).args(["--num-shards", "2", "--shard", i]).output().unwrap();
        assert!(o.status.success(), "shard {i}: {}", String::from_utf8_lossy(&o.stderr));
    }
    let o = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(["shard", "merge", "--out", sharded.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same(&single, &sharded);
    let merged: Value = serde_json::from_slice(&std::fs::read(sharded.join("summary.json")).unwrap()).unwrap();
    assert_eq!(merged["stages"]["backtranslate"]["pairs"], bt["pairs"]);
}

/// Bad settings get a clear error before any model loads.
#[test]
fn pairs_with_a_finetuned_backward_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 2);
    let o = backforth(&dir.path().join("out"), &input)
        .args(["-s", "backtranslate.pairs_per_document=3", "-s", "backtranslate.mode=\"finetuned\""])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("pairs_per_document = 3 needs mode"), "{e}");
    let o = backforth(&dir.path().join("out"), &input)
        .args(["-s", "backtranslate.pairs_per_document=0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("pairs_per_document must be 1..=20"));
}
