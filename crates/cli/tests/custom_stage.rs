//! A stage defined only in TOML (a title per backtranslated document: a
//! template, a GBNF grammar, the text parser) runs inside `run` beside the
//! built-in stages, on the real test model and real documents:
//! - killed with SIGKILL while it writes, rerun: nothing it had written is
//!   generated again and its export equals an uninterrupted run's;
//! - run as 2 shards plus `shard merge`: its export equals one process's;
//! - it appears in `summary.json`, the dataset card and the report.

mod common;
use common::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TEMPLATE: &str = "@@ system\nYou name texts.\n@@ user\nWrite a title of a few words for this news story.\n\n{{ text }}\n";
const GRAMMAR: &str = "root ::= [A-Z] [a-zA-Z ,'-]{3,40}\n";

/// The config file: the stage section, `run.stages` with it last.
fn config(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("title.j2"), TEMPLATE).unwrap();
    std::fs::write(dir.join("title.gbnf"), GRAMMAR).unwrap();
    let c = format!(
        "[run]\nstages = [\"backtranslate\", \"title\"]\n\n[stage.title]\ninput = \"backtranslate\"\nwhen = \"parsed\"\ntemplate = {:?}\ngrammar = {:?}\nparser = {{ kind = \"text\" }}\nmax_tokens = 24\n",
        dir.join("title.j2").display().to_string(),
        dir.join("title.gbnf").display().to_string()
    );
    let p = dir.join("title.toml");
    std::fs::write(&p, c).unwrap();
    p
}

fn cmd(sub: &[&str], out: &Path, input: &Path, cfg: &Path) -> Command {
    let mut c = backforth_cmd(sub, out, input);
    c.args(["-c", cfg.to_str().unwrap(), "--batch-size", "1"])
        .args(["-s", "model.prefix_reuse=false"]);
    c
}

fn lines(p: &Path) -> usize {
    std::fs::read_to_string(p).map(|s| s.lines().count()).unwrap_or(0)
}

fn summary(out: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap()
}

#[test]
fn a_stage_defined_in_toml_resumes_shards_and_reports() {
    let _g = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 6);
    let cfg = config(dir.path());

    // one uninterrupted process
    let reference = dir.path().join("reference");
    let o = cmd(&["run"], &reference, &input, &cfg).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let s = summary(&reference);
    let t = &s["stages"]["title"];
    assert_eq!(t["done"], s["stages"]["backtranslate"]["parsed_ok"], "{s}");
    assert!(t["parsed_ok"].as_u64().unwrap() >= 3, "{s}");
    assert_eq!(s["outputs"]["title"]["examples"], t["parsed_ok"]);
    let titles = read_jsonl(&reference.join("title.jsonl"));
    for r in &titles {
        let o = r["output"].as_str().unwrap();
        assert!(o.len() >= 4 && o.len() <= 41 && o.starts_with(|c: char| c.is_ascii_uppercase()), "{o}");
        assert!(r["instruction"].is_string(), "{r}");
    }
    let rec = &read_jsonl(&reference.join("stages/title.jsonl"))[0];
    assert_eq!(rec["outputs"]["title"]["template"], dir.path().join("title.j2").display().to_string());
    assert!(rec["backtranslation"]["value"].is_string());
    // the built-in stage files keep their layout
    assert!(read_jsonl(&reference.join("stages/backtranslate.jsonl"))
        .iter()
        .all(|r| r.get("outputs").is_none()));
    let card = std::fs::read_to_string(reference.join("README.md")).unwrap();
    assert!(card.contains("`title.jsonl`") && card.contains("- title: model"), "{card}");

    // killed while the defined stage writes, then the same command again
    let killed = dir.path().join("killed");
    let mut child = cmd(&["run"], &killed, &input, &cfg).spawn().unwrap();
    let t0 = Instant::now();
    let file = killed.join("stages/title.jsonl");
    loop {
        if lines(&file) >= 2 {
            child.kill().unwrap();
            child.wait().unwrap();
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "finished before it could be killed");
        assert!(t0.elapsed() < Duration::from_secs(600));
        std::thread::sleep(Duration::from_millis(20));
    }
    let before = lines(&file);
    assert!(cmd(&["run"], &killed, &input, &cfg).status().unwrap().success());
    let inv = &summary(&killed)["invocation"]["title"];
    assert_eq!(inv["resumed"].as_u64().unwrap() as usize, before, "{inv}");
    assert_eq!(
        inv["generated"].as_u64().unwrap() + before as u64,
        t["done"].as_u64().unwrap(),
        "{inv}"
    );
    assert_eq!(
        std::fs::read(killed.join("title.jsonl")).unwrap(),
        std::fs::read(reference.join("title.jsonl")).unwrap()
    );
    let ids: Vec<String> = read_jsonl(&file).iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len(), "duplicate ids {ids:?}");

    // two shards and a merge
    let sharded = dir.path().join("sharded");
    for i in ["0", "1"] {
        let o = cmd(&["run"], &sharded, &input, &cfg)
            .args(["--num-shards", "2", "--shard", i])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let o = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(["shard", "merge", "--out", sharded.to_str().unwrap(), "--with-stages"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(sharded.join("title.jsonl")).unwrap(),
        std::fs::read(reference.join("title.jsonl")).unwrap()
    );
    assert_eq!(summary(&sharded)["stages"]["title"]["done"], t["done"]);

    // the report shows the stage's outputs beside each example
    let html = dir.path().join("report.html");
    let o = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(["report", "--run", reference.to_str().unwrap(), "--out", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    let first = titles[0]["output"].as_str().unwrap();
    assert!(page.contains("<b>title:</b>"), "no stage output in the report");
    assert!(page.contains(&first.replace('\'', "&#x27;")), "{first} not in the report");
}

#[test]
fn bad_stage_sections_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 1);
    let out = dir.path().join("run");
    let run = |extra: &[&str]| {
        let o = backforth_cmd(&["run"], &out, &input).args(extra).output().unwrap();
        assert!(!o.status.success());
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    assert!(run(&["--stages", "nope"]).contains("unknown stage `nope`"));
    let e = run(&["-s", "stage.t.template=\"x.j2\"", "-s", "stage.t.input=\"later\"", "--stages", "t"]);
    assert!(e.contains("stage.t.input") && e.contains("later"), "{e}");
    let e = run(&["-s", "stage.curated.template=\"x.j2\"", "--stages", "curated"]);
    assert!(e.contains("choose another name"), "{e}");
    let e = run(&["-s", "stage.t.template=\"x.j2\"", "-s", "stage.t.k=3", "--stages", "t"]);
    assert!(e.contains("`k`"), "{e}");
}
