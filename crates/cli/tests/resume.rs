//! Kill -9 in the middle of stages, rerun the same command: the result equals
//! an uninterrupted run byte for byte (batch size 1, same seed) and no record
//! is duplicated.

mod common;
use common::*;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

fn cmd(out: &Path, input: &Path) -> std::process::Command {
    let mut c = backforth(out, input);
    c.args([
        "--batch-size",
        "1",
        "--stages",
        "backtranslate,curate,rewrite",
        "-s",
        "curate.keep_min_score=1",
    ]);
    c
}

/// Start the run and SIGKILL it once `file` has at least `min_lines` lines.
fn run_and_kill(out: &Path, input: &Path, file: &str, min_lines: usize) {
    let mut child = cmd(out, input).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if lines(&out.join(file)) >= min_lines {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            return;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("run finished ({st}) before {file} reached {min_lines} lines");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "timeout waiting for {file}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigkill_and_resume_equals_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 8);

    let reference = dir.path().join("reference");
    assert!(cmd(&reference, &input).status().unwrap().success());

    let out = dir.path().join("killed");
    run_and_kill(&out, &input, "stages/backtranslate.jsonl", 3);
    let bt_after_kill = lines(&out.join("stages/backtranslate.jsonl"));
    assert!(bt_after_kill < 8, "kill came too late");
    run_and_kill(&out, &input, "stages/curate.jsonl", 2);
    assert!(cmd(&out, &input).status().unwrap().success());

    for f in [
        "documents.jsonl",
        "stages/backtranslate.jsonl",
        "stages/curate.jsonl",
        "stages/rewrite.jsonl",
        "curated.jsonl",
        "dataset.jsonl",
    ] {
        let a = std::fs::read_to_string(reference.join(f)).unwrap();
        let b = std::fs::read_to_string(out.join(f)).unwrap();
        assert_eq!(a, b, "{f} differs after kill + resume");
        let ids: Vec<String> = b
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let uniq: HashSet<_> = ids.iter().collect();
        assert_eq!(uniq.len(), ids.len(), "{f} has duplicate ids");
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert!(
        s["invocation"]["backtranslate"]["resumed"]
            .as_u64()
            .unwrap()
            == 8
    );
}
