//! `backforth config`: print the full configuration (defaults, the file, the
//! overrides) as TOML.

use crate::cli::CommonArgs;
use anyhow::{Context, Result};

/// Print the effective configuration.
pub fn run(a: &CommonArgs) -> Result<()> {
    print!("{}", a.config()?.to_toml().context("serialising")?);
    Ok(())
}
