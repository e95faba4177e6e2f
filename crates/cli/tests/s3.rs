//! A run whose inputs and run folder are in S3 (moto's real S3 server on
//! loopback, started here and stopped by PID), against a single process
//! reading the same objects into a local folder (batch size 1, prefix reuse
//! off): two shards, one byte-range-split JSONL object and one gzip object,
//! dedup across shards on the bucket (sign, one band's bucket task, cluster)
//! dropping a planted copy before any LLM call, `status` and `merge` on the
//! bucket, the merged exports byte-identical (less the copy's lines);
//! a finished shard is not run again, a merged run is not merged twice, a
//! one-command `run` into the bucket (one shard + merge) gives the same
//! dataset, and the secret key appears in no output.

mod common;
#[path = "../../objstore/tests/moto.rs"]
mod moto;

use backforth_objstore::Location;
use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

const EXPORTS: [&str; 3] = ["dataset.jsonl", "curated.jsonl", "checks.jsonl"];

fn ok(o: &Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{what} failed: {err}");
    assert!(!err.contains(moto::SECRET), "{what} printed the secret key");
    err
}

/// An export of the reference run less the lines of the planted copy (a
/// single process without dedup across shards keeps it).
fn without_copy(p: &Path) -> Vec<u8> {
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("lee-copy"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .into_bytes()
}

#[test]
fn s3_inputs_and_run_folder_give_the_local_result() {
    let d = tempfile::tempdir().unwrap();
    let Some(s3) = moto::Moto::with_bucket(d.path(), "corpus") else {
        return;
    };
    // six real news stories: three in a plain JSONL object (the plan cuts it
    // into byte ranges), three in a gzip object (taken whole) with a copy of
    // the first story under another id after them
    let all = dolma_sample(d.path(), 6);
    let mut lines: Vec<String> = std::fs::read_to_string(&all)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let mut copy: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    copy["id"] = "lee-copy".into();
    lines.push(copy.to_string());
    let bucket = Location::parse("s3://corpus").unwrap();
    bucket
        .join("in/part-a.jsonl")
        .put((lines[..3].join("\n") + "\n").into_bytes())
        .unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((lines[3..].join("\n") + "\n").as_bytes())
        .unwrap();
    bucket
        .join("in/part-b.jsonl.gz")
        .put(gz.finish().unwrap())
        .unwrap();

    let work = d.path().join("work");
    let cmd = |sub: &[&str], out: &str| -> Command {
        let mut c = backforth_cmd(sub, Path::new(out), Path::new("s3://corpus/in/part-*"));
        reproducible(&mut c)
            .envs(s3.env())
            .env("BACKFORTH_WORK_DIR", &work);
        c
    };
    // the dedup steps after `sign` take no stage or seed flags (they act on none)
    let step = |sub: &[&str], out: &str| -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
        c.args(sub)
            .args(["--quiet", "--input", "s3://corpus/in/part-*", "--out", out])
            .env("BACKFORTH_LOG", "warn")
            .envs(s3.env())
            .env("BACKFORTH_WORK_DIR", &work);
        c
    };
    let reference = d.path().join("single");
    ok(
        &cmd(&["run"], reference.to_str().unwrap()).output().unwrap(),
        "reference run",
    );
    // a single process without dedup across shards keeps the copy
    assert_eq!(read_jsonl(&reference.join("documents.jsonl")).len(), 7);
    let run = "s3://corpus/runs/two";
    // dedup across shards, every step on the bucket
    for i in ["0", "1"] {
        ok(
            &cmd(&["shard", "dedup", "sign", "--num-shards", "2", "--shard", i], run)
                .output()
                .unwrap(),
            "dedup sign",
        );
    }
    ok(
        &step(
            &["shard", "dedup", "buckets", "--num-shards", "2", "--band", "0"],
            run,
        )
        .output()
        .unwrap(),
        "dedup buckets",
    );
    ok(
        &step(&["shard", "dedup", "cluster", "--num-shards", "2"], run)
            .output()
            .unwrap(),
        "dedup cluster",
    );
    assert!(bucket
        .join("runs/two/dedup/pairs/band0.done")
        .head()
        .unwrap()
        .is_some());
    assert!(bucket
        .join("runs/two/dedup/remove/_DONE")
        .head()
        .unwrap()
        .is_some());

    for i in ["1", "0"] {
        let o = cmd(&["run", "--num-shards", "2", "--shard", i], run)
            .output()
            .unwrap();
        ok(&o, &format!("shard {i}"));
    }
    let plan = String::from_utf8(
        bucket
            .join("runs/two/plan.json")
            .get()
            .unwrap()
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    assert!(
        plan.contains("\"range\""),
        "the JSONL object was cut into byte ranges: {plan}"
    );
    for i in 0..2 {
        assert!(bucket
            .join(&format!("runs/two/shards/{i:05}/_DONE.json"))
            .head()
            .unwrap()
            .is_some());
    }
    let o = cmd(&["run", "--num-shards", "2", "--shard", "0"], run)
        .output()
        .unwrap();
    assert!(ok(&o, "relaunch").contains("already done"));
    let on_run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_backforth"))
            .args(args)
            .args(["--out", run])
            .envs(s3.env())
            .env("BACKFORTH_WORK_DIR", &work)
            .output()
            .unwrap()
    };
    let st = on_run(&["shard", "status"]);
    ok(&st, "status");
    assert!(
        String::from_utf8_lossy(&st.stdout).contains("done:     2 of 2"),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    ok(&on_run(&["merge"]), "merge");
    let again = on_run(&["merge"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already merged"));
    for f in EXPORTS {
        let got = bucket
            .join(&format!("runs/two/{f}"))
            .get()
            .unwrap()
            .unwrap_or_else(|| panic!("{f} uploaded"));
        assert!(
            got[..] == without_copy(&reference.join(f))[..],
            "{f} differs from the single-process run"
        );
    }
    assert!(bucket.join("runs/two/_SUCCESS").head().unwrap().is_some());
    let summary: serde_json::Value =
        serde_json::from_slice(&bucket.join("runs/two/summary.json").get().unwrap().unwrap())
            .unwrap();
    assert_eq!(summary["input"]["documents"], 6);
    assert_eq!(
        summary["input"]["skipped"]["exact_duplicate_across_shards"], 1,
        "{}",
        summary["input"]
    );

    // one command into the bucket: a one-shard run and its merge (answers
    // from the reference's response cache, so this costs no generation)
    let one = "s3://corpus/runs/one";
    let cache = reference.join("cache.sqlite");
    let o = cmd(&["run"], one)
        .args(["-s", &format!("cache.path={}", cache.display())])
        .output()
        .unwrap();
    ok(&o, "run into the bucket");
    let got = bucket
        .join("runs/one/dataset.jsonl")
        .get()
        .unwrap()
        .unwrap();
    assert!(got[..] == std::fs::read(reference.join("dataset.jsonl")).unwrap()[..]);
    let one: serde_json::Value =
        serde_json::from_slice(&bucket.join("runs/one/summary.json").get().unwrap().unwrap())
            .unwrap();
    assert_eq!(
        one["input"]["documents"], 7,
        "no dedup across shards asked: the copy stays"
    );
    let log = std::fs::read_to_string(&s3.log).unwrap();
    assert!(!log.contains(moto::SECRET));
}
