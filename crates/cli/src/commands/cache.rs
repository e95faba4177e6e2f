//! `backforth cache stats|prune`: inspect or prune the SQLite response cache.

use crate::cli::CacheCmd;
use anyhow::Result;
use backforth_inference::cache::ResponseCache;

/// Run one cache subcommand; prints JSON stats or the number of pruned entries.
pub fn run(cmd: CacheCmd) -> Result<()> {
    match cmd {
        CacheCmd::Stats { path } => {
            let s = ResponseCache::open(&path)?.stats()?;
            println!("{}", serde_json::to_string_pretty(&s).unwrap_or_default());
        }
        CacheCmd::Merge { into, from } => {
            let target = ResponseCache::open(&into)?;
            for f in &from {
                anyhow::ensure!(f != &into, "{} is the target itself", f.display());
                let n = target.merge_from(f)?;
                eprintln!("{}: {n} entries added", f.display());
            }
            println!(
                "{}",
                serde_json::to_string_pretty(&target.stats()?).unwrap_or_default()
            );
        }
        CacheCmd::Prune {
            path,
            older_than_days,
            model,
        } => {
            let n = ResponseCache::open(&path)?.prune(older_than_days, model.as_deref())?;
            println!("pruned {n} entries");
        }
    }
    Ok(())
}
