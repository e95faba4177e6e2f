//! An OpenAI-compatible HTTP server over any [`Backend`] (`backforth serve`
//! runs it over the embedded llama.cpp engine), so several pipeline
//! processes share one loaded model and the HTTP client has a real server
//! to test against. The server side of the wire format this crate's client
//! speaks.
//!
//! Endpoints: `POST /v1/completions` (plain-text `prompt`, no chat template),
//! `POST /v1/chat/completions` (non-streaming; `messages`, `temperature`,
//! `top_p`, `max_tokens`/`max_completion_tokens`, `seed`, `stop`,
//! llama.cpp-style `grammar`, `logprobs`/`top_logprobs`), `GET /v1/models`,
//! `GET /health`, and `GET /v1/backforth/stats` (requests served, for
//! tests). HTTP handling runs on a pool of threads (tiny_http); the calling
//! thread owns the backend and feeds every request it receives into its
//! continuous batch.

use anyhow::{Context, Result};
use backforth_inference::{Backend, ChatMessage, GenOutput, GenRequest, Sampling};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct ChatBody {
    #[serde(default)]
    messages: Vec<ChatMessage>,
    /// `/v1/completions`: the plain-text prompt.
    prompt: Option<String>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    max_tokens: Option<u32>,
    max_completion_tokens: Option<u32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    grammar: Option<String>,
    stream: Option<bool>,
    /// Chat: `true` to return log-probabilities; completions: how many alternatives.
    logprobs: Option<serde_json::Value>,
    /// Chat: alternatives per token (0–20).
    top_logprobs: Option<u8>,
}

type Reply = mpsc::Sender<std::result::Result<GenOutput, String>>;

fn json_response(
    code: u16,
    v: &serde_json::Value,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    tiny_http::Response::from_data(v.to_string().into_bytes())
        .with_status_code(code)
        .with_header(
            tiny_http::Header::from_bytes("Content-Type", "application/json").expect("header"),
        )
}

fn error(code: u16, msg: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    json_response(
        code,
        &serde_json::json!({"error": {"message": msg, "type": "invalid_request_error"}}),
    )
}

/// Log-probabilities as the OpenAI API returns them: the chat form
/// (`content: [{token, logprob, top_logprobs}]`) or, for `/v1/completions`,
/// the legacy form (`tokens`, `token_logprobs`, `top_logprobs: [{token: logprob}]`).
fn logprobs_json(lp: &[backforth_inference::TokenLogprobs], legacy: bool) -> serde_json::Value {
    if legacy {
        let top: Vec<serde_json::Map<String, serde_json::Value>> = lp
            .iter()
            .map(|t| {
                t.top
                    .iter()
                    .map(|(k, l)| (k.clone(), (*l).into()))
                    .collect()
            })
            .collect();
        serde_json::json!({"tokens": lp.iter().map(|t| &t.token).collect::<Vec<_>>(), "token_logprobs": lp.iter().map(|t| t.logprob).collect::<Vec<_>>(), "top_logprobs": top})
    } else {
        let content: Vec<serde_json::Value> = lp
            .iter()
            .map(|t| serde_json::json!({"token": t.token, "logprob": t.logprob, "top_logprobs": t.top.iter().map(|(k, l)| serde_json::json!({"token": k, "logprob": l})).collect::<Vec<_>>()}))
            .collect();
        serde_json::json!({ "content": content })
    }
}

