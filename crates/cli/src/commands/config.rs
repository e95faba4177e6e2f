//! `backforth config`: print the configuration in force (defaults, preset,
//! file, flags) as TOML, or list the shipped presets.

use crate::cli::ConfigCmdArgs;
use anyhow::{Context, Result};

/// Print the effective configuration, or the presets with their first comment line.
pub fn run(a: &ConfigCmdArgs) -> Result<()> {
    if a.presets {
        for (name, src) in backforth::config::PRESETS {
            let what = src
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches('#')
                .trim();
            println!("{name:<18} {what}");
        }
        println!("\n(backforth config --preset NAME prints one in full; run --preset NAME uses it)");
        return Ok(());
    }
    print!("{}", a.config()?.to_toml().context("serialising")?);
    Ok(())
}
