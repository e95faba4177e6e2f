//! Response cache in SQLite (WAL mode), shared by every backend.
//!
//! Key = blake3 of (backend model id, full chat messages, sampling parameters
//! including the seed, grammar). A rerun, a resumed run or another run with
//! the same settings gets the completion back without asking the model again;
//! any change to the prompt or a parameter misses. Only successful
//! completions are stored.

use crate::backend::{Backend, FinishReason, GenOutput, GenRequest, Sink};
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::cell::RefCell;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// The cache key of a request for a model, 32 hex chars. `top_logprobs`
/// enters the key only when asked for, so keys of plain requests are those
/// of caches written before log-probabilities existed.
pub fn request_key(model_id: &str, r: &GenRequest) -> String {
    let mut v = serde_json::json!({
        "model": model_id,
        "messages": r.messages,
        "sampling": r.sampling,
        "grammar": r.grammar,
    });
    if r.top_logprobs > 0 {
        v["top_logprobs"] = r.top_logprobs.into();
    }
    blake3::hash(v.to_string().as_bytes()).to_hex()[..32].to_string()
}

/// An open cache file.
pub struct ResponseCache {
    conn: Connection,
}

/// `backforth cache stats` output.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CacheStats {
    pub entries: u64,
    pub hits: u64,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub bytes: u64,
    /// Entries per model id.
    pub models: Vec<(String, u64)>,
}

