//! The HTTP backend against `backforth serve` running the real SmolLM2 GGUF on
//! loopback: a whole run through HTTP gives the same outputs as in-process
//! (same seeds, batch size 1); a run killed with SIGKILL and restarted sends
//! no completed request twice; a fresh run folder sharing the response cache
//! sends none at all; a run whose only server is killed and restarted
//! mid-run loses no request and spends none of its retries on the outage.

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
    serve_at("127.0.0.1:0")
}

fn serve_at(listen: &str) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args([
            "serve",
            "--model",
            test_model().to_str().unwrap(),
            "--listen",
            listen,
        ])
        .args([
            "--batch-size",
            "1",
            "--threads",
            "2",
            "--context",
            "2048",
            "--served-name",
            "smol",
        ])
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

/// A minimal HTTP/1.1 exchange on loopback (no client crate needed in tests).
fn http(url: &str, method: &str, path: &str, body: &str) -> Value {
    use std::io::{Read, Write};
    let hostport = url.trim_start_matches("http://").trim_end_matches("/v1");
    let mut s = std::net::TcpStream::connect(hostport).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).unwrap();
    let mut r = String::new();
    s.read_to_string(&mut r).unwrap();
    serde_json::from_str::<Value>(r.split("\r\n\r\n").nth(1).unwrap()).unwrap()
}

fn requests_served(url: &str) -> u64 {
    http(url, "GET", "/v1/backforth/stats", "")["requests"]
        .as_u64()
        .unwrap()
}

/// Answer exported batch lines through the server, as `vllm run-batch` would.
fn answer_batch(url: &str, lines: &[Value]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| {
            let body = http(url, "POST", "/v1/chat/completions", &l["body"].to_string());
            serde_json::json!({"id": "r", "custom_id": l["custom_id"], "response": {"status_code": 200, "body": body}, "error": null})
        })
        .collect()
}

fn write_jsonl(p: &std::path::Path, v: &[Value]) {
    std::fs::write(
        p,
        v.iter().map(|x| x.to_string() + "\n").collect::<String>(),
    )
    .unwrap();
}

#[test]
fn batch_export_import_round_trip() {
    let _serial = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 4);
    let server = serve();
    // online reference: backtranslate + curate through HTTP
    let online = dir.path().join("online");
    let st = http_run(&online, &input, &server.url, &dir.path().join("c1.sqlite"))
        .args(["--stages", "backtranslate,curate"])
        .status()
        .unwrap();
    assert!(st.success());

    // offline: backtranslate online, then curate by batch file
    let out = dir.path().join("offline");
    let cache = dir.path().join("c2.sqlite");
    assert!(http_run(&out, &input, &server.url, &cache)
        .args(["--stages", "backtranslate"])
        .status()
        .unwrap()
        .success());
    let reqs = dir.path().join("requests.jsonl");
    let export = |f: &std::path::Path| {
        let st = http_cmd(&["batch", "export"], &out, &input, &server.url, &cache)
            .args(["--stage", "curate", "--file", f.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        read_jsonl(f)
    };
    let lines = export(&reqs);
    let n_bt_ok = read_jsonl(&out.join("stages/backtranslate.jsonl"))
        .iter()
        .filter(|r| r["backtranslation"]["parse"]["status"] == "ok")
        .count();
    assert_eq!(lines.len(), n_bt_ok);
    assert!(
        lines.len() >= 2,
        "need at least two curate requests, got {}",
        lines.len()
    );
    for l in &lines {
        assert_eq!(l["method"], "POST");
        assert_eq!(l["url"], "/v1/chat/completions");
        assert_eq!(l["body"]["model"], "smol");
        assert!(l["body"]["grammar"].as_str().unwrap().contains("Score: "));
    }
    // results: one line missing, one failed, one garbage line
    let mut results = answer_batch(&server.url, &lines[2..]);
    results.push(serde_json::json!({"custom_id": lines[1]["custom_id"], "response": null, "error": {"code": "server_error", "message": "x"}}));
    let res_path = dir.path().join("results.jsonl");
    write_jsonl(&res_path, &results);
    std::fs::write(
        &res_path,
        std::fs::read_to_string(&res_path).unwrap() + "not json\n",
    )
    .unwrap();
    let o = http_cmd(&["batch", "import"], &out, &input, &server.url, &cache)
        .args(["--stage", "curate", "--file", res_path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{} records imported, 2 left pending",
            lines.len() - 2
        )),
        "{err}"
    );
    assert!(
        err.contains("results.jsonl:") && err.contains("left pending") && err.contains("not JSON"),
        "{err}"
    );
    assert_eq!(
        read_jsonl(&out.join("stages/curate.jsonl")).len(),
        lines.len() - 2
    );

    // export again: only the two pending requests; answer them; import completes the stage
    let again = export(&dir.path().join("requests2.jsonl"));
    assert_eq!(again.len(), 2);
    let res2 = dir.path().join("results2.jsonl");
    write_jsonl(&res2, &answer_batch(&server.url, &again));
    assert!(
        http_cmd(&["batch", "import"], &out, &input, &server.url, &cache)
            .args(["--stage", "curate", "--file", res2.to_str().unwrap()])
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        values(&online, "curate", "curation"),
        values(&out, "curate", "curation"),
        "batch round trip differs from the online run"
    );
}

