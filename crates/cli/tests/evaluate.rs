//! Measuring a generated set end to end with real parts: a run on real news
//! stories with the SmolLM2-135M test model, `generate` on real MT-bench first
//! turns, `eval` judged by the same real model (both orders, resumable),
//! `analyze` with the real all-MiniLM-L6-v2, and `report` opened in headless
//! Chromium (console errors, table filter, screenshot).
mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backforth"));
    c.env("BACKFORTH_LOG", "warn");
    c
}

fn ok(mut c: Command) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{c:?} failed:\n{err}");
    err
}

fn mt_bench() -> PathBuf {
    let p = cache().join("corpus/mt-bench/question.jsonl");
    assert!(
        p.exists(),
        "{} missing: run scripts/fetch-assets.sh mtbench",
        p.display()
    );
    p
}

fn chromium() -> PathBuf {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(o) = Command::new("which").arg(c).output() {
            if o.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            }
        }
    }
    panic!("headless Chromium not found: scripts/setup.sh --test installs Debian `chromium`");
}

fn generate(dir: &Path, questions: &Path, name: &str, max_tokens: &str) -> PathBuf {
    let out = dir.join(format!("{name}.json"));
    let mut c = bin();
    c.args([
        "generate",
        "--quiet",
        "--model",
        test_model().to_str().unwrap(),
        "--threads",
        "2",
        "-s",
        "model.context=2048",
    ])
    .args([
        "--instructions",
        questions.to_str().unwrap(),
        "--outputs",
        out.to_str().unwrap(),
    ])
    .args(["--generator", name, "--max-tokens", max_tokens]);
    ok(c);
    out
}

fn eval(dir: &Path, model: &Path, baseline: &Path, extra: &[&str]) -> String {
    let mut c = bin();
    c.args([
        "eval",
        "--quiet",
        "--model",
        test_model().to_str().unwrap(),
        "--threads",
        "2",
        "-s",
        "model.context=2048",
    ])
    .args([
        "--model-outputs",
        model.to_str().unwrap(),
        "--baseline-outputs",
        baseline.to_str().unwrap(),
    ])
    .args(["--out", dir.to_str().unwrap()])
    .args(extra);
    ok(c)
}

