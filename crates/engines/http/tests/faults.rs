//! Fault injection against a local scripted HTTP server (loopback only): 429
//! with Retry-After, 500, 503, a hang past the timeout, a connection dropped
//! mid-body, truncated JSON, an empty choice list. Every request ends as a
//! success or a recorded failure, none is lost or answered twice, retries wait,
//! and the API key never shows in errors.

use backforth_http::HttpBackend;
use backforth_inference::backend::{Backend, ChatMessage, GenRequest};
use backforth_inference::config::HttpConfig;
use backforth_inference::Sampling;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
enum Fault {
    RateLimited,
    E500,
    E503,
    Hang,
    DropMidBody,
    TruncatedJson,
    EmptyChoices,
    BadRequest,
    EchoAuth401,
    Fine,
}

/// Reads one HTTP request; returns (headers lowercased, body).
fn read_request(s: &mut TcpStream) -> Option<(HashMap<String, String>, String)> {
    let mut r = BufReader::new(s.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let n: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some((headers, String::from_utf8_lossy(&body).into()))
}

fn respond(s: &mut TcpStream, code: u16, extra: &str, body: &str) {
    let _ = write!(s, "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n{body}", body.len());
}

fn ok_body(content: &str) -> String {
    serde_json::json!({"choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 3}})
    .to_string()
}

/// A server that applies `script[i]` to the i-th request it receives (then Ok).
/// Returns its base URL and the per-content request counter.
fn server(script: Vec<Fault>) -> (String, Arc<Mutex<HashMap<String, usize>>>, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(HashMap::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let (seen2, count2) = (seen.clone(), count.clone());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let i = count2.fetch_add(1, Ordering::SeqCst);
            let fault = script.get(i).copied().unwrap_or(Fault::Fine);
            let seen = seen2.clone();
            std::thread::spawn(move || {
                let Some((headers, body)) = read_request(&mut s) else {
                    return;
                };
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let content = v["messages"][0]["content"].as_str().unwrap().to_string();
                *seen.lock().unwrap().entry(content.clone()).or_insert(0) += 1;
                match fault {
                    Fault::RateLimited => respond(
                        &mut s,
                        429,
                        "Retry-After: 1\r\n",
                        "{\"error\":\"slow down\"}",
                    ),
                    Fault::E500 => respond(&mut s, 500, "", "{\"error\":\"boom\"}"),
                    Fault::E503 => respond(&mut s, 503, "", "{\"error\":\"busy\"}"),
                    Fault::Hang => std::thread::sleep(Duration::from_secs(5)),
                    Fault::DropMidBody => {
                        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"choices\":[");
                    }
                    Fault::TruncatedJson => respond(
                        &mut s,
                        200,
                        "",
                        "{\"choices\":[{\"message\":{\"content\":\"hal",
                    ),
                    Fault::EmptyChoices => respond(&mut s, 200, "", "{\"choices\":[]}"),
                    Fault::BadRequest => respond(&mut s, 400, "", "{\"error\":\"bad model\"}"),
                    Fault::EchoAuth401 => {
                        let auth = headers.get("authorization").cloned().unwrap_or_default();
                        respond(
                            &mut s,
                            401,
                            "",
                            &serde_json::json!({"error": format!("invalid key {auth}")})
                                .to_string(),
                        )
                    }
                    Fault::Fine => {
                        respond(&mut s, 200, "", &ok_body(&format!("answer to {content}")))
                    }
                }
            });
        }
    });
    (url, seen, count)
}

