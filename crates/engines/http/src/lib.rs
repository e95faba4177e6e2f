//! OpenAI-compatible HTTP backend: `POST {url}/chat/completions` (or
//! `/completions` with a plain prompt, `http.api = "completions"`) against
//! vLLM, SGLang, TGI, llama.cpp server, `backforth serve`, OpenAI and the like.
//!
//! Requests are pulled lazily from the stage and kept `concurrency` in flight
//! (async, tokio current-thread runtime + reqwest). Each completion reaches the
//! sink as soon as it arrives. Failures are retried with exponential backoff
//! and full jitter: connection errors, timeouts, 408/429/5xx, bodies that are
//! cut or are not a completion. `Retry-After` (seconds or HTTP date) is honoured
//! on 429/503. Several replica URLs are used round-robin. A replica that stops
//! answering (connection refused or reset, timeout, 502/503/504) is one
//! outage, however many requests were in flight: requests wait while one
//! probe request at a time tests it (`http.cooldown_s`, doubling per failed
//! probe up to `http.cooldown_max_s`), and the first answer reopens it to all.
//! A replica that answers 429 gets its own concurrency limit halved, and
//! each success raises it again by 1/limit (additive increase, multiplicative
//! decrease, as TCP does). A success that took more than half of
//! `http.timeout_s` cuts the limit by a quarter: the server is queueing
//! requests towards the timeout, and more requests in flight would only
//! queue longer (throughput is capped by the server's own batch), then time
//! out and be sent again. One cut per round trip: an answer counts only if
//! its request was sent after the last cut, so a burst of slow answers from
//! one wave lowers the limit once, not once each.
//! The API key comes from an environment variable, is sent only as a bearer
//! header, and is scrubbed from every error message.

pub mod server;

use anyhow::{Context, Result};
use backforth_inference::backend::{
    Backend, FinishReason, GenOutput, GenRequest, Sink, TokenLogprobs,
};
use backforth_inference::config::{GrammarField, HttpApi, HttpConfig};
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Request/response counters of one backend (shown in logs and tests).
#[derive(Debug, Default)]
pub struct HttpStats {
    /// HTTP attempts sent (including retries and probes).
    pub attempts: AtomicU64,
    /// Retries after a failed attempt.
    pub retries: AtomicU64,
    /// Requests that failed after all retries.
    pub failed: AtomicU64,
    /// 429 responses seen.
    pub rate_limited: AtomicU64,
    /// Outages: a replica going from reachable to unreachable (counted once
    /// per outage, however many requests were in flight).
    pub outages: AtomicU64,
    /// Probe requests sent to an unreachable replica.
    pub probes: AtomicU64,
}

/// An unreachable replica: requests wait, one probe at a time tests it.
struct Outage {
    since: Instant,
    /// When the next probe may go.
    probe_at: Instant,
    /// Current wait between probes, seconds (doubles per failed probe).
    interval: f64,
    probing: bool,
    last_error: String,
}

struct Replica {
    url: String,
    outage: Option<Outage>,
    /// Bumped on every change between reachable and unreachable: a failure of
    /// a request sent in an older epoch is old news and changes nothing.
    epoch: u64,
    inflight: usize,
    /// Adaptive concurrency limit (AIMD on 429 and on slow answers), in
    /// [1, http.concurrency].
    limit: f64,
    /// When the limit was last cut for a slow answer (one cut per round trip).
    last_cut: Option<Instant>,
}

/// What a request does next.
enum Pick {
    Send {
        idx: usize,
        url: String,
        epoch: u64,
        probe: bool,
    },
    /// Every replica is busy or cooling down: wait for a change or this instant.
    Wait(Option<Instant>),
    /// No replica reachable for longer than `max_outage_s`.
    GiveUp(String),
}

/// The HTTP backend for one served model.
pub struct HttpBackend {
    cfg: HttpConfig,
    model: String,
    key: Option<String>,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    replicas: Mutex<Vec<Replica>>,
    /// Woken whenever a replica's state or in-flight count changes.
    changed: tokio::sync::Notify,
    next: AtomicU64,
    /// Next free slot of the client-side rate limiter.
    rate_next: Mutex<Instant>,
    pub stats: HttpStats,
}

/// How an attempt failed, which decides who pays for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// No answer at all (connection refused or reset): the replica is away.
    /// Marks it unreachable; does not use up the request's retries.
    Unreachable,
    /// Timeout or 502/503/504: marks the replica unreachable and uses a retry.
    Overloaded,
    /// 429: lowers the replica's concurrency limit and uses a retry.
    RateLimited,
    /// 408, 500, a body cut off or not a completion: uses a retry only.
    Request,
}

