//! Every key `backforth config` prints acts: changing it changes the run's
//! key chain (documents key and stage keys: what is generated), or the
//! exports of a real run folder (the committed SmolLM2 run of
//! `crates/cli/tests/fixtures/run-before-layout`, two bad pairs planted), or
//! it is listed in [`backforth::config::KEYS_OUTSIDE_OUTPUTS`] with what it
//! does instead — and a listed key must indeed leave both unchanged — or in
//! [`backforth::config::KEYS_ACTING_WITH_A_CHECK_MODEL`] (thresholds of
//! checks that need a model).

use backforth::config::{Config, KEYS_ACTING_WITH_A_CHECK_MODEL, KEYS_OUTSIDE_OUTPUTS};
use backforth::pipeline::{documents_key, load_template, stage_keys};
use backforth::stage::def::StagePlan;
use backforth::store::RunDir;
use backforth_inference::{Backend, BackendProvider};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Model ids are the model strings (no model is loaded: only keys are computed).
struct Names;
impl BackendProvider for Names {
    fn model_id(&mut self, model: &str) -> anyhow::Result<String> {
        Ok(model.to_string())
    }
    fn backend(&mut self, _: &str) -> anyhow::Result<&mut dyn Backend> {
        anyhow::bail!("no backend in this test")
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/fixtures/run-before-layout")
}

/// Every leaf key of a TOML tree, dotted, with its value.
fn leaves(prefix: &str, v: &toml::Value, out: &mut Vec<(String, toml::Value)>) {
    match v {
        toml::Value::Table(t) => {
            for (k, x) in t {
                let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                leaves(&p, x, out);
            }
        }
        _ => out.push((prefix.to_string(), v.clone())),
    }
}

/// Another valid value for a key: a listed one where the type alone does not say.
fn other_value(key: &str, v: &toml::Value, tmp: &Path) -> String {
    let special = match key {
        "model.path" | "backtranslate.model" | "curate.model" | "rewrite.model" | "distill.model"
        | "verify.model" => Some("\"other.gguf\"".to_string()),
        k if k.ends_with(".lora") => Some("[\"adapter.gguf\"]".into()),
        k if k.ends_with(".template") => {
            let stage = k.split('.').next().unwrap();
            let name = if stage == "backtranslate" { "backtranslate_fewshot" } else { stage };
            let src = backforth::prompt::BUILTIN.iter().find(|(n, _)| *n == name).unwrap().1;
            let p = tmp.join(format!("{stage}.j2"));
            std::fs::write(&p, format!("{src}\n")).unwrap();
            Some(format!("{:?}", p.display().to_string()))
        }
        "backtranslate.mode" => Some("\"finetuned\"".into()),
        "backtranslate.seed_selection" => Some("\"nearest\"".into()),
        "input.format" => Some("\"jsonl\"".into()),
        "segment.mode" => Some("\"headings\"".into()),
        "backend.kind" => Some("\"http\"".into()),
        "http.api" => Some("\"completions\"".into()),
        "http.grammar_field" => Some("\"llama_cpp\"".into()),
        "run.stages" => Some("[\"backtranslate\"]".into()),
        "export.formats" => Some("[\"jsonl\"]".into()),
        "filter.languages" => Some("[\"eng\", \"deu\"]".into()),
        "seeds.path" => {
            let p = tmp.join("seeds2.jsonl");
            std::fs::write(&p, "{\"instruction\": \"What is a test?\", \"response\": \"A check.\"}\n").unwrap();
            Some(format!("{:?}", p.display().to_string()))
        }
        "decontam.paths" => Some("[\"eval.jsonl\"]".into()),
        // thresholds pushed to where every pair of the fixture passes or fails
        "curate.keep_min_score" => Some("5".into()),
        "checks.min_relevance" | "checks.min_support" | "checks.min_similarity" => Some("0.0".into()),
        "checks.min_topic_words" => Some("100".into()),
        "checks.max_unsupported_numbers" | "checks.max_unsupported_names" | "checks.max_unsupported_claims" => {
            Some("1000".into())
        }
        "checks.min_sentence_support" | "checks.min_instruction_relevance" => Some("0.99".into()),
        "export.system_tag" => Some("\"\"".into()),
        _ => None,
    };
    if let Some(s) = special {
        return s;
    }
    match v {
        toml::Value::Boolean(b) => (!b).to_string(),
        toml::Value::Integer(i) => (i + 1).to_string(),
        toml::Value::Float(f) => format!("{}", if *f > 0.0 { f * 0.5 } else { 0.5 }),
        toml::Value::String(s) => format!("{:?}", format!("{s}x")),
        toml::Value::Array(a) if a.is_empty() => "[\"x\"]".into(),
        toml::Value::Array(a) => {
            let t: Vec<String> = a[1..].iter().map(|x| x.to_string()).collect();
            format!("[{}]", t.join(","))
        }
        other => panic!("{key}: no other value for {other}"),
    }
}

/// The documents key and every stage key.
fn key_chain(cfg: &Config) -> BTreeMap<String, String> {
    let plan = StagePlan::new(cfg).unwrap();
    let mut templates = HashMap::new();
    for d in &plan.defs {
        templates.insert(d.name.clone(), load_template(cfg, d).unwrap());
    }
    let (seeds, _) = backforth::pipeline::load_seeds(cfg).unwrap();
    let docs = documents_key(cfg).unwrap();
    let mut k = stage_keys(cfg, &plan, &docs, &seeds, &templates, &mut Names).unwrap();
    k.insert("documents".into(), docs);
    k
}

/// The exports of the fixture run under `cfg` (its stage files, its keys), as bytes per file.
/// An error (a model file the key names is missing) counts as a change: the key was read.
fn exports(cfg: &Config, tmp: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let run = tmp.join(format!("export-{}", rand_name()));
    std::fs::create_dir_all(run.join("stages")).unwrap();
    for f in ["documents.jsonl", "stages/backtranslate.jsonl", "stages/curate.jsonl", "stages/rewrite.jsonl", "stages/distill.jsonl"] {
        std::fs::copy(fixture().join("run").join(f), run.join(f)).unwrap();
    }
    plant(&run.join("stages/rewrite.jsonl"));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("run/summary.json")).unwrap()).unwrap();
    let mut keys: BTreeMap<String, String> = serde_json::from_value(summary["keys"].clone()).unwrap();
    keys.insert("verify".into(), "none".into());
    let mut c = cfg.clone();
    c.output.dir = run.display().to_string();
    let plan = StagePlan::new(&c).unwrap();
    let outputs = backforth::export::export(&c, &plan, &RunDir(run.clone()), &keys, None)?;
    backforth::export::write_card(&c, &RunDir(run.clone()), &summary, &outputs)?;
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&run).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() && p.file_name().unwrap() != "documents.jsonl" {
            out.insert(p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap());
        }
    }
    Ok(out)
}

