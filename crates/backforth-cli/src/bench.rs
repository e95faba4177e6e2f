//! `backforth bench`: embedded-backend throughput with the workload shape of
//! llama.cpp's `llama-batched-bench` (B sequences, PP prompt tokens each, TG
//! generated tokens each, EOS ignored), through the same [`Backend`] trait the
//! stages use. Reports prompt tok/s, generation tok/s and overall tok/s
//! ((PP+TG)·B / wall), the same three numbers batched-bench prints (S_PP, S_TG, S).

use anyhow::{Context, Result};
use backforth::backend::{Backend, ChatMessage, GenRequest};
use backforth::record::Sampling;
use backforth_llama::{LlamaEngine, LlamaOptions};
use clap::Args;
use serde::Serialize;
use std::path::PathBuf;

#[derive(Args)]
pub struct BenchArgs {
    /// GGUF model file.
    #[arg(long)]
    model: PathBuf,
    /// CPU threads (0 = all).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Batch sizes (parallel sequences) to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,4,8,16")]
    batch_sizes: Vec<usize>,
    /// Prompt tokens per sequence.
    #[arg(long, default_value_t = 128)]
    prompt_tokens: usize,
    /// Generated tokens per sequence.
    #[arg(long, default_value_t = 128)]
    gen_tokens: u32,
    /// Tokens per decode call (llama.cpp -b/-ub).
    #[arg(long, default_value_t = 512)]
    n_batch: u32,
    /// Write results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Serialize)]
struct Row {
    batch: usize,
    prompt_tokens: u64,
    completion_tokens: u64,
    prompt_tok_s: f64,
    gen_tok_s: f64,
    total_tok_s: f64,
    wall_s: f64,
}

/// A user message whose chat-templated prompt is as close as possible to `n` tokens.
fn message_of_len(engine: &LlamaEngine, n: usize) -> Result<(Vec<ChatMessage>, usize)> {
    let words = "the quick brown fox jumps over a lazy dog while seven bakers count loaves of bread";
    let mk = |k: usize| {
        let text: Vec<&str> = words.split(' ').cycle().take(k).collect();
        vec![ChatMessage { role: "user".into(), content: text.join(" ") }]
    };
    let (mut lo, mut hi) = (1usize, n * 2 + 8);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if engine.tokenize_chat(&mk(mid))?.len() < n {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    // the longest message not over n tokens (templates add a fixed overhead)
    let mut k = lo;
    while k > 1 && engine.tokenize_chat(&mk(k))?.len() > n {
        k -= 1;
    }
    let m = mk(k);
    let len = engine.tokenize_chat(&m)?.len();
    Ok((m, len))
}

pub fn run(a: BenchArgs) -> Result<()> {
    let max_b = *a.batch_sizes.iter().max().context("no batch sizes")?;
    let ctx = (a.prompt_tokens as u32 + a.gen_tokens + 16).next_multiple_of(256);
    let mut rows = Vec::new();
    let mut engine = LlamaEngine::load(&a.model, LlamaOptions { threads: a.threads, batch_size: max_b, context: ctx, n_batch: a.n_batch })?;
    engine.ignore_eos = true;
    let (msg, pp) = message_of_len(&engine, a.prompt_tokens)?;
    eprintln!("model {} | prompt {pp} tokens | gen {} tokens | threads {}", backforth::Backend::model_id(&engine), a.gen_tokens, a.threads);
    println!("|   B |  PP |  TG | prompt tok/s | gen tok/s | total tok/s | wall s |");
    println!("|----:|----:|----:|-------------:|----------:|------------:|-------:|");
    for &b in &a.batch_sizes {
        engine.opts.batch_size = b;
        let mut reqs = (0..b as u64).map(|i| GenRequest {
            tag: i,
            messages: msg.clone(),
            sampling: Sampling { temperature: 0.0, top_p: 1.0, max_tokens: a.gen_tokens, seed: i, stop: vec![] },
            grammar: None,
            raw_prompt: false,
        });
        let mut n_done = 0;
        engine.generate(&mut reqs, &mut |_, r| {
            r.map_err(anyhow::Error::msg)?;
            n_done += 1;
            Ok(())
        })?;
        anyhow::ensure!(n_done == b, "only {n_done} of {b} sequences finished");
        let s = engine.last_stats.clone();
        let row = Row {
            batch: b,
            prompt_tokens: s.prompt_tokens,
            completion_tokens: s.completion_tokens,
            prompt_tok_s: s.prompt_tokens as f64 / s.prefill_s.max(1e-9),
            gen_tok_s: s.completion_tokens as f64 / s.generate_s.max(1e-9),
            total_tok_s: (s.prompt_tokens + s.completion_tokens) as f64 / s.wall_s.max(1e-9),
            wall_s: s.wall_s,
        };
        println!(
            "| {:>3} | {:>3} | {:>3} | {:>12.1} | {:>9.1} | {:>11.1} | {:>6.2} |",
            b, pp, a.gen_tokens, row.prompt_tok_s, row.gen_tok_s, row.total_tok_s, row.wall_s
        );
        rows.push(row);
    }
    if let Some(p) = a.json {
        std::fs::write(&p, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

/// `backforth bench-client`: HTTP client overhead against a zero-latency
/// OpenAI-compatible server (fixed response, in this process, loopback), and
/// the response cache's cost per lookup.
#[derive(Args)]
pub struct ClientBenchArgs {
    /// Requests per measurement.
    #[arg(long, default_value_t = 20000)]
    requests: u64,
    /// Client concurrency levels.
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    concurrency: Vec<usize>,
    /// Server worker threads.
    #[arg(long, default_value_t = 4)]
    server_threads: usize,
}

pub fn run_client(a: ClientBenchArgs) -> Result<()> {
    let server = std::sync::Arc::new(tiny_http::Server::http("127.0.0.1:0").map_err(|e| anyhow::anyhow!("{e}"))?);
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
                let h = tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header");
                let _ = r.respond(tiny_http::Response::from_string(body.clone()).with_header(h));
            }
        });
    }
    println!("| concurrency | requests | seconds | requests/s |");
    println!("|---:|---:|---:|---:|");
    for &c in &a.concurrency {
        let cfg = backforth::config::HttpConfig { urls: vec![url.clone()], concurrency: c, api_key_env: String::new(), ..Default::default() };
        let mut b = backforth_http::HttpBackend::new(cfg, "bench")?;
        let mk = |i: u64| GenRequest {
            tag: i,
            messages: vec![ChatMessage { role: "user".into(), content: format!("request {i}") }],
            sampling: Sampling { temperature: 1.0, top_p: 0.9, max_tokens: 16, seed: i, stop: vec![] },
            grammar: None,
            raw_prompt: false,
        };
        // warm-up (connections)
        b.generate(&mut (0..c as u64).map(mk), &mut |_, r| r.map(|_| ()).map_err(anyhow::Error::msg))?;
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
    let cache = backforth::cache::ResponseCache::open(&dir.join("c.sqlite"))?;
    let out = backforth::GenOutput { text: "x".repeat(800), prompt_tokens: 500, completion_tokens: 200, finish: backforth::FinishReason::Stop };
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
        std::hint::black_box(backforth::cache::request_key("bench", &req));
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
        messages: vec![ChatMessage { role: "user".into(), content: "word ".repeat(600) }],
        sampling: Sampling { temperature: 1.0, top_p: 0.9, max_tokens: 16, seed: 1, stop: vec![] },
        grammar: None,
        raw_prompt: false,
    }
}

/// `backforth bench-extract`: main-content extraction quality of the HTML
/// reader: for every `<html-dir>/X.html` with a reference `<reference-dir>/X<suffix>`
/// (the Python manual ships `_sources/X.rst.txt` next to `X.html`), the
/// bag-of-tokens precision/recall/F1 of our extracted text against the
/// reference ([`backforth::sources::token_f1`]), and pages/s.
#[derive(Args)]
pub struct ExtractBenchArgs {
    /// Folder of HTML pages (searched recursively).
    #[arg(long)]
    html: PathBuf,
    /// Folder of reference texts with the same relative paths.
    #[arg(long)]
    reference: PathBuf,
    /// Reference file name = HTML path without `.html` plus this suffix.
    #[arg(long, default_value = ".rst.txt")]
    suffix: String,
}

pub fn run_extract(a: ExtractBenchArgs) -> Result<()> {
    fn walk(d: &std::path::Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out)
                } else if p.extension().is_some_and(|x| x == "html") {
                    out.push(p)
                }
            }
        }
    }
    let mut pages = Vec::new();
    walk(&a.html, &mut pages);
    pages.sort();
    let (mut n, mut failed) = (0usize, 0usize);
    let (mut sp, mut sr, mut sf) = (0.0, 0.0, 0.0);
    let mut secs = 0.0;
    for p in &pages {
        let rel = p.strip_prefix(&a.html).unwrap_or(p).with_extension("");
        let r = a.reference.join(format!("{}{}", rel.display(), a.suffix));
        let Ok(reference) = std::fs::read_to_string(&r) else { continue };
        let html = String::from_utf8_lossy(&std::fs::read(p)?).into_owned();
        let t0 = std::time::Instant::now();
        let got = backforth::sources::html_to_text(&html, None);
        secs += t0.elapsed().as_secs_f64();
        n += 1;
        match got {
            Ok((_, t)) => {
                let (pr, rc, f) = backforth::sources::token_f1(&t, &reference);
                sp += pr;
                sr += rc;
                sf += f;
            }
            Err(_) => failed += 1,
        }
    }
    anyhow::ensure!(n > 0, "no HTML page under {} has a reference under {}", a.html.display(), a.reference.display());
    let m = n as f64;
    println!(
        "{}",
        serde_json::json!({"pages": n, "no_content": failed, "precision": sp / m, "recall": sr / m, "f1": sf / m, "pages_per_s": m / secs.max(1e-9)})
    );
    Ok(())
}