fn req(i: u64) -> GenRequest {
    GenRequest {
        tag: i,
        messages: vec![ChatMessage {
            role: "user".into(),
            content: format!("q{i}"),
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
    }
}

/// Run `reqs` through `b`; every tag must come back exactly once. Returns the
/// text or error per tag.
fn answers(
    b: &mut HttpBackend,
    mut reqs: impl Iterator<Item = GenRequest>,
) -> HashMap<u64, Result<String, String>> {
    let mut got = HashMap::new();
    b.generate(&mut reqs, &mut |tag, r| {
        assert!(
            got.insert(tag, r.map(|o| o.text)).is_none(),
            "tag {tag} twice"
        );
        Ok(())
    })
    .unwrap();
    got
}

fn cfg(url: String) -> HttpConfig {
    HttpConfig {
        urls: vec![url],
        concurrency: 1,
        timeout_s: 1.0,
        max_retries: 10,
        backoff_base_ms: 20,
        backoff_max_ms: 200,
        cooldown_s: 0.01,
        max_outage_s: 20.0,
        api_key_env: "BACKFORTH_TEST_SECRET_KEY".into(),
        ..Default::default()
    }
}

#[test]
fn every_fault_is_retried_until_success() {
    std::env::set_var("BACKFORTH_TEST_SECRET_KEY", "sk-test-very-secret-0123");
    use Fault::*;
    let (url, seen, count) = server(vec![
        RateLimited,
        E500,
        E503,
        Hang,
        DropMidBody,
        TruncatedJson,
        EmptyChoices,
    ]);
    let mut b = HttpBackend::new(cfg(url), "m").unwrap();
    let t0 = Instant::now();
    let got = answers(&mut b, (0..4).map(req));
    let elapsed = t0.elapsed();
    assert_eq!(got.len(), 4);
    for i in 0..4u64 {
        assert_eq!(got[&i], Ok(format!("answer to q{i}")));
    }
    // 7 faulty attempts + 4 successes
    assert_eq!(count.load(Ordering::SeqCst), 11);
    assert_eq!(b.stats.retries.load(Ordering::SeqCst), 7);
    assert_eq!(b.stats.rate_limited.load(Ordering::SeqCst), 1);
    assert_eq!(seen.lock().unwrap()["q0"], 8, "q0 took every fault");
    // Retry-After: 1 s was honoured, and the hang cost the 1 s timeout
    assert!(elapsed >= Duration::from_millis(2000), "{elapsed:?}");
}

#[test]
fn permanent_errors_are_recorded_and_the_key_is_scrubbed() {
    std::env::set_var("BACKFORTH_TEST_SECRET_KEY", "sk-test-very-secret-0123");
    use Fault::*;
    let (url, _, count) = server(vec![BadRequest, EchoAuth401]);
    let mut b = HttpBackend::new(cfg(url), "m").unwrap();
    let got = answers(&mut b, (0..3).map(req));
    assert_eq!(count.load(Ordering::SeqCst), 3, "4xx are not retried");
    let e0 = got[&0].as_ref().unwrap_err();
    assert!(e0.contains("HTTP 400") && e0.contains("bad model"), "{e0}");
    let e1 = got[&1].as_ref().unwrap_err();
    assert!(
        e1.contains("HTTP 401") && e1.contains("[REDACTED]") && !e1.contains("very-secret"),
        "{e1}"
    );
    assert_eq!(got[&2], Ok("answer to q2".into()));
    assert_eq!(b.stats.failed.load(Ordering::SeqCst), 2);
}

#[test]
fn gives_up_after_max_retries_and_spreads_over_replicas() {
    // a dead replica (closed port) next to a good one: all requests succeed via the good one
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        drop(l);
        format!("http://{a}/v1")
    };
    let (good, _, count) = server(vec![]);
    let mut c = cfg(dead.clone());
    c.urls.push(good);
    c.concurrency = 4;
    c.cooldown_s = 30.0;
    let mut b = HttpBackend::new(c, "m").unwrap();
    let got = answers(&mut b, (0..12).map(req));
    assert!(got.values().all(|r| r.is_ok()), "{got:?}");
    assert_eq!(got.len(), 12);
    assert_eq!(count.load(Ordering::SeqCst), 12);
    // only the dead replica: an outage, not a request fault; requests wait
    // for a probe to get through and fail once http.max_outage_s has passed
    let mut c = cfg(dead);
    c.max_retries = 2;
    c.cooldown_s = 0.05;
    c.cooldown_max_s = 0.1;
    c.max_outage_s = 0.5;
    let mut b = HttpBackend::new(c, "m").unwrap();
    let got = answers(&mut b, (0..2).map(req));
    assert_eq!(got.len(), 2);
    for e in got.values() {
        let e = e.as_ref().unwrap_err();
        assert!(
            e.contains("no replica reachable") && e.contains("connection error"),
            "{e}"
        );
    }
    assert_eq!(
        b.stats.outages.load(Ordering::SeqCst),
        1,
        "one outage, however many requests saw it"
    );
    let probes = b.stats.probes.load(Ordering::SeqCst);
    assert!(
        (3..=12).contains(&probes),
        "one probe per interval, not one per request and retry: {probes}"
    );
}

/// Serve every request on `l` after `work` of simulated work, counting
/// concurrent requests; above `max_inflight` at once the server answers 429
/// instead. Records bodies and when each answer went out.
struct Recorder {
    bodies: Mutex<Vec<serde_json::Value>>,
    served_at: Mutex<Vec<Instant>>,
    inflight: AtomicUsize,
    rejected: AtomicUsize,
}

fn serve_on(l: TcpListener, max_inflight: usize, work: Duration) -> Arc<Recorder> {
    let rec = Arc::new(Recorder {
        bodies: Mutex::new(vec![]),
        served_at: Mutex::new(vec![]),
        inflight: AtomicUsize::new(0),
        rejected: AtomicUsize::new(0),
    });
    let rec2 = rec.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let rec = rec2.clone();
            std::thread::spawn(move || {
                let Some((_, body)) = read_request(&mut s) else {
                    return;
                };
                let v: serde_json::Value = serde_json::from_str(&body).unwrap();
                let content = v["messages"][0]["content"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                rec.bodies.lock().unwrap().push(v);
                if rec.inflight.fetch_add(1, Ordering::SeqCst) >= max_inflight {
                    rec.inflight.fetch_sub(1, Ordering::SeqCst);
                    rec.rejected.fetch_add(1, Ordering::SeqCst);
                    return respond(
                        &mut s,
                        429,
                        "Retry-After: 0\r\n",
                        "{\"error\":\"too many\"}",
                    );
                }
                std::thread::sleep(work);
                rec.served_at.lock().unwrap().push(Instant::now());
                rec.inflight.fetch_sub(1, Ordering::SeqCst);
                respond(&mut s, 200, "", &ok_body(&format!("answer to {content}")));
            });
        }
    });
    rec
}

