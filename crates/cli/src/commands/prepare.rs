//! `backforth prepare`: read → segment → filter → decontaminate →
//! deduplicate into `candidates.jsonl` (+ `prepare_stats.json`).

use crate::cli::CommonArgs;
use crate::progress::prepare_with_progress;
use anyhow::Result;

/// Run prepare with a progress display and print what it did.
pub fn run(a: &CommonArgs) -> Result<()> {
    let st = prepare_with_progress(&a.config()?, a.quiet())?;
    eprintln!(
        "documents: {} read, {} skipped | candidates: {} segmented, {} kept → {} | dropped {:?} | {:.0} documents/s",
        st.input.documents,
        st.input.skipped_total(),
        st.segments,
        st.kept,
        st.output,
        st.dropped,
        st.documents_per_s
    );
    Ok(())
}