#[test]
fn generate_eval_analyze_report() {
    let _g = model_lock();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();

    // 1. generate: two output sets for the first 4 MT-bench first turns.
    let q = t.join("questions.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(mt_bench())
        .unwrap()
        .lines()
        .take(4)
        .map(String::from)
        .collect();
    std::fs::write(&q, lines.join("\n") + "\n").unwrap();
    let long = generate(t, &q, "long", "96");
    let short = generate(t, &q, "short", "24");
    let outs: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&long).unwrap()).unwrap();
    assert_eq!(outs.len(), 4);
    for o in &outs {
        assert_eq!(o["generator"], "long");
        assert_eq!(o["dataset"], "mt_bench");
        assert!(!o["output"].as_str().unwrap().trim().is_empty(), "{o}");
    }
    let first_turn: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(outs[0]["instruction"], first_turn["turns"][0]);
    // Resume: a second generate does no new work and writes the same file.
    let before = std::fs::read_to_string(&long).unwrap();
    let work = t.join("long.json.work.jsonl");
    let work_lines = std::fs::read_to_string(&work).unwrap().lines().count();
    generate(t, &q, "long", "96");
    assert_eq!(std::fs::read_to_string(&long).unwrap(), before);
    assert_eq!(
        std::fs::read_to_string(&work).unwrap().lines().count(),
        work_lines
    );

    // 2. eval: long vs short judged by the real model, both orders.
    let ev = t.join("eval-mt");
    let msg = eval(
        &ev,
        &long,
        &short,
        &["--instructions", mt_bench().to_str().unwrap()],
    );
    assert!(msg.contains("win rate"), "{msg}");
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev.join("eval_summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["pairs"], 4);
    assert_eq!(s["judgements"], 8, "{s}");
    let wr = s["win_rate"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&wr));
    assert!(s["standard_error"].as_f64().unwrap() >= 0.0);
    assert!(s["lc_win_rate"].is_number(), "{s}");
    // the judge's reliability is measured and a small sample is said aloud
    let rel = &s["reliability"];
    let c = rel["position_consistency"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&c), "{s}");
    // the embedded judge returns verdict probabilities: the weighted basis decides
    assert_eq!(rel["basis"], "weighted", "{s}");
    assert_eq!(rel["weighted_pairs"], 4, "{s}");
    let wc = rel["weighted_consistency"].as_f64().unwrap();
    assert_eq!(rel["informative"].as_bool().unwrap(), wc >= 0.5, "{s}");
    assert!(
        rel["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("only 4 pairs")),
        "{s}"
    );
    assert!(msg.contains("warning: only 4 pairs"), "{msg}");
    if rel["informative"] == false {
        assert!(msg.contains("judge uninformative"), "{msg}");
    }
    let ci = s["win_rate_ci95"].as_array().unwrap();
    assert!(
        ci[0].as_f64().unwrap() <= wr && wr <= ci[1].as_f64().unwrap(),
        "{s}"
    );
    let judged = read_jsonl(&ev.join("judgements.jsonl"));
    assert_eq!(judged.len(), 8);
    assert_eq!(
        judged.iter().filter(|j| j["model_first"] == true).count(),
        4
    );
    // Grammar-constrained: every verdict parses and the raw text is kept.
    for j in &judged {
        assert_eq!(j["status"], "ok", "{j}");
        assert!(j["raw"].as_str().unwrap().starts_with("Preferred: "), "{j}");
        let p = &j["probs"];
        let sum = p["a"].as_f64().unwrap() + p["b"].as_f64().unwrap() + p["tie"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-9, "{j}");
    }
    let results = read_jsonl(&ev.join("results.jsonl"));
    assert_eq!(results.len(), 4);
    // each pair's preference is the mean of its two weighted orders
    for r in &results {
        let (f, sc) = (
            r["weighted_model_first"].as_f64().unwrap(),
            r["weighted_model_second"].as_f64().unwrap(),
        );
        assert!(
            (r["preference"].as_f64().unwrap() - (f + sc) / 2.0).abs() < 1e-12,
            "{r}"
        );
    }
    // Resume: rerunning judges nothing again.
    eval(&ev, &long, &short, &[]);
    assert_eq!(read_jsonl(&ev.join("judgements.jsonl")).len(), 8);

    // 3. a small run; its kept instructions held aside and answered by
    // `generate` (distillation); the run's original documents (the Humpback
    // response) judged against those answers. The 135M test model parses few
    // backtranslations, so the run is only as large as that needs.
    let run = t.join("run");
    let input = dolma_sample(t, 5);
    let mut c = backforth(&run, &input);
    // checks off: the 135M model's instructions rarely fit their documents,
    // and this part tests judging, not the checks
    c.args([
        "-s",
        "curate.keep_min_score=1",
        "-s",
        "checks.enabled=false",
        "--stages",
        "backtranslate,curate,rewrite,distill",
    ]);
    ok(c);
    let curated = run.join("curated.jsonl");
    assert!(!read_jsonl(&curated).is_empty(), "the run kept no example");
    let distilled = generate(t, &curated, "distilled", "48");
    let ev2 = t.join("eval-run");
    let msg = eval(&ev2, &curated, &distilled, &[]);
    assert!(msg.contains("win rate"), "{msg}");
    let s2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ev2.join("eval_summary.json")).unwrap())
            .unwrap();
    assert!(s2["pairs"].as_u64().unwrap() >= 1, "{s2}");
    assert_eq!(s2["model_generator"], "curated");

    // 4. analyze the run with the real MiniLM: sets, run stats, MAUVE, map.
    let mut c = bin();
    c.args([
        "analyze",
        "--quiet",
        "--run",
        run.to_str().unwrap(),
        "--text-set",
        &format!("mt_long={}", long.display()),
    ])
    // the earlier flag name, kept as a hidden alias
    .args(["--set", &format!("mt_short={}:output", short.display())]);
    ok(c);
    let a: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("analysis.json")).unwrap()).unwrap();
    let names: Vec<&str> = a["sets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for n in ["documents", "instructions", "mt_long"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let hist: u64 = a["run"]["score_histogram"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap())
        .sum();
    assert_eq!(
        hist,
        a["run"]["parse"]["curate"]["total"].as_u64().unwrap(),
        "{}",
        a["run"]
    );
    let bt = &a["run"]["parse"]["backtranslate"];
    assert_eq!(bt["total"], 5, "{}", a["run"]);
    let rate = bt["failed"].as_f64().unwrap()
        / (bt["ok"].as_f64().unwrap() + bt["failed"].as_f64().unwrap());
    assert!((bt["failure_rate"].as_f64().unwrap() - rate).abs() < 1e-12);
    assert!(
        a["mauve"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["p"] == "mt_long" && m["q"] == "mt_short"),
        "{}",
        a["mauve"]
    );
    for m in a["mauve"].as_array().unwrap() {
        let v = m["result"]["mauve"].as_f64().unwrap();
        assert!((0.0..=1.0 + 1e-9).contains(&v), "{m}");
    }
    assert!(!a["map"].as_array().unwrap().is_empty());
    // Embeddings are cached per set: a rerun reuses them.
    let cached = std::fs::read_dir(run.join("embeddings")).unwrap().count();
    assert!(cached >= 4);

    // 5. report, opened in headless Chromium.
    let html = run.join("report.html");
    let mut c = bin();
    c.args([
        "report",
        "--run",
        run.to_str().unwrap(),
        "--eval",
        ev.to_str().unwrap(),
        "--eval",
        ev2.to_str().unwrap(),
    ]);
    ok(c);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg"), "plots are inline SVG");
    assert!(
        !page.contains("<script src") && !page.contains("<link "),
        "self-contained"
    );
    let ids: Vec<String> = read_jsonl(&run.join("documents.jsonl"))
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    let word = &ids[2]; // an example id, present in exactly one row
    let url = format!("file://{}#q={}", html.display(), word);
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            &url,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    let console_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect();
    assert!(
        console_errors.is_empty(),
        "console errors: {console_errors:?}"
    );
    // The filter ran (the script sets data-shown) and hid every other row.
    assert!(
        dom.contains("data-shown=\"1\""),
        "filter did not run or matched != 1 row"
    );
    let hidden = dom.matches("hidden=\"\"").count();
    assert_eq!(hidden, ids.len() - 1, "rows hidden by the filter");
    // Screenshot for the CI artefacts.
    let art = std::env::var("BACKFORTH_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/artifacts")
        });
    std::fs::create_dir_all(&art).unwrap();
    let shot = art.join("report.png");
    let _ = std::fs::remove_file(&shot);
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1400,2400",
        ])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.len() > 10_000 && png.starts_with(b"\x89PNG"),
        "screenshot {} bytes",
        png.len()
    );
    std::fs::copy(&html, art.join("report.html")).unwrap();
}