impl ResponseCache {
    /// Open or create. Errors: SQLite open/schema failures.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(d) = path.parent() {
            std::fs::create_dir_all(d).ok();
        }
        let conn =
            Connection::open(path).with_context(|| format!("opening cache {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS responses (
                key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,
                prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, finish TEXT NOT NULL,
                created REAL NOT NULL, last_hit REAL, hits INTEGER NOT NULL DEFAULT 0)",
        )?;
        // caches written before log-probabilities were kept lack the column
        let has_logprobs: i64 = conn.query_row(
            "SELECT COUNT(*) FROM pragma_table_info('responses') WHERE name = 'logprobs'",
            [],
            |r| r.get(0),
        )?;
        if has_logprobs == 0 {
            conn.execute_batch("ALTER TABLE responses ADD COLUMN logprobs TEXT")?;
        }
        Ok(ResponseCache { conn })
    }

    /// Look up (and count the hit). Errors: SQLite failures.
    pub fn get(&self, key: &str) -> Result<Option<GenOutput>> {
        let row = self
            .conn
            .query_row("SELECT text, prompt_tokens, completion_tokens, finish, logprobs FROM responses WHERE key = ?1", [key], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, u32>(1)?, r.get::<_, u32>(2)?, r.get::<_, String>(3)?, r.get::<_, Option<String>>(4)?))
            })
            .optional()?;
        Ok(match row {
            Some((text, p, c, f, lp)) => {
                self.conn.execute(
                    "UPDATE responses SET hits = hits + 1, last_hit = ?2 WHERE key = ?1",
                    params![key, now()],
                )?;
                let finish = if f == "length" {
                    FinishReason::Length
                } else {
                    FinishReason::Stop
                };
                // an unreadable column is a miss in effect: no log-probabilities
                let logprobs = lp
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or_default();
                Some(GenOutput {
                    text,
                    prompt_tokens: p,
                    completion_tokens: c,
                    finish,
                    cached_prompt_tokens: p,
                    logprobs,
                })
            }
            None => None,
        })
    }

    /// Store a completion. Errors: SQLite failures.
    pub fn put(&self, key: &str, model: &str, o: &GenOutput) -> Result<()> {
        let lp = if o.logprobs.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&o.logprobs)?)
        };
        self.conn.execute(
            "INSERT OR REPLACE INTO responses (key, model, text, prompt_tokens, completion_tokens, finish, created, hits, logprobs)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8)",
            params![key, model, o.text, o.prompt_tokens, o.completion_tokens, o.finish.as_str(), now(), lp],
        )?;
        Ok(())
    }

    /// Counts and sizes. Errors: SQLite failures.
    pub fn stats(&self) -> Result<CacheStats> {
        let (entries, hits, p, c, bytes) = self.conn.query_row(
            "SELECT COUNT(*), COALESCE(SUM(hits),0), COALESCE(SUM(prompt_tokens),0), COALESCE(SUM(completion_tokens),0), COALESCE(SUM(LENGTH(text)),0) FROM responses",
            [],
            |r| Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?, r.get::<_, u64>(2)?, r.get::<_, u64>(3)?, r.get::<_, u64>(4)?)),
        )?;
        let mut st = self
            .conn
            .prepare("SELECT model, COUNT(*) FROM responses GROUP BY model ORDER BY model")?;
        let models = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CacheStats {
            entries,
            hits,
            prompt_tokens: p,
            completion_tokens: c,
            bytes,
            models,
        })
    }

    /// Copy every entry of the cache file `other` that this cache lacks (by
    /// key; an entry both have is kept as it is here): how the per-shard
    /// caches of a sharded run become one. `other` is opened as a cache
    /// first, so an older file gains the columns it lacks. Returns entries
    /// added. Errors: SQLite failures, `other` not a cache.
    pub fn merge_from(&self, other: &Path) -> Result<u64> {
        anyhow::ensure!(other.is_file(), "{} does not exist", other.display());
        drop(ResponseCache::open(other)?);
        self.conn
            .execute("ATTACH DATABASE ?1 AS other", [other.display().to_string()])
            .with_context(|| format!("attaching {}", other.display()))?;
        let n = self.conn.execute(
            "INSERT OR IGNORE INTO responses (key, model, text, prompt_tokens, completion_tokens, finish, created, last_hit, hits, logprobs)
             SELECT key, model, text, prompt_tokens, completion_tokens, finish, created, last_hit, hits, logprobs FROM other.responses",
            [],
        );
        self.conn.execute_batch("DETACH DATABASE other")?;
        Ok(n? as u64)
    }

    /// Delete entries created more than `older_than_days` ago and never hit
    /// since then (or all of a model with `model`). Returns rows deleted.
    pub fn prune(&self, older_than_days: f64, model: Option<&str>) -> Result<u64> {
        let cutoff = now() - older_than_days * 86400.0;
        let n = match model {
            Some(m) => self.conn.execute(
                "DELETE FROM responses WHERE model = ?1 AND created < ?2 AND COALESCE(last_hit, 0) < ?2",
                params![m, cutoff],
            )?,
            None => self.conn.execute("DELETE FROM responses WHERE created < ?1 AND COALESCE(last_hit, 0) < ?1", params![cutoff])?,
        };
        self.conn.execute_batch("VACUUM")?;
        Ok(n as u64)
    }
}

/// A backend behind the cache: hits are answered at once, misses go to the
/// inner backend and their successful completions are stored before the
/// caller sees them.
pub struct CachedBackend {
    pub inner: Box<dyn Backend>,
    pub cache: ResponseCache,
    /// Requests answered from the cache so far.
    pub hits: u64,
    /// Requests sent to the inner backend so far.
    pub misses: u64,
}

impl Backend for CachedBackend {
    fn model_id(&self) -> String {
        self.inner.model_id()
    }

