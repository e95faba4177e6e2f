//! A real S3 server on loopback for tests: moto's `moto.server` (PyPI
//! `moto[s3]`, installed by `scripts/fetch-assets.sh moto` into the asset
//! cache), started on a free port and stopped by its PID when dropped.
//! Shared by the object-storage tests of several crates (`#[path]`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The secret key the server is given: tests check it never reaches a log.
pub const SECRET: &str = "s3cr3t-never-logged-7f1c";

pub struct Moto {
    child: Child,
    pub endpoint: String,
    pub log: PathBuf,
}

impl Moto {
    /// Start moto's S3 server, or `None` with a message when it is not
    /// installed (outside CI; under `CI` a missing server fails the test).
    pub fn start(dir: &std::path::Path) -> Option<Moto> {
        let cache = std::env::var("BACKFORTH_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/backforth")
            });
        let py = cache.join("python/moto-5.2.5");
        if !py.join(".complete").exists() {
            let msg = format!(
                "moto S3 server not installed at {}: run scripts/fetch-assets.sh moto",
                py.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{msg}");
            eprintln!("SKIPPED: {msg}");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("moto.log");
        let f = std::fs::File::create(&log).unwrap();
        let child = Command::new("python3")
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .env("PYTHONPATH", &py)
            .stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .spawn()
            .expect("python3 runs moto.server");
        let m = Moto {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "moto did not listen in 60 s: {}",
                std::fs::read_to_string(&m.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        Some(m)
    }

    /// Start the server, point this process's S3 clients at it (the
    /// environment of [`Moto::env`]) and create `bucket`; `None` as
    /// [`Moto::start`].
    pub fn with_bucket(dir: &std::path::Path, bucket: &str) -> Option<Moto> {
        let m = Moto::start(dir)?;
        for (k, v) in m.env() {
            std::env::set_var(k, v);
        }
        m.bucket(bucket);
        Some(m)
    }

    /// Create a bucket (a plain path-style PUT; moto does not check signatures).
    pub fn bucket(&self, name: &str) {
        let addr = self.endpoint.trim_start_matches("http://");
        let mut s = TcpStream::connect(addr).unwrap();
        write!(s, "PUT /{name} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "create bucket {name}: {resp}"
        );
    }

    /// The environment a client needs: endpoint, plain HTTP, credentials, region.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