/// Answer a chat completion (`raw` = false) or a plain completion (`raw` = true).
fn chat(
    body: &str,
    name: &str,
    tx: &mpsc::Sender<(GenRequest, Reply)>,
    tag: u64,
    raw: bool,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    let mut b: ChatBody = match serde_json::from_str(body) {
        Ok(b) => b,
        Err(e) => return error(400, &format!("invalid request body: {e}")),
    };
    if b.stream == Some(true) {
        return error(400, "streaming is not supported");
    }
    if raw {
        match b.prompt.take() {
            Some(p) => {
                b.messages = vec![ChatMessage {
                    role: "user".into(),
                    content: p,
                }]
            }
            None => return error(400, "prompt (a string) is required"),
        }
    }
    if b.messages.is_empty() {
        return error(400, "messages is empty");
    }
    let stop = match b.stop {
        None => vec![],
        Some(Stop::One(s)) => vec![s],
        Some(Stop::Many(v)) => v,
    };
    // chat asks with `logprobs: true` + `top_logprobs`, completions with `logprobs: k`
    let top_logprobs = match (&b.logprobs, b.top_logprobs) {
        (Some(serde_json::Value::Bool(true)), k) => k.unwrap_or(1).max(1),
        (Some(serde_json::Value::Number(n)), _) => n.as_u64().unwrap_or(0).min(20) as u8,
        _ => 0,
    };
    let req = GenRequest {
        top_logprobs,
        tag,
        messages: b.messages,
        sampling: Sampling {
            temperature: b.temperature.unwrap_or(1.0),
            top_p: b.top_p.unwrap_or(1.0),
            max_tokens: b.max_completion_tokens.or(b.max_tokens).unwrap_or(256),
            seed: b.seed.unwrap_or(0),
            stop,
        },
        grammar: b.grammar,
        raw_prompt: raw,
    };
    let (rtx, rrx) = mpsc::channel();
    if tx.send((req, rtx)).is_err() {
        return error(503, "engine stopped");
    }
    match rrx.recv() {
        Ok(Ok(o)) => {
            let created = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let usage = serde_json::json!({"prompt_tokens": o.prompt_tokens, "completion_tokens": o.completion_tokens, "total_tokens": o.prompt_tokens + o.completion_tokens,
                "prompt_tokens_details": {"cached_tokens": o.cached_prompt_tokens}});
            let mut v = if raw {
                serde_json::json!({"id": format!("cmpl-{tag}"), "object": "text_completion", "created": created, "model": name,
                    "choices": [{"index": 0, "text": o.text, "finish_reason": o.finish.as_str()}], "usage": usage})
            } else {
                serde_json::json!({"id": format!("chatcmpl-{tag}"), "object": "chat.completion", "created": created, "model": name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": o.text}, "finish_reason": o.finish.as_str()}], "usage": usage})
            };
            if top_logprobs > 0 {
                v["choices"][0]["logprobs"] = logprobs_json(&o.logprobs, raw);
            }
            json_response(200, &v)
        }
        Ok(Err(e)) => error(400, &e),
        Err(_) => error(503, "engine stopped"),
    }
}

/// Serve `engine` as `name` on `listen` (`host:port`; port 0 picks one)
/// with `http_threads` request threads; `on_listen` gets the bound address.
/// Runs until the process ends. Errors: the address cannot be bound, the
/// backend failed fatally.
pub fn serve(
    engine: &mut dyn Backend,
    name: &str,
    listen: &str,
    http_threads: usize,
    on_listen: impl FnOnce(&str),
) -> Result<()> {
    let name = name.to_string();
    let server = Arc::new(
        tiny_http::Server::http(listen).map_err(|e| anyhow::anyhow!("listening on {listen}: {e}"))?,
    );
    on_listen(&server.server_addr().to_string());
    let (tx, rx) = mpsc::channel::<(GenRequest, Reply)>();
    let served = Arc::new(AtomicU64::new(0));
    let next_tag = Arc::new(AtomicU64::new(1));

    for _ in 0..http_threads.max(1) {
        let server = server.clone();
        let tx = tx.clone();
        let name = name.clone();
        let served = served.clone();
        let next_tag = next_tag.clone();
        std::thread::spawn(move || {
            while let Ok(mut req) = server.recv() {
                let url = req.url().split('?').next().unwrap_or("").to_string();
                let resp = match (req.method(), url.as_str()) {
                    (tiny_http::Method::Get, "/health") => {
                        json_response(200, &serde_json::json!({"status": "ok"}))
                    }
                    (tiny_http::Method::Get, "/v1/models") => json_response(
                        200,
                        &serde_json::json!({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "backforth"}]}),
                    ),
                    (tiny_http::Method::Get, "/v1/backforth/stats") => json_response(
                        200,
                        &serde_json::json!({"requests": served.load(Ordering::SeqCst)}),
                    ),
                    (tiny_http::Method::Post, "/v1/chat/completions")
                    | (tiny_http::Method::Post, "/v1/completions") => {
                        let raw = url == "/v1/completions";
                        served.fetch_add(1, Ordering::SeqCst);
                        let mut body = String::new();
                        if std::io::Read::read_to_string(req.as_reader(), &mut body).is_err() {
                            let _ = req.respond(error(400, "unreadable body"));
                            continue;
                        }
                        chat(
                            &body,
                            &name,
                            &tx,
                            next_tag.fetch_add(1, Ordering::SeqCst),
                            raw,
                        )
                    }
                    _ => error(404, "unknown endpoint"),
                };
                let _ = req.respond(resp);
            }
        });
    }
    drop(tx);

    // the engine thread (this one): wait for work, then batch everything that arrives
    let replies: std::cell::RefCell<HashMap<u64, Reply>> = Default::default();
    while let Ok(first) = rx.recv() {
        let mut pending = Some(first);
        let mut incoming = std::iter::from_fn(|| {
            let (r, reply) = pending.take().or_else(|| rx.try_recv().ok())?;
            replies.borrow_mut().insert(r.tag, reply);
            Some(r)
        });
        // each answer goes back the moment its sequence finishes
        let mut sink = |tag: u64, res: std::result::Result<GenOutput, String>| -> Result<()> {
            if let Some(reply) = replies.borrow_mut().remove(&tag) {
                let _ = reply.send(res);
            }
            Ok(())
        };
        engine
            .generate(&mut incoming, &mut sink)
            .context("engine")?;
    }
    Ok(())
}