    fn generate(
        &mut self,
        requests: &mut dyn Iterator<Item = GenRequest>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let model = self.inner.model_id();
        let cache = &self.cache;
        let sink = RefCell::new(sink);
        let keys: RefCell<std::collections::HashMap<u64, String>> =
            RefCell::new(Default::default());
        let err: RefCell<Option<anyhow::Error>> = RefCell::new(None);
        let hits = RefCell::new(0u64);
        let misses = RefCell::new(0u64);
        let mut filtered = std::iter::from_fn(|| loop {
            if err.borrow().is_some() {
                return None;
            }
            let r = requests.next()?;
            let k = request_key(&model, &r);
            match cache.get(&k) {
                Ok(Some(out)) => {
                    *hits.borrow_mut() += 1;
                    if let Err(e) = (sink.borrow_mut())(r.tag, Ok(out)) {
                        *err.borrow_mut() = Some(e);
                        return None;
                    }
                }
                Ok(None) => {
                    *misses.borrow_mut() += 1;
                    keys.borrow_mut().insert(r.tag, k);
                    return Some(r);
                }
                Err(e) => {
                    *err.borrow_mut() = Some(e);
                    return None;
                }
            }
        });
        let mut inner_sink = |tag: u64, res: Result<GenOutput, String>| -> Result<()> {
            if let Ok(o) = &res {
                if let Some(k) = keys.borrow_mut().remove(&tag) {
                    cache.put(&k, &model, o)?;
                }
            }
            (sink.borrow_mut())(tag, res)
        };
        let r = self.inner.generate(&mut filtered, &mut inner_sink);
        drop(filtered);
        self.hits += hits.into_inner();
        self.misses += misses.into_inner();
        r?;
        if let Some(e) = err.into_inner() {
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{ChatMessage, Sampling};

    fn req(tag: u64, text: &str, seed: u64) -> GenRequest {
        GenRequest {
            top_logprobs: 0,
            tag,
            messages: vec![ChatMessage {
                role: "user".into(),
                content: text.into(),
            }],
            sampling: Sampling {
                temperature: 1.0,
                top_p: 0.9,
                max_tokens: 8,
                seed,
                stop: vec![],
            },
            grammar: None,
            raw_prompt: false,
        }
    }

    /// Counts calls; echoes the prompt.
    struct Echo(u64);
    impl Backend for Echo {
        fn model_id(&self) -> String {
            "echo".into()
        }
        fn generate(
            &mut self,
            requests: &mut dyn Iterator<Item = GenRequest>,
            sink: &mut Sink<'_>,
        ) -> Result<()> {
            for r in requests {
                self.0 += 1;
                let res = if r.messages[0].content == "fail" {
                    Err("boom".to_string())
                } else {
                    Ok(GenOutput {
                        text: format!("re: {}", r.messages[0].content),
                        prompt_tokens: 3,
                        completion_tokens: 2,
                        finish: FinishReason::Stop,
                        cached_prompt_tokens: 0,
                        logprobs: vec![],
                    })
                };
                sink(r.tag, res)?;
            }
            Ok(())
        }
    }

    #[test]
    fn keys_change_with_every_input() {
        let base = request_key("m", &req(1, "a", 1));
        assert_eq!(
            base,
            request_key("m", &req(2, "a", 1)),
            "the tag is not part of the key"
        );
        assert_ne!(base, request_key("m2", &req(1, "a", 1)));
        assert_ne!(base, request_key("m", &req(1, "b", 1)));
        assert_ne!(base, request_key("m", &req(1, "a", 2)));
        let mut g = req(1, "a", 1);
        g.grammar = Some("root ::= \"x\"".into());
        assert_ne!(base, request_key("m", &g));
        let mut t = req(1, "a", 1);
        t.sampling.temperature = 0.5;
        assert_ne!(base, request_key("m", &t));
        let mut l = req(1, "a", 1);
        l.top_logprobs = 5;
        assert_ne!(base, request_key("m", &l));
    }

    #[test]
    fn per_shard_caches_merge_into_one_without_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let out = |t: &str| GenOutput {
            text: t.into(),
            prompt_tokens: 3,
            completion_tokens: 1,
            finish: FinishReason::Stop,
            cached_prompt_tokens: 0,
            logprobs: vec![],
        };
        let (a, b, into) = (
            dir.path().join("a.sqlite"),
            dir.path().join("b.sqlite"),
            dir.path().join("all.sqlite"),
        );
        let ca = ResponseCache::open(&a).unwrap();
        ca.put("k1", "m", &out("from a")).unwrap();
        ca.put("shared", "m", &out("a's answer")).unwrap();
        let cb = ResponseCache::open(&b).unwrap();
        cb.put("k2", "m", &out("from b")).unwrap();
        cb.put("shared", "m", &out("b's answer")).unwrap();
        let all = ResponseCache::open(&into).unwrap();
        assert_eq!(all.merge_from(&a).unwrap(), 2);
        assert_eq!(
            all.merge_from(&b).unwrap(),
            1,
            "the shared key is not copied twice"
        );
        assert_eq!(all.merge_from(&b).unwrap(), 0, "merging again adds nothing");
        assert_eq!(all.stats().unwrap().entries, 3);
        assert_eq!(all.get("shared").unwrap().unwrap().text, "a's answer");
        assert_eq!(all.get("k2").unwrap().unwrap().text, "from b");
        let missing = dir.path().join("missing.sqlite");
        assert!(
            all.merge_from(&missing).is_err() && !missing.exists(),
            "a missing file is an error, not a new cache"
        );
    }

    #[test]
    fn logprobs_survive_the_cache_and_old_files_gain_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            // a cache file as written before log-probabilities were kept
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE responses (key TEXT PRIMARY KEY, model TEXT NOT NULL, text TEXT NOT NULL,
                 prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, finish TEXT NOT NULL,
                 created REAL NOT NULL, last_hit REAL, hits INTEGER NOT NULL DEFAULT 0);
                 INSERT INTO responses VALUES ('old', 'm', 'hi', 3, 1, 'stop', 0, NULL, 0);",
            )
            .unwrap();
        }
        let cache = ResponseCache::open(&path).unwrap();
        let old = cache.get("old").unwrap().unwrap();
        assert_eq!((old.text.as_str(), old.logprobs.len()), ("hi", 0));
        let lp = vec![crate::TokenLogprobs {
            token: " A".into(),
            logprob: -0.1,
            top: vec![(" A".into(), -0.1), (" B".into(), -2.4)],
        }];
        let o = GenOutput {
            text: " A".into(),
            prompt_tokens: 4,
            completion_tokens: 1,
            finish: FinishReason::Stop,
            cached_prompt_tokens: 0,
            logprobs: lp.clone(),
        };
        cache.put("new", "m", &o).unwrap();
        assert_eq!(cache.get("new").unwrap().unwrap().logprobs, lp);
        drop(cache);
        // opening again does not add the column twice
        ResponseCache::open(&path).unwrap();
    }

    #[test]
    fn cached_backend_hits_misses_and_skips_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let mut cb = CachedBackend {
            inner: Box::new(Echo(0)),
            cache: ResponseCache::open(&path).unwrap(),
            hits: 0,
            misses: 0,
        };
        let mut got = Vec::new();
        let mut reqs = vec![req(1, "a", 1), req(2, "fail", 1), req(3, "b", 1)].into_iter();
        cb.generate(&mut reqs, &mut |t, r| {
            got.push((t, r.map(|o| o.text)));
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!((cb.hits, cb.misses), (0, 3));
        // second pass, fresh cache handle: a and b are hits, the failure is retried
        let mut cb = CachedBackend {
            inner: Box::new(Echo(0)),
            cache: ResponseCache::open(&path).unwrap(),
            hits: 0,
            misses: 0,
        };
        let mut got = Vec::new();
        let mut reqs = vec![
            req(7, "a", 1),
            req(8, "fail", 1),
            req(9, "b", 1),
            req(10, "b", 2),
        ]
        .into_iter();
        cb.generate(&mut reqs, &mut |t, r| {
            got.push((t, r.map(|o| o.text)));
            Ok(())
        })
        .unwrap();
        assert_eq!((cb.hits, cb.misses), (2, 2));
        got.sort_by_key(|(t, _)| *t);
        assert_eq!(got[0], (7, Ok("re: a".to_string())));
        assert_eq!(got[1].1, Err("boom".to_string()));
        let st = cb.cache.stats().unwrap();
        assert_eq!(st.entries, 3);
        assert_eq!(st.hits, 2);
        assert_eq!(
            cb.cache.prune(1.0, None).unwrap(),
            0,
            "nothing is a day old"
        );
        assert_eq!(cb.cache.prune(0.0, Some("other-model")).unwrap(), 0);
        assert_eq!(cb.cache.prune(-1.0, None).unwrap(), 3);
        assert_eq!(cb.cache.stats().unwrap().entries, 0);
    }
}