enum Attempt {
    Done(GenOutput),
    /// Retry, optionally not before this delay.
    Retry {
        error: String,
        after: Option<Duration>,
        failure: Failure,
    },
    Fatal(String),
}

/// Parse `Retry-After`: delta-seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<f64>() {
        return (s >= 0.0 && s.is_finite()).then(|| Duration::from_secs_f64(s.min(3600.0)));
    }
    let t = httpdate_secs(v)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some(Duration::from_secs(t.saturating_sub(now).min(3600)))
}

/// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") to Unix seconds.
fn httpdate_secs(v: &str) -> Option<u64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: u64 = parts[1].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as u64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<u64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // days from civil (Howard Hinnant's algorithm)
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m as i64 + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    Some((days * 86400) as u64 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Interpret a 200 body as a chat completion. Errors: not JSON, no choices, no content.
pub fn parse_completion(body: &str) -> std::result::Result<GenOutput, String> {
    let v: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("response is not JSON ({e})"))?;
    let choice = v["choices"].get(0).ok_or("response has no choices")?;
    let text = choice["message"]["content"]
        .as_str()
        .or_else(|| choice["text"].as_str())
        .ok_or("response choice has no message content")?
        .to_string();
    let finish = match choice["finish_reason"].as_str() {
        Some("length") => FinishReason::Length,
        _ => FinishReason::Stop,
    };
    let u = &v["usage"];
    Ok(GenOutput {
        text,
        prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0) as u32,
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0) as u32,
        finish,
        // vLLM (--enable-prompt-tokens-details), SGLang, llama.cpp server, OpenAI
        cached_prompt_tokens: u["prompt_tokens_details"]["cached_tokens"]
            .as_u64()
            .unwrap_or(0) as u32,
        logprobs: parse_logprobs(&choice["logprobs"]),
    })
}

/// Per-token log-probabilities of a choice, in either form servers send:
/// the chat form (`content: [{token, logprob, top_logprobs: [{token,
/// logprob}]}]`; OpenAI, vLLM, SGLang, llama.cpp server) or the legacy
/// completions form (`tokens`, `token_logprobs`, `top_logprobs: [{token:
/// logprob}]`; OpenAI, vLLM). Absent or unreadable: empty (the caller falls
/// back to the text alone).
pub fn parse_logprobs(v: &serde_json::Value) -> Vec<TokenLogprobs> {
    let f = |x: &serde_json::Value| x.as_f64().map(|l| l as f32);
    if let Some(content) = v["content"].as_array() {
        return content
            .iter()
            .filter_map(|t| {
                let top = t["top_logprobs"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|e| {
                                Some((e["token"].as_str()?.to_string(), f(&e["logprob"])?))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(TokenLogprobs {
                    token: t["token"].as_str()?.to_string(),
                    logprob: f(&t["logprob"])?,
                    top,
                })
            })
            .collect();
    }
    let (Some(tokens), Some(lps)) = (v["tokens"].as_array(), v["token_logprobs"].as_array()) else {
        return Vec::new();
    };
    let tops = v["top_logprobs"].as_array();
    tokens
        .iter()
        .zip(lps)
        .enumerate()
        .filter_map(|(i, (t, l))| {
            let mut top: Vec<(String, f32)> = tops
                .and_then(|a| a.get(i))
                .and_then(|m| m.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, x)| Some((k.clone(), f(x)?)))
                        .collect()
                })
                .unwrap_or_default();
            top.sort_by(|a, b| b.1.total_cmp(&a.1));
            Some(TokenLogprobs {
                token: t.as_str()?.to_string(),
                logprob: f(l)?,
                top,
            })
        })
        .collect()
}

/// The endpoint path (after the base URL) for an API.
pub fn endpoint(api: HttpApi) -> &'static str {
    match api {
        HttpApi::Chat => "/chat/completions",
        HttpApi::Completions => "/completions",
    }
}