fn http_run(
    out: &std::path::Path,
    input: &std::path::Path,
    url: &str,
    cache: &std::path::Path,
) -> Command {
    http_cmd(&["run"], out, input, url, cache)
}

fn http_cmd(
    sub: &[&str],
    out: &std::path::Path,
    input: &std::path::Path,
    url: &str,
    cache: &std::path::Path,
) -> Command {
    let mut c = backforth_cmd(sub, out, input);
    c.args([
        "--batch-size",
        "1",
        "-s",
        "run.stages=[\"backtranslate\",\"curate\",\"rewrite\"]",
        "-s",
        "curate.keep_min_score=1",
    ])
    .args([
        "--model",
        "smol",
        "-s",
        "backend.kind=http",
        "-s",
        &format!("http.urls=[\"{url}\"]"),
    ])
    .args([
        "-s",
        "http.grammar_field=llama_cpp",
        "-s",
        "http.concurrency=2",
        "-s",
        "http.timeout_s=600",
    ])
    .args(["-s", &format!("cache.path=\"{}\"", cache.display())]);
    c
}

fn values(out: &std::path::Path, stage: &str, field: &str) -> Vec<(String, Value, Value)> {
    let mut v: Vec<_> = read_jsonl(&out.join(format!("stages/{stage}.jsonl")))
        .into_iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_string(),
                r[field]["raw"].clone(),
                r[field]["completion_tokens"].clone(),
            )
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// The three generating stages hold the same values in both run folders.
fn assert_same_stages(a: &std::path::Path, b: &std::path::Path, what: &str) {
    for (stage, field) in [
        ("backtranslate", "backtranslation"),
        ("curate", "curation"),
        ("rewrite", "rewrite"),
    ] {
        assert_eq!(
            values(a, stage, field),
            values(b, stage, field),
            "{stage} {what}"
        );
    }
}

