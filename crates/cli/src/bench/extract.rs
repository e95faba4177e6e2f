//! `backforth bench-extract`: HTML main-content extraction quality (token F1 against reference texts) and pages/s.

use crate::cli::ExtractBenchArgs;
use anyhow::Result;
use std::path::PathBuf;

/// Run this command with its parsed flags. Errors go back to `main`, which prints them and exits with status 1.
pub fn run(a: ExtractBenchArgs) -> Result<()> {
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
        let Ok(reference) = std::fs::read_to_string(&r) else {
            continue;
        };
        let html = String::from_utf8_lossy(&std::fs::read(p)?).into_owned();
        let t0 = std::time::Instant::now();
        let got = backforth_corpus::readers::html::html_to_text(&html, None);
        secs += t0.elapsed().as_secs_f64();
        n += 1;
        match got {
            Ok((_, t)) => {
                let (pr, rc, f) = backforth_corpus::readers::html::token_f1(&t, &reference);
                sp += pr;
                sr += rc;
                sf += f;
            }
            Err(_) => failed += 1,
        }
    }
    anyhow::ensure!(
        n > 0,
        "no HTML page under {} has a reference under {}",
        a.html.display(),
        a.reference.display()
    );
    let m = n as f64;
    println!(
        "{}",
        serde_json::json!({"pages": n, "no_content": failed, "precision": sp / m, "recall": sr / m, "f1": sf / m, "pages_per_s": m / secs.max(1e-9)})
    );
    Ok(())
}
