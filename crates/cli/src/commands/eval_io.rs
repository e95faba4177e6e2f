//! Helpers shared by `generate` and `eval`: sampling settings, the work-file path, input problems.

use backforth_inference::Sampling;
use backforth_measure::eval;
use std::path::{Path, PathBuf};

/// Sampling for evaluation answers and verdicts: greedy at temperature 0,
/// else top-p 0.95; `max_tokens` generated tokens at most.
pub fn sampling(max_tokens: u32, temperature: f32, seed: u64) -> Sampling {
    Sampling {
        temperature,
        top_p: if temperature > 0.0 { 0.95 } else { 1.0 },
        max_tokens,
        seed,
        stop: vec![],
    }
}

/// The resume file beside an output file: `<file>.work.jsonl`.
pub fn work_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".work.jsonl");
    PathBuf::from(s)
}

/// Print how many input items were skipped, with their file:line messages.
pub fn report_issues(i: &eval::InputIssues) {
    if i.skipped > 0 {
        eprintln!("input: {} items skipped", i.skipped);
        for m in &i.messages {
            eprintln!("  {m}");
        }
    }
}
