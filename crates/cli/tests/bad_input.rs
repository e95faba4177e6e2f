//! Bad input: malformed JSONL, invalid UTF-8, truncated gzip, empty document,
//! a 50 MB document. Each gives a message with file and line, the run goes on,
//! and the skips are counted in summary.json.

mod common;
use common::*;
use std::io::Write;

#[test]
fn bad_input_is_reported_counted_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read_to_string(lee_corpus()).unwrap();
    let good: Vec<&str> = good.lines().take(3).collect();

    let jl = dir.path().join("mixed.jsonl");
    let mut f = std::fs::File::create(&jl).unwrap();
    writeln!(f, "{}", serde_json::json!({"id": "g0", "text": good[0]})).unwrap();
    writeln!(f, "{{\"id\": \"broken\", \"text\": ").unwrap();
    f.write_all(b"{\"id\": \"badutf\", \"text\": \"caf\xe9\"}\n")
        .unwrap();
    writeln!(f, "{}", serde_json::json!({"id": "empty", "text": ""})).unwrap();
    writeln!(
        f,
        "{}",
        serde_json::json!({"id": "huge", "text": "word ".repeat(10 << 20)})
    )
    .unwrap(); // 50 MiB
    writeln!(f, "{}", serde_json::json!({"id": "g1", "text": good[1]})).unwrap();
    drop(f);

    let gz = dir.path().join("cut.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for i in 0..200 {
        writeln!(e, "{}", serde_json::json!({"id": format!("z{i}"), "text": format!("Short note number {i} about the weather in {}.", &good[2][..20])})).unwrap();
    }
    let bytes = e.finish().unwrap();
    std::fs::write(&gz, &bytes[..bytes.len() * 2 / 3]).unwrap();

    let out = dir.path().join("run");
    let o = backforth(&out, &jl)
        .args([
            "--input",
            gz.to_str().unwrap(),
            "--stages",
            "backtranslate",
            "-s",
            "backtranslate.max_tokens=4",
            "-s",
            "backtranslate.mode=\"finetuned\"",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let sk = &s["input"]["skipped"];
    assert_eq!(sk["invalid_json"], 1, "{s}");
    assert_eq!(sk["invalid_utf8"], 1);
    assert_eq!(sk["empty"], 1);
    assert_eq!(sk["line_too_long"], 1);
    assert_eq!(sk["read_error"], 1);
    let msgs: Vec<String> = s["input"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect();
    let has = |needle: &str| msgs.iter().any(|m| m.contains(needle));
    assert!(has("mixed.jsonl:2: invalid JSON"), "{msgs:?}");
    assert!(has("mixed.jsonl:3: invalid UTF-8"), "{msgs:?}");
    assert!(has("mixed.jsonl:4: empty document"), "{msgs:?}");
    assert!(has("mixed.jsonl:5: line of"), "{msgs:?}");
    assert!(
        has("cut.jsonl.gz:") && has("rest of the file skipped"),
        "{msgs:?}"
    );
    // the same messages reach the user on stderr (the summary is not the only place)
    assert!(stderr.contains("mixed.jsonl:2: invalid JSON"), "{stderr}");
    // the run went on: good docs of both files were processed
    let docs = read_jsonl(&out.join("documents.jsonl"));
    let ids: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert!(ids.starts_with(&["g0", "g1", "z0"]), "{ids:?}");
    let from_gz = ids.iter().filter(|i| i.starts_with('z')).count();
    assert!(from_gz > 10 && from_gz < 200, "{from_gz}");
    assert_eq!(
        s["stages"]["backtranslate"]["done"].as_u64().unwrap() as usize,
        docs.len()
    );
    assert_eq!(
        s["input"]["documents"].as_u64().unwrap() as usize,
        docs.len()
    );
}