#[test]
fn the_only_replica_goes_away_and_comes_back() {
    // a port with nobody listening: connection refused until the server starts
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let started = Arc::new(Mutex::new(None::<(Instant, Arc<Recorder>)>));
    let started2 = started.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        let l = TcpListener::bind(addr).unwrap();
        let rec = serve_on(l, usize::MAX, Duration::ZERO);
        *started2.lock().unwrap() = Some((Instant::now(), rec));
    });
    let mut c = cfg(format!("http://{addr}/v1"));
    c.concurrency = 8;
    c.max_retries = 1; // an outage must not use up retries
    c.cooldown_s = 0.1;
    c.cooldown_max_s = 0.4;
    let mut b = HttpBackend::new(c, "m").unwrap();
    let got = answers(&mut b, (0..24).map(req));
    assert_eq!(got.len(), 24);
    assert!(got.values().all(|r| r.is_ok()), "{got:?}");
    let (up_at, rec) = started.lock().unwrap().take().unwrap();
    let first = rec.served_at.lock().unwrap().iter().min().copied().unwrap();
    let idle = first.duration_since(up_at);
    // one probe interval (0.4 s) at most, plus scheduling slack
    assert!(
        idle < Duration::from_millis(900),
        "client idle {idle:?} after the server came back"
    );
    eprintln!(
        "idle after the server came back: {idle:?}; probes {}",
        b.stats.probes.load(Ordering::SeqCst)
    );
    assert_eq!(
        b.stats.outages.load(Ordering::SeqCst),
        1,
        "8 failing in-flight requests are one outage"
    );
    let probes = b.stats.probes.load(Ordering::SeqCst);
    // 0.1, 0.2, 0.4, 0.4, … over 1.5 s: about 5 probes, not 8 requests × retries
    assert!((2..=10).contains(&probes), "{probes} probes");
    assert_eq!(b.stats.failed.load(Ordering::SeqCst), 0);
}

