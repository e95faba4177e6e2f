//! The HTTP backend against `backforth serve` running the real SmolLM2 GGUF on
//! loopback: a whole run through HTTP gives the same outputs as in-process
//! (same seeds, batch size 1); a run killed with SIGKILL and restarted sends
//! no completed request twice; a fresh run folder sharing the response cache
//! sends none at all.

mod common;
use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve() -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(["serve", "--model", test_model().to_str().unwrap(), "--listen", "127.0.0.1:0"])
        .args(["--batch-size", "1", "--threads", "2", "--context", "2048", "--served-name", "smol"])
        .env("BACKFORTH_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let url = loop {
        let l = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = l.strip_prefix("serving smol on ") {
            break rest.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    Server { child, url }
}

fn requests_served(url: &str) -> u64 {
    // a tiny GET without an HTTP client crate in the tests
    use std::io::{Read, Write};
    let hostport = url.trim_start_matches("http://").trim_end_matches("/v1");
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(s, "GET /v1/backforth/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    let body = r.split("\r\n\r\n").nth(1).unwrap();
    serde_json::from_str::<Value>(body).unwrap()["requests"].as_u64().unwrap()
}

fn http_run(out: &std::path::Path, input: &std::path::Path, url: &str, cache: &std::path::Path) -> Command {
    let mut c = backforth(out, input);
    c.args(["--batch-size", "1", "--stages", "backtranslate,curate,rewrite", "-s", "curate.keep_min_score=1"])
        .args(["--model", "smol", "-s", "backend.kind=http", "-s", &format!("http.urls=[\"{url}\"]")])
        .args(["-s", "http.grammar_field=llama_cpp", "-s", "http.concurrency=2", "-s", "http.timeout_s=120"])
        .args(["-s", &format!("cache.path=\"{}\"", cache.display())]);
    c
}

fn values(out: &std::path::Path, stage: &str, field: &str) -> Vec<(String, Value, Value)> {
    let mut v: Vec<_> = read_jsonl(&out.join(format!("stages/{stage}.jsonl")))
        .into_iter()
        .map(|r| (r["id"].as_str().unwrap().to_string(), r[field]["raw"].clone(), r[field]["completion_tokens"].clone()))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn http_run_matches_in_process_and_survives_kill() {
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 5);
    let reference = dir.path().join("embedded");
    let st = backforth(&reference, &input)
        .args(["--batch-size", "1", "--stages", "backtranslate,curate,rewrite", "-s", "curate.keep_min_score=1"])
        .status()
        .unwrap();
    assert!(st.success());

    let server = serve();
    let cache = dir.path().join("shared-cache.sqlite");
    let out = dir.path().join("http");
    assert!(http_run(&out, &input, &server.url, &cache).status().unwrap().success());
    for (stage, field) in [("backtranslate", "backtranslation"), ("curate", "curation"), ("rewrite", "rewrite")] {
        assert_eq!(values(&reference, stage, field), values(&out, stage, field), "{stage} differs between HTTP and in-process");
    }
    let s: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let generated: u64 = ["backtranslate", "curate", "rewrite"].iter().map(|st| s["invocation"][st]["generated"].as_u64().unwrap()).sum();
    let served = requests_served(&server.url);
    assert_eq!(served, generated, "one request per generation");
    let model = read_jsonl(&out.join("stages/curate.jsonl"))[0]["curation"]["model"].clone();
    assert_eq!(model, "http:smol");

    // kill -9 mid-run (new folder, new cache), restart: nothing completed is sent again
    let cache2 = dir.path().join("cache2.sqlite");
    let out2 = dir.path().join("http-killed");
    let before = requests_served(&server.url);
    let mut child = http_run(&out2, &input, &server.url, &cache2).spawn().unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(out2.join("stages/curate.jsonl")).map(|s| s.lines().count()).unwrap_or(0) < 1 {
        assert!(child.try_wait().unwrap().is_none(), "finished before the kill");
        assert!(t0.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(http_run(&out2, &input, &server.url, &cache2).status().unwrap().success());
    let sent = requests_served(&server.url) - before;
    // at most the requests in flight at the kill (concurrency 2) are sent twice
    assert!(sent >= generated && sent <= generated + 2, "sent {sent}, needed {generated}");
    for (stage, field) in [("backtranslate", "backtranslation"), ("curate", "curation"), ("rewrite", "rewrite")] {
        assert_eq!(values(&out, stage, field), values(&out2, stage, field), "{stage} after kill");
    }

    // a fresh run folder sharing the first cache: everything comes from the cache
    let before = requests_served(&server.url);
    let out3 = dir.path().join("http-cached");
    assert!(http_run(&out3, &input, &server.url, &cache).status().unwrap().success());
    assert_eq!(requests_served(&server.url), before, "cache hits must not reach the server");
    assert_eq!(std::fs::read(out.join("dataset.jsonl")).unwrap(), std::fs::read(out3.join("dataset.jsonl")).unwrap());

    // the cache can be inspected
    let o = Command::new(env!("CARGO_BIN_EXE_backforth")).args(["cache", "stats", cache.to_str().unwrap()]).output().unwrap();
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["entries"].as_u64().unwrap(), generated);
    assert!(st["hits"].as_u64().unwrap() >= generated);
}
