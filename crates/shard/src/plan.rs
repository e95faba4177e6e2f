//! The plan: list the inputs once, cut them into shards by size.
//!
//! The inputs are laid end to end in the order the config names them (each
//! glob's matches sorted), as one stream of `B` bytes; shard `k` owns the
//! bytes `[⌊kB/N⌋, ⌊(k+1)B/N⌋)`. An uncompressed JSONL or lines file is cut
//! at those boundaries into byte ranges (a range owns the lines that begin
//! in it, [`backforth_corpus::readers::InputPart`]); any other input
//! (compressed, WARC, Parquet, HTML, a folder) goes whole to the shard that
//! owns its first byte. So the assignment is deterministic, every document
//! lands in exactly one shard, and shards concatenated in rank order read
//! the inputs in the same order as a single process does.

use crate::remote::OutDir;
use anyhow::{bail, Context, Result};
use backforth_corpus::readers::{expand_sized, splittable, InputPart, ReaderOptions};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the plan inside the run folder.
pub const PLAN_FILE: &str = "plan.json";
/// File name of the input listing inside the run folder.
pub const MANIFEST_FILE: &str = "manifest.jsonl";

/// One listed input (a line of `manifest.jsonl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFile {
    pub path: PathBuf,
    /// Size in bytes (a folder: the sum of its files).
    pub bytes: u64,
    /// Whether it can be cut into byte ranges (uncompressed JSONL or lines).
    pub splittable: bool,
}

/// One shard's share of the inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardPlan {
    pub index: u32,
    /// Bytes of input assigned (ranges counted by their length).
    pub bytes: u64,
    /// Whole inputs and byte ranges, in input order.
    pub parts: Vec<InputPart>,
}

/// `plan.json`: the shard assignment of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Format version of this file (1).
    pub version: u32,
    pub num_shards: u32,
    /// blake3 of the `[input]` section the plan was made from.
    pub input_hash: String,
    /// Input files listed and their total size in bytes.
    pub files: u64,
    pub bytes: u64,
    pub shards: Vec<ShardPlan>,
}

impl Plan {
    /// blake3 of the plan's JSON (what each completion marker names, so a
    /// marker from another plan is never taken as this plan's).
    pub fn hash(&self) -> String {
        backforth::hash::hex(&serde_json::to_vec(self).expect("plan serialises"), 32)
    }
}

/// blake3 of the `[input]` section without the shard-only `parts`.
pub fn input_hash(opts: &ReaderOptions) -> String {
    let j = serde_json::to_vec(&opts.without_parts()).expect("input section serialises");
    backforth::hash::hex(&j, 32)
}

/// List the inputs `opts.paths` names, with sizes (local paths, globs,
/// object-store URLs). Errors: a path or glob that matches nothing, a
/// size that cannot be read.
pub fn list_inputs(opts: &ReaderOptions) -> Result<Vec<InputFile>> {
    Ok(expand_sized(&opts.paths)?
        .into_iter()
        .map(|(path, bytes)| InputFile {
            splittable: splittable(&path, opts.format),
            path,
            bytes,
        })
        .collect())
}

/// Assign `files` to `num_shards` shards (see the module docs). Every
/// shard is present in the result, possibly with no parts. Panics never;
/// `num_shards` 0 is treated as 1.
pub fn assign(files: &[InputFile], num_shards: u32) -> Vec<ShardPlan> {
    let n = num_shards.max(1) as u128;
    let total: u128 = files.iter().map(|f| f.bytes as u128).sum();
    let boundary = |k: u128| -> u128 {
        if k >= n {
            u128::MAX
        } else {
            k * total / n
        }
    };
    // the shard owning stream offset x: the largest k with boundary(k) ≤ x
    let shard_of = |x: u128| -> u128 {
        if total == 0 {
            return 0;
        }
        let mut k = (x * n / total).min(n - 1);
        while k + 1 < n && boundary(k + 1) <= x {
            k += 1;
        }
        while k > 0 && boundary(k) > x {
            k -= 1;
        }
        k
    };
    let mut shards: Vec<ShardPlan> = (0..n as u32)
        .map(|index| ShardPlan {
            index,
            bytes: 0,
            parts: Vec::new(),
        })
        .collect();
    let mut c: u128 = 0;
    for f in files {
        let size = f.bytes as u128;
        if f.splittable && size > 0 {
            let mut start = c;
            while start < c + size {
                let k = shard_of(start);
                let end = (c + size).min(boundary(k + 1));
                let range = (start - c, end - c);
                let part = InputPart {
                    path: f.path.clone(),
                    range: (range != (0, size)).then_some((range.0 as u64, range.1 as u64)),
                };
                shards[k as usize].bytes += (end - start) as u64;
                shards[k as usize].parts.push(part);
                start = end;
            }
        } else {
            let k = shard_of(c) as usize;
            shards[k].bytes += f.bytes;
            shards[k].parts.push(InputPart::whole(f.path.clone()));
        }
        c += size;
    }
    shards
}

