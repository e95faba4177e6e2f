//! A run folder is a dataset people can load: `datasets.load_dataset(<run
//! folder>)` (the Python `datasets` library, installed by the test set-up)
//! reads the dataset card's default config, and the ShareGPT and Parquet
//! copies hold the same examples.

mod common;
use common::*;
use std::process::Command;

#[test]
fn run_folder_loads_with_hugging_face_datasets() {
    let _serial = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 8);
    let out = dir.path().join("run");
    // backtranslate + curate only, every score kept and the checks off, so a
    // 135M model still leaves examples to load
    let st = backforth(&out, &input)
        .args([
            "--stages",
            "backtranslate,curate",
            "-s",
            "curate.keep_min_score=1",
            "-s",
            "checks.enabled=false",
        ])
        .args([
            "-s",
            "export.input_licenses=\"news stories from gensim's test data (LGPL-2.1)\"",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let curated = read_jsonl(&out.join("curated.jsonl"));
    assert!(!curated.is_empty(), "no curated examples to load");
    let card = std::fs::read_to_string(out.join("README.md")).unwrap();
    assert!(
        card.contains("news stories from gensim's test data (LGPL-2.1)"),
        "{card}"
    );

    let script = r#"
import json, sys, datasets
run = sys.argv[1]
ds = datasets.load_dataset(run, split="train")
pq = datasets.load_dataset("parquet", data_files=run + "/curated.parquet", split="train")
sg = datasets.load_dataset("json", data_files=run + "/curated.sharegpt.jsonl", split="train")
print(json.dumps({
    "rows": ds.num_rows, "columns": sorted(ds.column_names),
    "first": {"id": ds[0]["id"], "instruction": ds[0]["instruction"], "roles": [m["role"] for m in ds[0]["messages"]]},
    "parquet_rows": pq.num_rows, "parquet_columns": sorted(pq.column_names), "parquet_first": pq[0]["instruction"],
    "sharegpt_rows": sg.num_rows, "sharegpt_from": [t["from"] for t in sg[0]["conversations"]],
}))
"#;
    let cache_dir = dir.path().join("hf-cache");
    let o = Command::new("python3")
        .args(["-c", script, out.to_str().unwrap()])
        .env("PYTHONPATH", hf_datasets())
        .env("HF_DATASETS_OFFLINE", "1")
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", &cache_dir)
        .env("HF_DATASETS_CACHE", &cache_dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let n = curated.len() as u64;
    assert_eq!(v["rows"].as_u64(), Some(n), "{v}");
    for c in [
        "id",
        "instruction",
        "messages",
        "output",
        "response_kind",
        "score",
        "source",
    ] {
        assert!(
            v["columns"].as_array().unwrap().iter().any(|x| x == c),
            "column {c} missing: {v}"
        );
    }
    assert_eq!(v["first"]["id"], curated[0]["id"]);
    assert_eq!(v["first"]["instruction"], curated[0]["instruction"]);
    assert_eq!(
        v["first"]["roles"],
        serde_json::json!(["system", "user", "assistant"])
    );
    assert_eq!(v["parquet_rows"].as_u64(), Some(n));
    assert_eq!(v["parquet_first"], curated[0]["instruction"]);
    assert_eq!(v["sharegpt_rows"].as_u64(), Some(n));
    assert_eq!(
        v["sharegpt_from"],
        serde_json::json!(["system", "human", "gpt"])
    );
}