/// The request body for `/chat/completions` (`messages`) or `/completions`
/// (`prompt` = [`GenRequest::raw_text`]), OpenAI format; the grammar goes into
/// the field `grammar_field` names.
pub fn request_body(
    model: &str,
    r: &GenRequest,
    api: HttpApi,
    grammar_field: GrammarField,
) -> serde_json::Value {
    let s = &r.sampling;
    let mut b = serde_json::json!({
        "model": model,
        "temperature": s.temperature,
        "top_p": s.top_p,
        "max_tokens": s.max_tokens,
        "seed": s.seed,
    });
    match api {
        HttpApi::Chat => b["messages"] = serde_json::json!(r.messages),
        HttpApi::Completions => b["prompt"] = serde_json::json!(r.raw_text()),
    }
    if !s.stop.is_empty() {
        b["stop"] = serde_json::json!(s.stop);
    }
    if r.top_logprobs > 0 {
        match api {
            HttpApi::Chat => {
                b["logprobs"] = true.into();
                b["top_logprobs"] = r.top_logprobs.into();
            }
            HttpApi::Completions => b["logprobs"] = r.top_logprobs.into(),
        }
    }
    if let Some(g) = &r.grammar {
        match grammar_field {
            GrammarField::None => {}
            GrammarField::LlamaCpp => b["grammar"] = serde_json::json!(g),
            GrammarField::Vllm => b["structured_outputs"] = serde_json::json!({ "grammar": g }),
            GrammarField::VllmLegacy => b["guided_grammar"] = serde_json::json!(g),
            GrammarField::Sglang => b["ebnf"] = serde_json::json!(g),
        }
    }
    b
}

impl HttpBackend {
    /// A backend for `model` (the name the servers know). Reads the API key from
    /// `cfg.api_key_env` if set. Errors: no URL, runtime or client construction.
    pub fn new(cfg: HttpConfig, model: &str) -> Result<Self> {
        anyhow::ensure!(!cfg.urls.is_empty(), "http.urls is empty");
        anyhow::ensure!(cfg.concurrency >= 1, "http.concurrency must be ≥ 1");
        let key = (!cfg.api_key_env.is_empty())
            .then(|| std::env::var(&cfg.api_key_env).ok())
            .flatten()
            .filter(|k| !k.is_empty());
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(cfg.concurrency)
            .timeout(Duration::from_secs_f64(cfg.timeout_s))
            .connect_timeout(Duration::from_secs_f64(cfg.timeout_s.min(30.0)))
            .build()
            .context("building the HTTP client")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let replicas = cfg
            .urls
            .iter()
            .map(|u| Replica {
                url: u.trim_end_matches('/').to_string(),
                outage: None,
                epoch: 0,
                inflight: 0,
                limit: cfg.concurrency as f64,
                last_cut: None,
            })
            .collect();
        Ok(HttpBackend {
            cfg,
            model: model.to_string(),
            key,
            client,
            rt,
            replicas: Mutex::new(replicas),
            changed: tokio::sync::Notify::new(),
            next: AtomicU64::new(0),
            rate_next: Mutex::new(Instant::now()),
            stats: HttpStats::default(),
        })
    }

    fn scrub(&self, msg: String) -> String {
        match &self.key {
            Some(k) if k.len() >= 4 => msg.replace(k.as_str(), "[REDACTED]"),
            _ => msg,
        }
    }

    /// The current per-replica concurrency limits (AIMD state), in URL order.
    pub fn replica_limits(&self) -> Vec<usize> {
        self.replicas
            .lock()
            .expect("replica lock")
            .iter()
            .map(|r| r.limit as usize)
            .collect()
    }

    /// Choose where the next attempt goes: a reachable replica with a free
    /// slot, round-robin; else an unreachable one whose probe is due (one probe
    /// at a time); else wait.
    fn pick(&self) -> Pick {
        let mut reps = self.replicas.lock().expect("replica lock");
        let now = Instant::now();
        let n = reps.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let mut any_up = false;
        for i in 0..n {
            let j = (start + i) % n;
            let r = &mut reps[j];
            if r.outage.is_none() {
                any_up = true;
                if r.inflight < (r.limit as usize).max(1) {
                    r.inflight += 1;
                    return Pick::Send {
                        idx: j,
                        url: r.url.clone(),
                        epoch: r.epoch,
                        probe: false,
                    };
                }
            }
        }
        if any_up {
            return Pick::Wait(None);
        }
        for i in 0..n {
            let j = (start + i) % n;
            let r = &mut reps[j];
            if let Some(o) = &mut r.outage {
                if !o.probing && o.probe_at <= now {
                    o.probing = true;
                    r.inflight += 1;
                    self.stats.probes.fetch_add(1, Ordering::Relaxed);
                    return Pick::Send {
                        idx: j,
                        url: r.url.clone(),
                        epoch: r.epoch,
                        probe: true,
                    };
                }
            }
        }
        let outages = reps.iter().filter_map(|r| r.outage.as_ref());
        let shortest = outages
            .clone()
            .map(|o| now.duration_since(o.since))
            .min()
            .unwrap_or_default();
        if shortest.as_secs_f64() > self.cfg.max_outage_s {
            let last = outages
                .map(|o| o.last_error.as_str())
                .next()
                .unwrap_or_default();
            return Pick::GiveUp(format!(
                "no replica reachable for {:.0} s (http.max_outage_s); last error: {last}",
                shortest.as_secs_f64()
            ));
        }
        Pick::Wait(
            reps.iter()
                .filter_map(|r| r.outage.as_ref())
                .filter(|o| !o.probing)
                .map(|o| o.probe_at)
                .min(),
        )
    }