/// Make the plan for `opts` over `num_shards` shards (listing the inputs once).
/// Errors: as [`list_inputs`].
pub fn make_plan(opts: &ReaderOptions, num_shards: u32) -> Result<(Plan, Vec<InputFile>)> {
    anyhow::ensure!(num_shards >= 1, "--num-shards must be at least 1");
    anyhow::ensure!(
        !opts.paths.is_empty(),
        "no input: set input.paths (or pass --input)"
    );
    let files = list_inputs(opts)?;
    let plan = Plan {
        version: 1,
        num_shards,
        input_hash: input_hash(opts),
        files: files.len() as u64,
        bytes: files.iter().map(|f| f.bytes).sum(),
        shards: assign(&files, num_shards),
    };
    Ok((plan, files))
}

/// The run's plan: read `<out>/plan.json` if it exists (and check it was
/// made for the same inputs and shard count), else make it and write it
/// create-only with `manifest.jsonl` beside it. Many tasks may call this at
/// once: one write wins, the others read it back and check it.
/// Errors: a plan for other inputs or another shard count (use a new output
/// folder), I/O.
pub fn ensure_plan(out: &Path, opts: &ReaderOptions, num_shards: u32) -> Result<Plan> {
    let path = out.join(PLAN_FILE);
    if let Some(p) = read_plan(out)? {
        check_plan(&p, opts, num_shards, &path)?;
        return Ok(p);
    }
    let (plan, files) = make_plan(opts, num_shards)?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let mut manifest = Vec::new();
    for f in &files {
        serde_json::to_writer(&mut manifest, f)?;
        manifest.push(b'\n');
    }
    // the manifest first: a reader who finds the plan finds its manifest
    write_create_only(&out.join(MANIFEST_FILE), &manifest)?;
    if !write_create_only(&path, &serde_json::to_vec_pretty(&plan)?)? {
        let p = read_plan(out)?.context("plan.json vanished")?;
        check_plan(&p, opts, num_shards, &path)?;
        return Ok(p);
    }
    Ok(plan)
}

/// [`ensure_plan`] for a run folder that may be in object storage: the
/// store's `plan.json` is taken when there is one; otherwise the plan is
/// made in the mirror, its manifest uploaded, and the plan put create-only
/// (a task that loses the race takes the winner's and checks it).
/// Errors: as [`ensure_plan`], the store's.
pub fn ensure_plan_at(run: &OutDir, opts: &ReaderOptions, num_shards: u32) -> Result<Plan> {
    if !run.is_remote() {
        return ensure_plan(&run.local, opts, num_shards);
    }
    if run.fetch(PLAN_FILE)? {
        return ensure_plan(&run.local, opts, num_shards);
    }
    // no plan in the store: a manifest left in the mirror is stale
    let _ = std::fs::remove_file(run.local.join(MANIFEST_FILE));
    let plan = ensure_plan(&run.local, opts, num_shards)?;
    run.push(MANIFEST_FILE)?;
    if run.push_create(PLAN_FILE)? {
        return Ok(plan);
    }
    run.fetch(PLAN_FILE)?;
    ensure_plan(&run.local, opts, num_shards)
}