/// `backforth bench-embed`: sentence-embedding throughput of the candle
/// MiniLM (sentences/s, tokens/s) on the first `n` lines of a text file, and
/// the time of MAUVE between two halves of `mauve_n` + `mauve_n` embedded
/// lines (reference settings: 5 k-means restarts, ≤500 iterations).
#[derive(Args)]
pub struct EmbedBenchArgs {
    /// Text file, one sentence per line.
    #[arg(long)]
    texts: PathBuf,
    /// Sentences for the throughput measurement.
    #[arg(long, default_value_t = 2000)]
    n: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Sentences per MAUVE side (0 = skip MAUVE). Needs 2 × this many lines.
    #[arg(long, default_value_t = 0)]
    mauve_n: usize,
    /// Embedding model folder (default: $BACKFORTH_CACHE/models/all-MiniLM-L6-v2).
    #[arg(long)]
    embedder: Option<PathBuf>,
    /// Write the embeddings of all lines used to this file (raw little-endian f32, rows of 384) for cross-checks.
    #[arg(long)]
    dump: Option<PathBuf>,
}

pub fn run_embed(a: EmbedBenchArgs) -> Result<()> {
    let dir = a.embedder.clone().unwrap_or_else(crate::evalcmd::default_embedder);
    let emb = backforth_embed::Embedder::load(&dir)?;
    let lines: Vec<String> = std::fs::read_to_string(&a.texts)?.lines().filter(|l| !l.trim().is_empty()).map(String::from).collect();
    let need = a.n.max(2 * a.mauve_n);
    anyhow::ensure!(lines.len() >= need, "{}: {} lines, need {need}", a.texts.display(), lines.len());
    let texts = &lines[..a.n];
    let tokens: usize = texts.iter().map(|t| emb.token_count(t).unwrap_or(0)).sum();
    let t0 = std::time::Instant::now();
    let v = emb.embed_all(texts, a.batch, |_| {})?;
    let s = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"what": "embed", "model": emb.model_id(), "sentences": texts.len(), "tokens": tokens, "batch": a.batch, "seconds": s,
            "sentences_per_s": texts.len() as f64 / s, "tokens_per_s": tokens as f64 / s})
    );
    let mut all = v;
    if a.mauve_n > 0 {
        let rest = &lines[a.n.min(2 * a.mauve_n)..2 * a.mauve_n];
        let t1 = std::time::Instant::now();
        if !rest.is_empty() {
            all.extend(emb.embed_all(rest, a.batch, |_| {})?);
        }
        let es = t1.elapsed().as_secs_f64();
        let (p, q) = all[..2 * a.mauve_n].split_at(a.mauve_n);
        let t2 = std::time::Instant::now();
        let r = backforth::mauve::mauve(p, q, &backforth::mauve::MauveSettings::default()).map_err(anyhow::Error::msg)?;
        println!(
            "{}",
            serde_json::json!({"what": "mauve", "n_p": r.n_p, "n_q": r.n_q, "buckets": r.num_buckets, "pca_dims": r.pca_dims, "mauve": r.mauve,
                "seconds": t2.elapsed().as_secs_f64(), "extra_embed_seconds": es})
        );
    }
    if let Some(path) = &a.dump {
        let mut bytes = Vec::new();
        for x in all.iter().flatten() {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        std::fs::write(path, bytes)?;
    }
    Ok(())
}

