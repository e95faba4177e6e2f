//! One module per command: each takes its parsed flags (`crate::cli`) and
//! does the work through the library crates. Commands print results to the
//! terminal; they never exit the process (that is `main`'s job).

pub mod analyze;
pub mod batch;
pub mod cache;
pub mod checks;
pub mod config;
pub mod doc_filter;
pub mod eval;
mod eval_io;
pub mod generate;
pub mod launch;
pub mod prepare;
pub mod report;
pub mod run;
pub mod selfalign;
pub mod serve;
pub mod shard;
pub mod train;
