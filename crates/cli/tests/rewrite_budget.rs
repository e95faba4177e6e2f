//! Rewrites cut at their budget, on the real test model and real news:
//! with `rewrite.salvage_cut` a cut rewrite is kept up to its last sentence
//! (marked `salvaged`, counted in `summary.json`) or failed with the reason;
//! with `rewrite.max_tokens_per_document_token` each request's budget is
//! the document's, capped by `rewrite.max_tokens`, and recorded.

mod common;
use common::*;

#[test]
fn cut_rewrites_are_salvaged_and_counted() {
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 6);
    let out = dir.path().join("run");
    let o = reproducible(&mut backforth(&out, &input))
        .args([
            "-s",
            "rewrite.max_tokens=48",
            "-s",
            "rewrite.salvage_cut=true",
        ])
        .args(["-s", "rewrite.max_tokens_per_document_token=0.05"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let recs = read_jsonl(&out.join("stages/rewrite.jsonl"));
    assert!(recs.len() >= 3, "{}", recs.len());
    let (mut salvaged, mut cut) = (0, 0);
    for r in &recs {
        let g = &r["rewrite"];
        // the budget: max(128, 0.05 × chars / 4) = 128, capped at 48
        assert_eq!(g["sampling"]["max_tokens"], 48, "{g}");
        if g["finish_reason"] == "length" {
            cut += 1;
        }
        if g["salvaged"] == true {
            salvaged += 1;
            assert_eq!(g["parse"]["status"], "ok");
            assert_eq!(g["finish_reason"], "length");
            let v = g["value"].as_str().unwrap();
            assert!(g["raw"].as_str().unwrap().contains(v), "{g}");
            assert!(v.ends_with(['.', '!', '?']), "{v}");
        } else if g["finish_reason"] == "length" {
            let reason = g["parse"]["reason"].as_str().unwrap();
            assert!(reason.contains("not salvaged"), "{reason}");
        }
    }
    assert!(
        cut >= 2,
        "48 tokens should cut most rewrites of SmolLM2: {cut} of {}",
        recs.len()
    );
    eprintln!("{cut} of {} cut, {salvaged} salvaged", recs.len());
    assert!(salvaged >= 1, "{cut} cut, none salvaged");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        s["stages"]["rewrite"]["salvaged"].as_u64().unwrap_or(0),
        salvaged as u64,
        "{s}"
    );
    let failed = s["stages"]["rewrite"]["parse_failed"].as_u64().unwrap();
    assert_eq!(
        failed > 0,
        s["stages"]["rewrite"]["failed_completion_tokens"]
            .as_u64()
            .unwrap_or(0)
            > 0
    );
}

/// `curate.skip_failing_instructions`: no curation request for a pair the
/// export's instruction checks drop anyway; the exports are byte-identical
/// to a run that curated everything, and the skipped pairs are counted.
#[test]
fn pairs_the_checks_drop_get_no_curation_request() {
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 8);
    let run = |name: &str, skip: bool| -> std::path::PathBuf {
        let out = dir.path().join(name);
        let o = reproducible(&mut backforth(&out, &input))
            .args(["-s", &format!("curate.skip_failing_instructions={skip}")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let all = run("all", false);
    let skip = run("skip", true);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(skip.join("summary.json")).unwrap()).unwrap();
    let c = &s["stages"]["curate"];
    let skipped = c["skipped_by_checks"].as_u64().unwrap_or(0);
    let curated_all = read_jsonl(&all.join("stages/curate.jsonl")).len() as u64;
    let curated_skip = read_jsonl(&skip.join("stages/curate.jsonl")).len() as u64;
    assert_eq!(curated_skip + skipped, curated_all, "{c}");
    assert!(
        skipped >= 1,
        "the test model writes at least one off-topic or fragment instruction: {c}"
    );
    assert!(
        c["skip_reasons"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| k.starts_with("instruction_")),
        "{c}"
    );
    for f in ["curated.jsonl", "dataset.jsonl"] {
        assert_eq!(
            std::fs::read(all.join(f)).unwrap(),
            std::fs::read(skip.join(f)).unwrap(),
            "{f} differs"
        );
    }
}
