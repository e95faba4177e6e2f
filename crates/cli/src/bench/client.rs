//! `backforth bench-client`: HTTP client overhead (requests/s) against a zero-latency local server, and cache lookup cost.

use crate::cli::ClientBenchArgs;
use anyhow::Result;
use backforth_inference::{Backend, ChatMessage, GenRequest, Sampling};

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: ClientBenchArgs) -> Result<()> {
    let server = std::sync::Arc::new(
        tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let url = format!("http://{}/v1", server.server_addr());
    let body = serde_json::json!({"choices": [{"message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 10, "completion_tokens": 1}})
    .to_string();
    for _ in 0..a.server_threads {
        let s = server.clone();
        let body = body.clone();
        std::thread::spawn(move || {
            while let Ok(mut r) = s.recv() {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(r.as_reader(), &mut sink);
                let h = tiny_http::Header::from_bytes("Content-Type", "application/json")
                    .expect("header");
                let _ = r.respond(tiny_http::Response::from_string(body.clone()).with_header(h));
            }
        });
    }
    println!("| concurrency | requests | seconds | requests/s |");
    println!("|---:|---:|---:|---:|");
    for &c in &a.concurrency {
        let cfg = backforth_inference::config::HttpConfig {
            urls: vec![url.clone()],
            concurrency: c,
            api_key_env: String::new(),
            ..Default::default()
        };
        let mut b = backforth_http::HttpBackend::new(cfg, "bench")?;
        let mk = |i: u64| GenRequest {
            tag: i,
            messages: vec![ChatMessage {
                role: "user".into(),
                content: format!("request {i}"),
            }],
            sampling: Sampling {
                temperature: 1.0,
                top_p: 0.9,
                max_tokens: 16,
                seed: i,
                stop: vec![],
            },
            grammar: None,
            raw_prompt: false,
            top_logprobs: 0,
        };
        // warm-up (connections)
        b.generate(&mut (0..c as u64).map(mk), &mut |_, r| {
            r.map(|_| ()).map_err(anyhow::Error::msg)
        })?;
        let t0 = std::time::Instant::now();
        let mut n = 0u64;
        b.generate(&mut (0..a.requests).map(mk), &mut |_, r| {
            r.map_err(anyhow::Error::msg)?;
            n += 1;
            Ok(())
        })?;
        let dt = t0.elapsed().as_secs_f64();
        anyhow::ensure!(n == a.requests, "{n} of {} requests answered", a.requests);
        println!("| {c} | {n} | {dt:.2} | {:.0} |", n as f64 / dt);
    }
    // response-cache lookups
    let dir = std::env::temp_dir().join(format!("backforth-cache-bench-{}", std::process::id()));
    let cache = backforth_inference::cache::ResponseCache::open(&dir.join("c.sqlite"))?;
    let out = backforth_inference::GenOutput {
        text: "x".repeat(800),
        prompt_tokens: 500,
        completion_tokens: 200,
        finish: backforth_inference::FinishReason::Stop,
        cached_prompt_tokens: 0,
        logprobs: vec![],
    };
    let n = 20000u64;
    let keys: Vec<String> = (0..n).map(|i| format!("{:032x}", i * 2654435761)).collect();
    let t0 = std::time::Instant::now();
    for k in &keys {
        cache.put(k, "bench", &out)?;
    }
    let put = t0.elapsed().as_secs_f64() / n as f64;
    let t0 = std::time::Instant::now();
    for k in &keys {
        anyhow::ensure!(cache.get(k)?.is_some());
    }
    let hit = t0.elapsed().as_secs_f64() / n as f64;
    let t0 = std::time::Instant::now();
    for i in 0..n {
        anyhow::ensure!(cache.get(&format!("miss{i}"))?.is_none());
    }
    let miss = t0.elapsed().as_secs_f64() / n as f64;
    let req = mk_req();
    let t0 = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(backforth_inference::cache::request_key("bench", &req));
    }
    let keyt = t0.elapsed().as_secs_f64() / n as f64;
    drop(cache);
    let _ = std::fs::remove_dir_all(&dir);
    println!("\ncache ({n} entries, 800-char completions): put {:.1} µs, hit {:.1} µs, miss {:.1} µs, key hash {:.1} µs per request", put * 1e6, hit * 1e6, miss * 1e6, keyt * 1e6);
    Ok(())
}

fn mk_req() -> GenRequest {
    GenRequest {
        tag: 0,
        messages: vec![ChatMessage {
            role: "user".into(),
            content: "word ".repeat(600),
        }],
        sampling: Sampling {
            temperature: 1.0,
            top_p: 0.9,
            max_tokens: 16,
            seed: 1,
            stop: vec![],
        },
        grammar: None,
        raw_prompt: false,
        top_logprobs: 0,
    }
}
