//! Seed pairs (x, y): human-written instruction → response examples (Li et
//! al. 2023 §2.1 use 3,200 OpenAssistant pairs). Shown as few-shot examples to
//! an instruct model standing in for the backward model.

use anyhow::{Context, Result};
use backforth_corpus::readers::io::{open_decompressed, read_line_bounded, Line};
use backforth_corpus::readers::InputStats;
use serde::{Deserialize, Serialize};
use std::io::BufReader;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seed {
    pub instruction: String,
    pub response: String,
}

/// Read seed pairs from JSONL (`instruction` + `response`, or Alpaca's `output`).
/// Bad lines are skipped and counted in `stats` under `seed_*` reasons.
/// Errors: the file cannot be opened.
pub fn read_seeds(path: &Path, max_line_bytes: usize, stats: &mut InputStats) -> Result<Vec<Seed>> {
    let r = open_decompressed(path).with_context(|| format!("opening seeds {}", path.display()))?;
    let mut r = BufReader::new(r);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let p = path.display();
    for line in 1u64.. {
        match read_line_bounded(&mut r, &mut buf, max_line_bytes) {
            Ok(Line::Eof) => break,
            Ok(Line::TooLong(n)) => stats.skip("seed_line_too_long", format!("{p}:{line}: seed line of {n} bytes skipped")),
            Ok(Line::Full) => {
                if buf.iter().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                #[derive(Deserialize)]
                struct Raw {
                    instruction: Option<String>,
                    response: Option<String>,
                    output: Option<String>,
                }
                match serde_json::from_slice::<Raw>(&buf) {
                    Ok(Raw { instruction: Some(i), response, output }) if response.is_some() || output.is_some() => {
                        let resp = response.or(output).unwrap_or_default();
                        if i.trim().is_empty() || resp.trim().is_empty() {
                            stats.skip("seed_empty", format!("{p}:{line}: empty instruction or response, skipped"));
                        } else {
                            out.push(Seed { instruction: i, response: resp });
                        }
                    }
                    Ok(_) => stats.skip("seed_missing_field", format!("{p}:{line}: needs `instruction` and `response`, skipped")),
                    Err(e) => stats.skip("seed_invalid_json", format!("{p}:{line}: invalid seed JSON ({e}), skipped")),
                }
            }
            Err(e) => {
                stats.skip("seed_read_error", format!("{p}:{line}: read error ({e}); rest of the seed file skipped"));
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.jsonl");
        std::fs::write(&p, "{\"instruction\":\"Q\",\"response\":\"A\"}\n\n{\"instruction\":\"Q2\",\"output\":\"A2\"}\nnot json\n{\"instruction\":\"Q3\"}\n").unwrap();
        let mut st = InputStats::default();
        let s = read_seeds(&p, 1 << 20, &mut st).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].response, "A2");
        assert_eq!(st.skipped["seed_invalid_json"], 1);
        assert_eq!(st.skipped["seed_missing_field"], 1);
    }
}