#[test]
fn a_replica_that_answers_429_gets_fewer_requests_at_once() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    let rec = serve_on(l, 2, Duration::from_millis(30));
    let mut c = cfg(url);
    c.concurrency = 16;
    c.max_retries = 50;
    let mut b = HttpBackend::new(c, "m").unwrap();
    let got = answers(&mut b, (0..60).map(req));
    assert!(got.values().all(|r| r.is_ok()), "{got:?}");
    assert_eq!(got.len(), 60);
    let rejected = rec.rejected.load(Ordering::SeqCst);
    let limit = b.replica_limits()[0];
    eprintln!("429s: {rejected}, final limit {limit}");
    assert!(
        limit <= 4,
        "the limit came down towards what the server takes: {limit}"
    );
    // a fixed limit of 16 against a server taking 2 draws hundreds of 429s
    assert!(rejected <= 60, "{rejected} 429s for 60 requests");
}

/// A server whose answer time grows with the requests it holds (`per_request`
/// each, as a server queueing behind its batch does).
fn queueing_server(l: TcpListener, per_request: Duration) {
    let inflight = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let inflight = inflight.clone();
            std::thread::spawn(move || {
                if read_request(&mut s).is_none() {
                    return;
                }
                let n = inflight.fetch_add(1, Ordering::SeqCst) + 1;
                std::thread::sleep(per_request * n as u32);
                inflight.fetch_sub(1, Ordering::SeqCst);
                respond(&mut s, 200, "", &ok_body("ok"));
            });
        }
    });
}

#[test]
fn slow_answers_lower_the_limit_before_requests_time_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    // 40 at once answer in 0.8 s: under the 1 s timeout, over half of it
    queueing_server(l, Duration::from_millis(20));
    let mut c = cfg(url);
    c.concurrency = 40;
    c.max_retries = 0;
    let mut b = HttpBackend::new(c, "m").unwrap();
    let got = answers(&mut b, (0..200).map(req));
    assert_eq!(got.len(), 200);
    assert!(got.values().all(|r| r.is_ok()), "a request failed");
    let limit = b.replica_limits()[0];
    eprintln!("final limit {limit}");
    // 25 at once answer in 0.5 s: the limit settles near there, not at 40
    assert!(
        (10..=34).contains(&limit),
        "the limit follows the answer time: {limit}"
    );
    assert_eq!(b.stats.outages.load(Ordering::SeqCst), 0);
}

#[test]
fn each_grammar_field_reaches_the_server_as_its_api_names_it() {
    use backforth_inference::config::GrammarField;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", l.local_addr().unwrap());
    let rec = serve_on(l, usize::MAX, Duration::ZERO);
    let g = "root ::= [1-5]";
    let cases: [(GrammarField, &[&str], Option<&str>); 5] = [
        (GrammarField::None, &[], None),
        (GrammarField::LlamaCpp, &["grammar"], Some("grammar")),
        (
            GrammarField::Vllm,
            &["structured_outputs", "grammar"],
            Some("structured_outputs"),
        ),
        (
            GrammarField::VllmLegacy,
            &["guided_grammar"],
            Some("guided_grammar"),
        ),
        (GrammarField::Sglang, &["ebnf"], Some("ebnf")),
    ];
    let known = ["grammar", "structured_outputs", "guided_grammar", "ebnf"];
    for (field, path, top) in cases {
        let mut c = cfg(url.clone());
        c.grammar_field = field;
        let mut b = HttpBackend::new(c, "m").unwrap();
        let mut r = req(1);
        r.grammar = Some(g.into());
        assert!(answers(&mut b, std::iter::once(r))[&1].is_ok());
        let body = rec.bodies.lock().unwrap().pop().unwrap();
        let mut v = &body;
        for p in path {
            v = &v[*p];
        }
        if !path.is_empty() {
            assert_eq!(v.as_str(), Some(g), "{field:?}: {body}");
        }
        for k in known {
            assert_eq!(
                body.get(k).is_some(),
                top == Some(k),
                "{field:?} sends only its own field: {body}"
            );
        }
    }
}
