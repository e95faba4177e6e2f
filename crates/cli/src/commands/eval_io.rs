//! Helpers shared by `generate` and `eval`: sampling settings, the work-file path, input problems.

use backforth_inference::Sampling;
use backforth_measure::eval::{self};
use std::path::{Path, PathBuf};

pub fn sampling(max_tokens: u32, temperature: f32, seed: u64) -> Sampling {
    Sampling { temperature, top_p: if temperature > 0.0 { 0.95 } else { 1.0 }, max_tokens, seed, stop: vec![] }
}

pub fn work_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".work.jsonl");
    PathBuf::from(s)
}

pub fn report_issues(i: &eval::InputIssues) {
    if i.skipped > 0 {
        eprintln!("input: {} items skipped", i.skipped);
        for m in &i.messages {
            eprintln!("  {m}");
        }
    }
}