/// `backforth bench-mauve`: MAUVE between two raw little-endian f32
/// embedding files (rows of `dim`), with its wall time. Used for the
/// cross-check against `mauve-text` and the 10k × 10k timing.
#[derive(Args)]
pub struct MauveBenchArgs {
    #[arg(long)]
    p: PathBuf,
    #[arg(long)]
    q: PathBuf,
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Use only the first N rows of each file (0 = all).
    #[arg(long, default_value_t = 0)]
    n: usize,
    /// k-means restarts.
    #[arg(long, default_value_t = 5)]
    redo: usize,
}

pub fn run_mauve(a: MauveBenchArgs) -> Result<()> {
    let read = |p: &PathBuf| -> Result<Vec<Vec<f32>>> {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        anyhow::ensure!(b.len() % (4 * a.dim) == 0, "{}: {} bytes is not a whole number of {}-float rows", p.display(), b.len(), a.dim);
        let f: Vec<f32> = b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        let mut rows: Vec<Vec<f32>> = f.chunks(a.dim).map(|c| c.to_vec()).collect();
        if a.n > 0 {
            rows.truncate(a.n);
        }
        Ok(rows)
    };
    let (p, q) = (read(&a.p)?, read(&a.q)?);
    let t = std::time::Instant::now();
    let r = backforth::mauve::mauve(&p, &q, &backforth::mauve::MauveSettings { num_redo: a.redo, ..Default::default() }).map_err(anyhow::Error::msg)?;
    println!(
        "{}",
        serde_json::json!({"what": "mauve", "n_p": r.n_p, "n_q": r.n_q, "buckets": r.num_buckets, "pca_dims": r.pca_dims, "mauve": r.mauve, "mauve_star": r.mauve_star, "seconds": t.elapsed().as_secs_f64()})
    );
    Ok(())
}
