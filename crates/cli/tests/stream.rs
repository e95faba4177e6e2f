//! Streamed runs (`run.streaming = true`) with the real test model on real
//! news stories, under the settings that make a run bit-reproducible
//! (batch size 1, prefix reuse off):
//! - a streamed run's exports are byte-identical to a stage-by-stage run's,
//!   and its summary says when the first pair was written;
//! - a streamed run killed with SIGKILL at random moments (the delays are
//!   drawn per test run and printed) and resumed each time ends with
//!   byte-identical exports and no duplicate ids in any stage file.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const EXPORTS: [&str; 3] = ["dataset.jsonl", "curated.jsonl", "checks.jsonl"];

fn cmd(out: &Path, input: &Path, streaming: bool) -> Command {
    let mut c = backforth(out, input);
    reproducible(&mut c);
    c.args(["-s", &format!("run.streaming={streaming}")]);
    c
}

fn assert_same(a: &Path, b: &Path) {
    for f in EXPORTS {
        let (x, y) = (std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap());
        assert!(x == y, "{f} differs:\n{}\n---\n{}", String::from_utf8_lossy(&x), String::from_utf8_lossy(&y));
    }
}

fn summary(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p.join("summary.json")).unwrap()).unwrap()
}

/// A delay in [lo, hi) milliseconds from a generator seeded per test run.
fn delays(n: usize, lo: u64, hi: u64) -> Vec<u64> {
    let mut x = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    (0..n)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            lo + x % (hi - lo)
        })
        .collect()
}

#[test]
fn streamed_run_equals_stage_by_stage_and_survives_random_kills() {
    let _serial = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 6);

    let staged = dir.path().join("staged");
    let t0 = Instant::now();
    let o = cmd(&staged, &input, false).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let staged_s = t0.elapsed().as_millis() as u64;

    let streamed = dir.path().join("streamed");
    let o = cmd(&streamed, &input, true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same(&staged, &streamed);
    let (a, b) = (summary(&staged), summary(&streamed));
    assert!(b["first_output_s"].as_f64().unwrap() < b["wall_s"].as_f64().unwrap());
    assert!(a.get("first_output_s").is_none(), "stage by stage: no such figure");
    for s in ["backtranslate", "curate", "rewrite"] {
        assert_eq!(a["stages"][s]["done"], b["stages"][s]["done"], "{s}");
        assert_eq!(a["invocation"][s]["generated"], b["invocation"][s]["generated"], "{s}");
    }
    // not vacuous: pairs went all the way through
    assert!(b["stages"]["rewrite"]["done"].as_u64().unwrap() > 0, "{b}");

    // killed at random moments, resumed each time
    let killed = dir.path().join("killed");
    // each run resumes the last one's work, so a delay of up to half a
    // whole run kills most of them at a different point of the chain
    let plan = delays(4, 300, (staged_s / 2).max(1000));
    eprintln!("kill delays (ms): {plan:?}");
    let mut kills = 0;
    for ms in &plan {
        let mut child = cmd(&killed, &input, true).spawn().unwrap();
        let t = Instant::now();
        while t.elapsed() < Duration::from_millis(*ms) && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(10));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    let o = cmd(&killed, &input, true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_same(&staged, &killed);
    let keys = &summary(&killed)["keys"];
    for s in ["backtranslate", "curate", "rewrite"] {
        let k = keys[s].as_str().unwrap();
        let field = match s {
            "backtranslate" => "backtranslation",
            "curate" => "curation",
            _ => "rewrite",
        };
        let ids: Vec<String> = read_jsonl(&killed.join(format!("stages/{s}.jsonl")))
            .iter()
            .filter(|r| r[field]["stage_key"] == k)
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect();
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!(ids.len(), unique.len(), "{s}: {ids:?}");
    }
    eprintln!("{kills} of {} runs killed before they finished", plan.len());
    assert!(kills >= 2, "at least two runs killed (delays {plan:?})");
}
