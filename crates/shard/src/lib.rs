//! Runs beyond one machine, on the engines clusters already have.
//!
//! The shard contract: every task of a sharded run is the same binary with a
//! rank `I` and a world size `N` (`--shard I --num-shards N`, or from
//! `SLURM_ARRAY_TASK_ID` [+ `BACKFORTH_SHARD_OFFSET`] or
//! `JOB_COMPLETION_INDEX`, see [`rank`]). The run folder `<out>` holds:
//!
//! ```text
//! <out>/plan.json           the inputs listed once and cut into N shards by size (create-only)
//! <out>/manifest.jsonl      one line per input file: path, bytes, splittable
//! <out>/shards/<I>/         shard I's own run folder (documents, stages/, exports, summary.json)
//! <out>/shards/<I>/.lock    held (flock) while shard I runs
//! <out>/shards/<I>/_DONE.json  completion marker: counts, stage keys, blake3 of every output (create-only)
//! <out>/dataset.jsonl …     merged exports, summary.json, README.md      (`backforth shard merge`)
//! <out>/_SUCCESS            written last by merge
//! ```
//!
//! An `<out>` in object storage (`s3://bucket/run`, …) has the same layout
//! there; each task works in a node-local mirror and puts what others must
//! see at fixed points, markers and `plan.json` create-only ([`remote`]).
//!
//! A local run is a run with one shard and none of this: the method crate
//! does not know about shards beyond two settings a shard fills in
//! (`input.parts`, `run.ordinal_base`).
//!
//! Modules: [`plan`] (listing and assignment), [`dedup`] (exact and MinHash
//! dedup across shards, staged), [`rank`] (which shard am I),
//! [`shard`] (one shard's folder, lock and marker), [`merge`] (merge and
//! status), [`remote`] (run folders in object storage), [`slurm`] and [`k8s`] (launchers: they write the files a
//! scheduler takes and, for Slurm, submit them).

pub mod dedup;
pub mod k8s;
pub mod merge;
pub mod plan;
pub mod rank;
pub mod remote;
pub mod shard;
pub mod slurm;

pub use merge::{merge, merge_at, status, status_at, MergeReport, ShardState};
pub use plan::{ensure_plan, ensure_plan_at, Plan};
pub use remote::OutDir;
pub use shard::{begin_shard, ShardJob, ShardStart};