/// Two kinds of bad pair the fixture lacks, so the rules for them show: a
/// request to the reader as instruction, a two-word rewrite.
fn plant(rewrites: &Path) {
    let mut recs: Vec<serde_json::Value> = std::fs::read_to_string(rewrites)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(recs.len() >= 2);
    for (i, r) in recs.iter_mut().take(2).enumerate() {
        r["rewrite"]["parse"] = serde_json::json!({"status": "ok"});
        if i == 0 {
            r["backtranslation"]["value"] = "Could you clarify which fire you mean?".into();
            r["rewrite"]["value"] = r["text"].clone();
        } else {
            r["rewrite"]["value"] = "Yes, indeed.".into();
        }
    }
    let text: String = recs.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(rewrites, text).unwrap();
}

fn rand_name() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

#[test]
fn every_printed_key_acts_or_is_listed() {
    let tmp = tempfile::tempdir().unwrap();
    let fx = fixture();
    // the baseline: the fixture's own settings, with the corpus steps on so
    // that their sections enter the documents key
    let base_overrides: Vec<String> = vec![
        format!("input.paths=[{:?}]", fx.join("docs.jsonl").display().to_string()),
        format!("seeds.path={:?}", fx.join("seeds.jsonl").display().to_string()),
        "run.prepare=true".into(),
        "curate.keep_min_score=1".into(),
        "export.formats=[\"jsonl\",\"sharegpt\"]".into(),
    ];
    let base = Config::load(None, &base_overrides).unwrap();
    let base_keys = key_chain(&base);
    let base_exports = exports(&base, tmp.path()).unwrap();
    assert!(base_exports["curated.jsonl"].len() > 10, "the fixture exports something");

    let mut all = Vec::new();
    leaves("", &toml::Value::try_from(&base).unwrap(), &mut all);
    assert!(all.len() > 120, "{} keys", all.len());
    let mut silent = Vec::new();
    let mut report = Vec::new();
    for (key, v) in &all {
        let val = other_value(key, v, tmp.path());
        let mut o = base_overrides.clone();
        o.push(format!("{key}={val}"));
        let cfg = Config::load(None, &o).unwrap_or_else(|e| panic!("{key}={val}: {e:#}"));
        let keys_changed = key_chain(&cfg) != base_keys;
        let exports_changed = !keys_changed
            && exports(&cfg, tmp.path()).map_or(true, |e| e != base_exports);
        if KEYS_ACTING_WITH_A_CHECK_MODEL.iter().any(|(k, _)| key == k) {
            report.push(format!("{key}: acts with a check model"));
            continue;
        }
        let listed = KEYS_OUTSIDE_OUTPUTS.iter().any(|(k, _)| key == k || key.starts_with(&format!("{k}.")));
        report.push(format!("{key}={val}: keys {keys_changed} exports {exports_changed} listed {listed}"));
        match (keys_changed || exports_changed, listed) {
            (true, true) => panic!("{key} is listed as outside the outputs but changes them ({val})"),
            (false, false) => silent.push(key.clone()),
            _ => {}
        }
    }
    eprintln!("{}", report.join("\n"));
    assert!(silent.is_empty(), "keys that change nothing and are not listed: {silent:?}\n{}", report.join("\n"));
}

#[test]
fn the_previous_release_printed_config_loads_with_warnings() {
    // written by the release before per-stage sections: every stage key in every stage section
    let old = fixture().join("run/config.toml");
    let text = std::fs::read_to_string(&old).unwrap();
    assert!(text.contains("[distill]") && text.matches("keep_min_score").count() >= 4, "not the old layout");
    let c = Config::load(Some(&old), &[]).unwrap();
    assert_eq!(c.curate.keep_min_score, 1);
    assert_eq!(c.backtranslate.k, 2);
}