    /// Report how an attempt sent by [`Self::pick`] at `sent` ended and free
    /// its slot.
    fn settle(
        &self,
        idx: usize,
        epoch: u64,
        probe: bool,
        sent: Instant,
        result: std::result::Result<(), (Failure, &str)>,
    ) {
        let mut reps = self.replicas.lock().expect("replica lock");
        let r = &mut reps[idx];
        r.inflight = r.inflight.saturating_sub(1);
        let cap = self.cfg.concurrency as f64;
        let answered = !matches!(result, Err((Failure::Unreachable | Failure::Overloaded, _)));
        if answered {
            // any answer, even a bad one, shows the replica is there again
            if let Some(o) = r.outage.take() {
                r.epoch += 1;
                tracing::warn!(
                    "replica {} reachable again after {:.1} s",
                    r.url,
                    o.since.elapsed().as_secs_f64()
                );
            }
        }
        match result {
            Ok(()) => {
                let took = sent.elapsed().as_secs_f64();
                let slow = took > self.cfg.timeout_s / 2.0;
                let fresh = r.last_cut.is_none_or(|t| sent > t);
                if slow && fresh {
                    r.limit = (r.limit * 0.75).max(1.0);
                    r.last_cut = Some(Instant::now());
                    tracing::debug!(
                        "replica {} answered in {:.1} s, over half the timeout; its concurrency limit is now {}",
                        r.url,
                        took,
                        r.limit as usize
                    );
                } else if !slow {
                    r.limit = (r.limit + 1.0 / r.limit).min(cap);
                }
            }
            Err((Failure::RateLimited, _)) => {
                r.limit = (r.limit / 2.0).max(1.0);
                tracing::debug!(
                    "replica {} answered 429; its concurrency limit is now {}",
                    r.url,
                    r.limit as usize
                );
            }
            Err((Failure::Request, _)) => {}
            Err((Failure::Unreachable | Failure::Overloaded, error)) => {
                let now = Instant::now();
                match &mut r.outage {
                    Some(o) if probe => {
                        o.interval = (o.interval * 2.0)
                            .min(self.cfg.cooldown_max_s.max(self.cfg.cooldown_s));
                        o.probe_at = now + Duration::from_secs_f64(o.interval);
                        o.probing = false;
                        o.last_error = error.to_string();
                    }
                    // an attempt sent before this outage was noticed: old news
                    Some(_) => {}
                    None if epoch != r.epoch => {}
                    None => {
                        r.epoch += 1;
                        self.stats.outages.fetch_add(1, Ordering::Relaxed);
                        let interval = self.cfg.cooldown_s;
                        tracing::warn!("replica {} unreachable ({error}); probing it every {interval:.1}–{:.1} s", r.url, self.cfg.cooldown_max_s);
                        r.outage = Some(Outage {
                            since: now,
                            probe_at: now + Duration::from_secs_f64(interval),
                            interval,
                            probing: false,
                            last_error: error.to_string(),
                        });
                    }
                }
            }
        }
        drop(reps);
        self.changed.notify_waiters();
    }

    fn body(&self, r: &GenRequest) -> serde_json::Value {
        request_body(&self.model, r, self.cfg.api, self.cfg.grammar_field)
    }

