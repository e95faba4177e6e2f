//! Benchmarks, apart from the user commands: each measures one part against
//! a peer or a ceiling; numbers and commands are in BENCHMARKS.md.

pub mod checks;
pub mod client;
pub mod embed;
pub mod engine;
pub mod extract;
pub mod grammar;
pub mod mauve;

use crate::cli::{BenchArgs, BenchCmd};

/// `backforth bench …`; a bare `bench` with engine flags is the engine benchmark (its earlier form).
pub fn run(cmd: Option<BenchCmd>, engine: Option<BenchArgs>) -> anyhow::Result<()> {
    match (cmd, engine) {
        (Some(BenchCmd::Engine(a)), _) | (None, Some(a)) => engine::run(a),
        (Some(BenchCmd::Client(a)), _) => client::run(a),
        (Some(BenchCmd::Extract(a)), _) => extract::run(a),
        (Some(BenchCmd::Embed(a)), _) => embed::run(a),
        (Some(BenchCmd::Mauve(a)), _) => mauve::run(a),
        (Some(BenchCmd::Grammar(a)), _) => grammar::run(a),
        (Some(BenchCmd::Checks(a)), _) => checks::run(a),
        (None, None) => anyhow::bail!(
            "backforth bench engine|client|extract|embed|mauve|grammar|checks (see BENCHMARKS.md)"
        ),
    }
}
