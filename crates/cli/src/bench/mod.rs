//! Benchmarks, apart from the user commands: each measures one part against
//! a peer or a ceiling; numbers and commands are in BENCHMARKS.md.

pub mod checks;
pub mod client;
pub mod embed;
pub mod engine;
pub mod extract;
pub mod grammar;
pub mod mauve;
