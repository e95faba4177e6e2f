//! Progress displays: indicatif bars (items, tokens/s, ETA) on a terminal,
//! periodic log lines otherwise.

use backforth::pipeline::ProgressFactory;
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// `backforth prepare` with a spinner (documents read, kept, documents/s; the
/// input is streamed, so there is no total), or a log line per 100,000
/// documents when stderr is not a terminal.
pub fn prepare_with_progress(
    cfg: &backforth::config::Config,
    quiet: bool,
) -> anyhow::Result<backforth::prepare::PrepareStats> {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal() && !quiet;
    let pb = if tty {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{spinner} prepare: {pos} documents read, {msg} [{elapsed_precise}, {per_sec}]",
        )
        .unwrap(),
    );
    let t0 = std::time::Instant::now();
    let mut last_log = 0u64;
    let mut provider = crate::provider::Provider::new(cfg);
    let embedder = backforth::pipeline::doc_filter_embedder(cfg, &mut provider)?;
    let st = backforth::prepare::prepare_with_progress(cfg, embedder, &mut |docs, kept| {
        pb.set_position(docs);
        pb.set_message(format!("{kept} candidates kept"));
        if !tty && !quiet && docs >= last_log + 100_000 {
            last_log = docs;
            eprintln!(
                "prepare: {docs} documents read, {kept} kept, {:.0} documents/s",
                docs as f64 / t0.elapsed().as_secs_f64().max(1e-9)
            );
        }
    });
    pb.finish_and_clear();
    st
}

/// indicatif bars: items, generated tokens/s, ETA. When stderr is not a
/// terminal the bar is hidden and a log line is written every 5%.
pub struct Bars {
    pub quiet: bool,
}

impl ProgressFactory for Bars {
    fn start(&mut self, stage: &str, total: u64) -> Box<dyn FnMut(u64, u64, u64, f64)> {
        let pb = if self.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total)
        };
        pb.set_style(
            ProgressStyle::with_template("{prefix:>13} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb.set_prefix(stage.to_string());
        let log_every = (total / 20).max(1);
        let name = stage.to_string();
        let tty = !pb.is_hidden();
        Box::new(move |done, prompt_tokens, tokens, elapsed| {
            let tps = if elapsed > 0.0 {
                tokens as f64 / elapsed
            } else {
                0.0
            };
            let all = if elapsed > 0.0 {
                (tokens + prompt_tokens) as f64 / elapsed
            } else {
                0.0
            };
            pb.set_position(done);
            pb.set_message(format!("{tps:.1} gen tok/s, {all:.0} total tok/s"));
            if !tty && (done % log_every == 0 || done == total) {
                let eta = if done > 0 {
                    elapsed / done as f64 * (total.saturating_sub(done)) as f64
                } else {
                    0.0
                };
                tracing::info!("{name}: {done}/{total} records, {tps:.1} generated tok/s, {all:.0} total tok/s, ETA {eta:.0}s");
            }
            if done == total {
                pb.finish();
            }
        })
    }
}

/// An indicatif bar of `total` items labelled `prefix` (hidden when `quiet`).
pub fn bar(quiet: bool, total: u64, prefix: &str) -> ProgressBar {
    let pb = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>10} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, ETA {eta}) {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    pb.set_prefix(prefix.to_string());
    pb
}

/// A progress callback for [`eval::generate`] / [`eval::judge_pairs`] on `pb`
/// (items, generated tokens/s, ETA; a log line every 10% when not on a terminal).
pub fn progress_fn<'a>(
    pb: &'a ProgressBar,
    name: &'static str,
) -> impl FnMut(usize, usize, u64) + 'a {
    let start = Instant::now();
    let mut last_log = 0usize;
    move |done, total, tokens| {
        let el = start.elapsed().as_secs_f64();
        pb.set_length(total as u64);
        pb.set_position(done as u64);
        pb.set_message(format!(
            "{:.1} gen tok/s",
            if el > 0.0 { tokens as f64 / el } else { 0.0 }
        ));
        if pb.is_hidden() && (done >= last_log + total.div_ceil(10).max(1) || done == total) {
            last_log = done;
            tracing::info!(
                "{name}: {done}/{total}, {:.1} generated tok/s",
                if el > 0.0 { tokens as f64 / el } else { 0.0 }
            );
        }
    }
}

/// [`backforth_inference::progress::Progress`] on an indicatif bar; when the
/// bar is hidden (quiet, or not a terminal) a log line every 10% instead.
pub struct BarProgress {
    pb: ProgressBar,
    name: String,
    last_log: u64,
}

impl BarProgress {
    /// A bar labelled `name` (hidden when `quiet`).
    pub fn new(quiet: bool, name: &str) -> Self {
        BarProgress { pb: bar(quiet, 0, name), name: name.to_string(), last_log: 0 }
    }
}

impl backforth_inference::progress::Progress for BarProgress {
    fn update(&mut self, done: u64, total: u64, message: &str) {
        self.pb.set_length(total);
        self.pb.set_position(done);
        self.pb.set_message(message.to_string());
        if self.pb.is_hidden() && (done >= self.last_log + total.div_ceil(10).max(1) || done == total) {
            self.last_log = done;
            tracing::info!("{}: {done}/{total} {message}", self.name);
        }
    }
    fn finish(&mut self) {
        self.pb.finish_and_clear();
    }
}