#[test]
fn http_run_matches_in_process_and_survives_kill() {
    let _serial = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 5);
    let reference = dir.path().join("embedded");
    let st = backforth(&reference, &input)
        .args([
            "--batch-size",
            "1",
            "--stages",
            "backtranslate,curate,rewrite",
            "-s",
            "curate.keep_min_score=1",
        ])
        .status()
        .unwrap();
    assert!(st.success());

    let server = serve();
    let cache = dir.path().join("shared-cache.sqlite");
    let out = dir.path().join("http");
    assert!(http_run(&out, &input, &server.url, &cache)
        .status()
        .unwrap()
        .success());
    assert_same_stages(&reference, &out, "differs between HTTP and in-process");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let generated: u64 = ["backtranslate", "curate", "rewrite"]
        .iter()
        .map(|st| s["invocation"][st]["generated"].as_u64().unwrap())
        .sum();
    let served = requests_served(&server.url);
    assert_eq!(served, generated, "one request per generation");
    let model = read_jsonl(&out.join("stages/curate.jsonl"))[0]["curation"]["model"].clone();
    assert_eq!(model, "http:smol");

    // kill -9 mid-run (new folder, new cache), restart: nothing completed is sent again
    let cache2 = dir.path().join("cache2.sqlite");
    let out2 = dir.path().join("http-killed");
    let before = requests_served(&server.url);
    let mut child = http_run(&out2, &input, &server.url, &cache2)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(out2.join("stages/curate.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 1
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        assert!(t0.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(http_run(&out2, &input, &server.url, &cache2)
        .status()
        .unwrap()
        .success());
    let sent = requests_served(&server.url) - before;
    // at most the requests in flight at the kill (concurrency 2) are sent twice
    assert!(
        sent >= generated && sent <= generated + 2,
        "sent {sent}, needed {generated}"
    );
    assert_same_stages(&out, &out2, "after kill");

    // a fresh run folder sharing the first cache: everything comes from the cache
    let before = requests_served(&server.url);
    let out3 = dir.path().join("http-cached");
    assert!(http_run(&out3, &input, &server.url, &cache)
        .status()
        .unwrap()
        .success());
    assert_eq!(
        requests_served(&server.url),
        before,
        "cache hits must not reach the server"
    );
    assert_eq!(
        std::fs::read(out.join("dataset.jsonl")).unwrap(),
        std::fs::read(out3.join("dataset.jsonl")).unwrap()
    );

    // the cache can be inspected
    let o = Command::new(env!("CARGO_BIN_EXE_backforth"))
        .args(["cache", "stats", cache.to_str().unwrap()])
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["entries"].as_u64().unwrap(), generated);
    assert!(st["hits"].as_u64().unwrap() >= generated);
}

#[test]
fn the_only_server_is_killed_and_restarted_mid_run() {
    let _serial = model_lock();
    let dir = tempfile::tempdir().unwrap();
    let input = dolma_sample(dir.path(), 3);
    let server = serve();
    let listen = server
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .to_string();
    let out = dir.path().join("out");
    let mut run = http_run(&out, &input, &server.url, &dir.path().join("c.sqlite"));
    // no retries at all: only the outage handling can carry the run through
    run.args([
        "-s",
        "http.max_retries=0",
        "-s",
        "http.cooldown_s=0.2",
        "-s",
        "http.cooldown_max_s=1",
        "-s",
        "http.max_outage_s=120",
    ]);
    let mut child = run.stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    while std::fs::read_to_string(out.join("stages/backtranslate.jsonl"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
        < 1
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the kill"
        );
        assert!(t0.elapsed() < Duration::from_secs(300));
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(server); // SIGKILL: requests in flight are cut
    std::thread::sleep(Duration::from_secs(2));
    let server = serve_at(&listen);
    let o = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{log}");
    assert_eq!(
        log.matches("unreachable (").count(),
        1,
        "one outage reported once: {log}"
    );
    assert!(log.contains("reachable again after"), "{log}");
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    for st in ["backtranslate", "curate", "rewrite"] {
        assert_eq!(
            s["invocation"][st]["backend_errors"], 0,
            "{st}: {}",
            s["invocation"][st]
        );
    }
    let n = read_jsonl(&out.join("stages/backtranslate.jsonl")).len();
    assert!(n >= 3, "{n} backtranslations");
    assert!(requests_served(&server.url) >= 1);
}

#[test]
fn completions_api_with_raw_prompts() {
    let _serial = model_lock();
    use backforth_inference::{Backend, ChatMessage, GenRequest};
    let server = serve();
    let req = |tag: u64| GenRequest {
        tag,
        messages: vec![ChatMessage {
            role: "user".into(),
            content: format!(
                "The capital of France is Paris. The capital of Italy is{}",
                " ".repeat(tag as usize % 2)
            ),
        }],
        sampling: backforth_inference::Sampling {
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 6,
            seed: tag,
            stop: vec![],
        },
        grammar: None,
        raw_prompt: true,
        // the second request also asks for log-probabilities
        top_logprobs: 3 * tag as u8,
    };
    // in-process, raw prompt (no chat template)
    let mut engine = backforth_llama::LlamaEngine::load(
        &test_model(),
        backforth_llama::LlamaOptions {
            threads: 2,
            batch_size: 1,
            context: 2048,
            n_batch: 512,
            ..Default::default()
        },
    )
    .unwrap();
    let mut local = std::collections::HashMap::new();
    engine
        .generate(&mut (0..2).map(req), &mut |t, r| {
            local.insert(t, r.unwrap());
            Ok(())
        })
        .unwrap();
    // the same through /v1/completions
    let cfg = backforth_inference::config::HttpConfig {
        urls: vec![server.url.clone()],
        api: backforth_inference::config::HttpApi::Completions,
        ..Default::default()
    };
    let mut http = backforth_http::HttpBackend::new(cfg, "smol").unwrap();
    let mut remote = std::collections::HashMap::new();
    http.generate(&mut (0..2).map(req), &mut |t, r| {
        remote.insert(t, r.unwrap());
        Ok(())
    })
    .unwrap();
    for t in 0..2 {
        assert_eq!(local[&t].text, remote[&t].text);
        assert_eq!(local[&t].prompt_tokens, remote[&t].prompt_tokens);
        // no chat template: the prompt is just the text's tokens
        assert!(local[&t].prompt_tokens < 25, "{}", local[&t].prompt_tokens);
    }
    // log-probabilities come back through the legacy completions form unchanged
    assert!(local[&0].logprobs.is_empty() && remote[&0].logprobs.is_empty());
    let sorted = |o: &backforth_inference::GenOutput| -> Vec<(String, f32, Vec<(String, f32)>)> {
        o.logprobs
            .iter()
            .map(|t| {
                let mut top = t.top.clone();
                top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                (t.token.clone(), t.logprob, top)
            })
            .collect()
    };
    assert_eq!(
        local[&1].logprobs.len(),
        local[&1].completion_tokens as usize
    );
    assert_eq!(sorted(&local[&1]), sorted(&remote[&1]));
    // and in the chat form
    let v = http_raw(
        &server.url,
        "/v1/chat/completions",
        r#"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0, "logprobs": true, "top_logprobs": 2}"#,
    );
    let c = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"));
    assert!(
        !c.is_empty() && c[0]["top_logprobs"].as_array().unwrap().len() == 2,
        "{v}"
    );
    let v = http_raw(
        &server.url,
        "/v1/completions",
        r#"{"prompt": "Hello", "max_tokens": 3, "temperature": 0}"#,
    );
    assert_eq!(v["object"], "text_completion");
    assert!(v["choices"][0]["text"].is_string());
    let e = http_raw(&server.url, "/v1/completions", r#"{"max_tokens": 3}"#);
    assert!(e["error"]["message"].as_str().unwrap().contains("prompt"));
}

fn http_raw(url: &str, path: &str, body: &str) -> Value {
    http(url, "POST", path, body)
}