/// Read `<out>/plan.json` if present. Errors: unreadable or not a plan.
pub fn read_plan(out: &Path) -> Result<Option<Plan>> {
    let path = out.join(PLAN_FILE);
    match std::fs::read(&path) {
        Ok(b) => {
            Ok(Some(serde_json::from_slice(&b).with_context(|| {
                format!("{} is not a plan", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn check_plan(p: &Plan, opts: &ReaderOptions, num_shards: u32, path: &Path) -> Result<()> {
    if p.num_shards != num_shards {
        bail!(
            "{} was made for {} shards, not {num_shards}: use the same --num-shards, or a new output folder",
            path.display(),
            p.num_shards
        );
    }
    if p.input_hash != input_hash(opts) {
        bail!(
            "{} was made for other inputs (the [input] section changed): use a new output folder",
            path.display()
        );
    }
    Ok(())
}

/// Write `bytes` to `path` only if no file is there: written to a temporary
/// name, then hard-linked into place (the link fails if `path` exists, and
/// a reader never sees a partial file). Returns false, leaving the file
/// there untouched, when another writer was first. Errors: I/O other than
/// "exists".
pub fn write_create_only(path: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = path.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
    ));
    {
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    let res = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match res {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("writing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn files(sizes: &[(u64, bool)]) -> Vec<InputFile> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &(bytes, splittable))| InputFile {
                path: PathBuf::from(format!("f{i}")),
                bytes,
                splittable,
            })
            .collect()
    }

    /// Property: over random listings, every byte of a splittable file and
    /// every other file is assigned exactly once, in input order across
    /// shards, and splittable bytes are balanced to within one byte.
    #[test]
    fn every_byte_lands_in_exactly_one_shard() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for case in 0..500 {
            let nf = rng.gen_range(0..12);
            let sizes: Vec<(u64, bool)> = (0..nf)
                .map(|_| (rng.gen_range(0..5_000u64), rng.gen_bool(0.7)))
                .collect();
            let all_split = sizes.iter().all(|s| s.1);
            let fs = files(&sizes);
            let n = rng.gen_range(1..9u32);
            let plan = assign(&fs, n);
            assert_eq!(plan.len(), n as usize);
            // walk shards in order: parts must come in input order, ranges tiling each file
            let mut covered: Vec<u64> = vec![0; fs.len()];
            let mut last_file = 0usize;
            for s in &plan {
                for p in &s.parts {
                    let i: usize = p.path.to_str().unwrap()[1..].parse().unwrap();
                    assert!(i >= last_file, "case {case}: parts out of input order");
                    if i > last_file {
                        assert_eq!(
                            covered[last_file], fs[last_file].bytes,
                            "case {case}: file f{last_file} not covered"
                        );
                        last_file = i;
                    }
                    match p.range {
                        None => {
                            assert_eq!(covered[i], 0, "case {case}: f{i} assigned twice");
                            covered[i] = fs[i].bytes;
                        }
                        Some((a, b)) => {
                            assert!(fs[i].splittable);
                            assert_eq!(a, covered[i], "case {case}: gap or overlap in f{i}");
                            assert!(b > a);
                            covered[i] = b;
                        }
                    }
                }
            }
            for (i, f) in fs.iter().enumerate() {
                assert_eq!(covered[i], f.bytes, "case {case}: f{i} not fully covered");
            }
            let total: u64 = fs.iter().map(|f| f.bytes).sum();
            assert_eq!(plan.iter().map(|s| s.bytes).sum::<u64>(), total);
            if all_split && total > 0 {
                let lo = total / n as u64;
                for s in &plan {
                    assert!(
                        s.bytes >= lo && s.bytes <= lo + 1,
                        "case {case}: unbalanced {} vs {lo}",
                        s.bytes
                    );
                }
            }
        }
    }

    #[test]
    fn unsplittable_file_goes_whole_to_the_shard_of_its_first_byte() {
        let plan = assign(&files(&[(10, true), (100, false), (10, true)]), 4);
        // stream 0..120, boundaries 30, 60, 90: the big file starts at 10 → shard 0
        assert_eq!(plan[0].parts.len(), 2);
        assert_eq!(plan[0].parts[1].range, None);
        assert!(plan[1].parts.is_empty() && plan[2].parts.is_empty());
        assert_eq!(
            plan[3].parts[0].range, None,
            "the last file (110..120) is whole in shard 3"
        );
    }
}