    /// Backoff before retry `attempt` (1-based): full jitter over base·2^(attempt-1), capped.
    fn backoff(&self, tag: u64, attempt: u32) -> Duration {
        let cap = (self.cfg.backoff_base_ms as f64 * 2f64.powi(attempt.min(30) as i32 - 1))
            .min(self.cfg.backoff_max_ms as f64);
        // jitter from a hash, so runs need no RNG state and stay reproducible
        let h = blake3::hash(&[tag.to_le_bytes(), (attempt as u64).to_le_bytes()].concat());
        let frac = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes")) as f64
            / u64::MAX as f64;
        Duration::from_secs_f64(cap * (0.5 + 0.5 * frac) / 1000.0)
    }

    async fn rate_limit(&self) {
        if self.cfg.requests_per_minute == 0 {
            return;
        }
        let slot = {
            let mut next = self.rate_next.lock().expect("rate lock");
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + Duration::from_secs_f64(60.0 / self.cfg.requests_per_minute as f64);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }

    async fn attempt(&self, url: &str, body: &serde_json::Value) -> Attempt {
        self.stats.attempts.fetch_add(1, Ordering::Relaxed);
        let mut rb = self
            .client
            .post(format!("{url}{}", endpoint(self.cfg.api)))
            .json(body);
        if let Some(k) = &self.key {
            rb = rb.bearer_auth(k);
        }
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return Attempt::Retry {
                    error: format!("timeout: {e}"),
                    after: None,
                    failure: Failure::Overloaded,
                }
            }
            Err(e) => {
                return Attempt::Retry {
                    error: format!("connection error: {e}"),
                    after: None,
                    failure: Failure::Unreachable,
                }
            }
        };
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let text = match resp.text().await {
            Ok(t) => t,
            Err(e) => {
                return Attempt::Retry {
                    error: format!("body cut off: {e}"),
                    after: None,
                    failure: Failure::Request,
                }
            }
        };
        if status.is_success() {
            return match parse_completion(&text) {
                Ok(o) => Attempt::Done(o),
                Err(e) => Attempt::Retry {
                    error: e,
                    after: None,
                    failure: Failure::Request,
                },
            };
        }
        let snippet: String = text.chars().take(300).collect();
        let error = format!("HTTP {}: {snippet}", status.as_u16());
        match status.as_u16() {
            429 => {
                self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                Attempt::Retry {
                    error,
                    after: retry_after,
                    failure: Failure::RateLimited,
                }
            }
            502..=504 => Attempt::Retry {
                error,
                after: retry_after,
                failure: Failure::Overloaded,
            },
            408 | 500..=599 => Attempt::Retry {
                error,
                after: retry_after,
                failure: Failure::Request,
            },
            _ => Attempt::Fatal(error),
        }
    }

    async fn complete(&self, r: GenRequest) -> (u64, std::result::Result<GenOutput, String>) {
        let body = self.body(&r);
        let mut tries = 0u32;
        loop {
            // registered before `pick` looks, so no change between the two is missed
            let changed = self.changed.notified();
            let (idx, url, epoch, probe) = match self.pick() {
                Pick::Send {
                    idx,
                    url,
                    epoch,
                    probe,
                } => (idx, url, epoch, probe),
                Pick::Wait(until) => {
                    let until = until.unwrap_or_else(|| Instant::now() + Duration::from_secs(1));
                    tokio::select! {
                        _ = changed => {}
                        _ = tokio::time::sleep_until(until.into()) => {}
                    }
                    continue;
                }
                Pick::GiveUp(e) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return (r.tag, Err(self.scrub(e)));
                }
            };
            self.rate_limit().await;
            let sent = Instant::now();
            match self.attempt(&url, &body).await {
                Attempt::Done(o) => {
                    self.settle(idx, epoch, probe, sent, Ok(()));
                    return (r.tag, Ok(o));
                }
                Attempt::Fatal(e) => {
                    // the server answered: it is reachable
                    self.settle(idx, epoch, probe, sent, Ok(()));
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    return (r.tag, Err(self.scrub(e)));
                }
                Attempt::Retry {
                    error,
                    after,
                    failure,
                } => {
                    self.settle(idx, epoch, probe, sent, Err((failure, &error)));
                    if failure == Failure::Unreachable {
                        // the outage, not this request, is at fault: wait for a probe
                        tracing::debug!(
                            "request {} waits for an unreachable replica ({})",
                            r.tag,
                            self.scrub(error)
                        );
                        continue;
                    }
                    tries += 1;
                    if tries > self.cfg.max_retries {
                        self.stats.failed.fetch_add(1, Ordering::Relaxed);
                        return (
                            r.tag,
                            Err(self.scrub(format!(
                                "gave up after {tries} attempts; last error: {error}"
                            ))),
                        );
                    }
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    let wait = after.unwrap_or_else(|| self.backoff(r.tag, tries));
                    tracing::debug!(
                        "request {} attempt {tries} failed ({}); retrying in {wait:?}",
                        r.tag,
                        self.scrub(error)
                    );
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

impl Backend for HttpBackend {
    fn model_id(&self) -> String {
        format!("http:{}", self.model)
    }

    fn generate(
        &mut self,
        requests: &mut dyn Iterator<Item = GenRequest>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let this: &HttpBackend = self;
        this.rt.block_on(async {
            let mut inflight = FuturesUnordered::new();
            let mut exhausted = false;
            loop {
                while !exhausted && inflight.len() < this.cfg.concurrency {
                    match requests.next() {
                        Some(r) => inflight.push(this.complete(r)),
                        None => exhausted = true,
                    }
                }
                match inflight.next().await {
                    Some((tag, res)) => {
                        sink(tag, res)?;
                        // `None` meant "nothing right now": a streamed chain
                        // has new requests once a result arrives
                        exhausted = false;
                    }
                    None => return Ok(()),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            httpdate_secs("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn completion_bodies() {
        let ok = r#"{"choices":[{"message":{"role":"assistant","content":"hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#;
        let o = parse_completion(ok).unwrap();
        assert_eq!(
            (
                o.text.as_str(),
                o.finish,
                o.prompt_tokens,
                o.completion_tokens
            ),
            ("hi", FinishReason::Length, 5, 1)
        );
        assert!(parse_completion(r#"{"choices":[]}"#)
            .unwrap_err()
            .contains("no choices"));
        assert!(parse_completion(r#"{"choices":[{"message":{}}]}"#)
            .unwrap_err()
            .contains("no message content"));
        assert!(parse_completion(r#"{"choices":[{"mess"#)
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn logprobs_in_both_server_forms() {
        let chat = r#"{"choices":[{"message":{"content":"A"},"logprobs":{"content":[{"token":"A","logprob":-0.2,"top_logprobs":[{"token":"A","logprob":-0.2},{"token":"B","logprob":-1.8}]}]}}]}"#;
        let o = parse_completion(chat).unwrap();
        assert_eq!(
            o.logprobs,
            vec![TokenLogprobs {
                token: "A".into(),
                logprob: -0.2,
                top: vec![("A".into(), -0.2), ("B".into(), -1.8)]
            }]
        );
        let legacy = r#"{"choices":[{"text":" B","logprobs":{"tokens":[" B"],"token_logprobs":[-0.5],"top_logprobs":[{" A":-1.2," B":-0.5}]}}]}"#;
        let o = parse_completion(legacy).unwrap();
        assert_eq!(
            o.logprobs,
            vec![TokenLogprobs {
                token: " B".into(),
                logprob: -0.5,
                top: vec![(" B".into(), -0.5), (" A".into(), -1.2)]
            }]
        );
        assert!(
            parse_completion(r#"{"choices":[{"text":"x","logprobs":null}]}"#)
                .unwrap()
                .logprobs
                .is_empty()
        );
        let mut r = GenRequest::chat(
            0,
            vec![],
            backforth_inference::Sampling {
                temperature: 0.0,
                top_p: 1.0,
                max_tokens: 4,
                seed: 0,
                stop: vec![],
            },
        );
        assert!(request_body("m", &r, HttpApi::Chat, GrammarField::None)
            .get("logprobs")
            .is_none());
        r.top_logprobs = 5;
        let b = request_body("m", &r, HttpApi::Chat, GrammarField::None);
        assert_eq!(
            (b["logprobs"].as_bool(), b["top_logprobs"].as_u64()),
            (Some(true), Some(5))
        );
        assert_eq!(
            request_body("m", &r, HttpApi::Completions, GrammarField::None)["logprobs"].as_u64(),
            Some(5)
        );
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let cfg = HttpConfig {
            backoff_base_ms: 100,
            backoff_max_ms: 1000,
            ..Default::default()
        };
        let b = HttpBackend::new(cfg, "m").unwrap();
        let d1 = b.backoff(1, 1).as_secs_f64();
        let d4 = b.backoff(1, 4).as_secs_f64();
        let d20 = b.backoff(1, 20).as_secs_f64();
        assert!((0.05..=0.1).contains(&d1), "{d1}");
        assert!((0.4..=0.8).contains(&d4), "{d4}");
        assert!((0.5..=1.0).contains(&d20), "{d20}");
    }
}
