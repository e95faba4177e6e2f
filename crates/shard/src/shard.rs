//! One shard: its folder under `<out>/shards/`, the lock that keeps a second
//! process out while it runs, its configuration (the plan's parts, an
//! ordinal base) and its completion marker.
//!
//! The marker `_DONE.json` is written once, create-only, after the shard's
//! exports: it names the plan it belongs to, the stage keys it ran under,
//! and the size, line count and blake3 of every file the merge will read, so
//! the merge can refuse a shard that was changed or made under other
//! settings. A shard with a marker is skipped when relaunched; one without
//! resumes inside its own folder as a local run does.

use crate::plan::{ensure_plan_at, write_create_only, Plan};
use crate::remote::OutDir;
use anyhow::{bail, Context, Result};
use backforth::config::Config;
use backforth::pipeline::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Folder of the shard folders inside the run folder.
pub const SHARDS_DIR: &str = "shards";
/// The completion marker's file name inside a shard folder.
pub const MARKER_FILE: &str = "_DONE.json";
/// The lock file's name inside a shard folder.
pub const LOCK_FILE: &str = ".lock";

/// Shard `index`'s folder relative to the run folder: `shards/<5 digits>`.
pub fn shard_rel(index: u32) -> String {
    format!("{SHARDS_DIR}/{index:05}")
}

/// Shard `index`'s folder in the run folder `out` ([`shard_rel`]).
pub fn shard_dir(out: &Path, index: u32) -> PathBuf {
    out.join(shard_rel(index))
}

/// Size, line count and blake3 (hex) of one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub bytes: u64,
    pub lines: u64,
    pub blake3: String,
}

/// Stream a file once: its [`FileSum`]. Errors: I/O.
pub fn file_sum(path: &Path) -> Result<FileSum> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 16];
    let (mut bytes, mut lines) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    Ok(FileSum {
        bytes,
        lines,
        blake3: h.finalize().to_hex().to_string(),
    })
}

/// `_DONE.json`: a finished shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub shard: u32,
    pub num_shards: u32,
    /// [`Plan::hash`] of the plan the shard ran under.
    pub plan_hash: String,
    /// Stage keys in force (empty for a shard with no input).
    pub keys: BTreeMap<String, String>,
    /// Documents read by the shard.
    pub documents: u64,
    /// Examples per export.
    pub examples: BTreeMap<String, u64>,
    /// Every JSONL file of the shard folder (top level and `stages/`), by
    /// path relative to the shard folder.
    pub files: BTreeMap<String, FileSum>,
    /// The shard's `summary.json`, for the merge.
    pub summary: serde_json::Value,
    pub host: String,
    pub pid: u32,
    /// Seconds since the Unix epoch when the marker was written.
    pub finished_unix: u64,
}

/// Read a shard's marker if it has one. Errors: a marker that does not parse.
pub fn read_marker(dir: &Path) -> Result<Option<Marker>> {
    let p = dir.join(MARKER_FILE);
    match std::fs::read(&p) {
        Ok(b) => Ok(Some(serde_json::from_slice(&b).with_context(|| {
            format!("{} is not a completion marker", p.display())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", p.display())),
    }
}

/// What [`begin_shard`] found.
pub enum ShardStart {
    /// The shard finished before: nothing to do.
    Done(Box<Marker>),
    /// Run it: the job holds the lock until it is dropped.
    Run(Box<ShardJob>),
}

/// A shard being run by this process.
pub struct ShardJob {
    pub index: u32,
    pub num_shards: u32,
    /// The run folder (`<out>`) and the shard folder (also `config.output.dir`).
    pub out: PathBuf,
    pub dir: PathBuf,
    /// The run's configuration for this shard: output in the shard folder,
    /// `input.parts` from the plan, `run.ordinal_base` = index × 2⁴⁰.
    pub config: Config,
    /// The plan has no input for this shard (more shards than inputs to cut).
    pub empty: bool,
    /// The run folder as configured (a path, or a URL whose mirror is `out`).
    pub run: OutDir,
    plan_hash: String,
    _lock: File,
}

/// The machine's host name, for markers and locks.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Start shard `index` of `num_shards` for the run `cfg` (its `output.dir`
/// is the run folder): make or read the plan, return `Done` if the shard's
/// marker is there, else take the shard's lock and return the job.
/// Errors: a plan for other inputs or shard count, a marker from another
/// plan, the shard running in another process, I/O.
pub fn begin_shard(cfg: &Config, num_shards: u32, index: u32) -> Result<ShardStart> {
    let run = OutDir::open(&cfg.output.dir)?;
    let plan = ensure_plan_at(&run, &cfg.input, num_shards)?;
    let out = run.local.clone();
    let dir = shard_dir(&out, index);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let marker_rel = format!("{}/{MARKER_FILE}", shard_rel(index));
    // in object storage a shard is done when the store has its marker (the
    // mirror's copy is replaced, or removed when the store has none)
    run.fetch(&marker_rel)?;
    if let Some(m) = done_marker(&dir, &plan)? {
        return Ok(ShardStart::Done(Box::new(m)));
    }
    let lock = take_lock(&dir, index)?;
    // another process may have finished it between the check and the lock
    run.fetch(&marker_rel)?;
    if let Some(m) = done_marker(&dir, &plan)? {
        return Ok(ShardStart::Done(Box::new(m)));
    }
    let mut config = cfg.clone();
    config.output.dir = dir.display().to_string();
    let parts = plan.shards[index as usize].parts.clone();
    let empty = parts.is_empty();
    config.input.parts = parts;
    config.run.ordinal_base = (index as u64) << 40;
    Ok(ShardStart::Run(Box::new(ShardJob {
        index,
        num_shards,
        out,
        dir,
        config,
        empty,
        run,
        plan_hash: plan.hash(),
        _lock: lock,
    })))
}

fn done_marker(dir: &Path, plan: &Plan) -> Result<Option<Marker>> {
    match read_marker(dir)? {
        Some(m) if m.plan_hash == plan.hash() => Ok(Some(m)),
        Some(m) => bail!(
            "{} belongs to another plan ({} ≠ {}): use a new output folder",
            dir.join(MARKER_FILE).display(),
            m.plan_hash,
            plan.hash()
        ),
        None => Ok(None),
    }
}

/// Take the shard's lock (flock on `.lock`), retrying for a few seconds (a
/// `status` call holds it for an instant). Errors: held by another process.
fn take_lock(dir: &Path, index: u32) -> Result<File> {
    use std::io::Write;
    let p = dir.join(LOCK_FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&p)
        .with_context(|| format!("opening {}", p.display()))?;
    for attempt in 0..50 {
        match f.try_lock() {
            Ok(()) => {
                f.set_len(0)?;
                writeln!(f, "{} {}", host_name(), std::process::id())?;
                return Ok(f);
            }
            Err(std::fs::TryLockError::WouldBlock) if attempt < 49 => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let who = std::fs::read_to_string(&p).unwrap_or_default();
                bail!(
                    "shard {index} is running in another process (host, pid: {}); not starting it twice",
                    who.trim()
                )
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", p.display()))
            }
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// The JSONL files of a shard folder (top level and `stages/`), relative paths, sorted.
pub fn shard_files(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for sub in ["", "stages"] {
        let d = dir.join(sub);
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let name = e?.file_name().to_string_lossy().to_string();
            if name.ends_with(".jsonl") {
                out.push(if sub.is_empty() {
                    name
                } else {
                    format!("{sub}/{name}")
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Every file below `dir`, relative, sorted, that a shard uploads: all but
/// its lock, its marker, SQLite files (the response cache stays on the
/// node; `backforth cache merge` joins caches) and temp files.
pub fn upload_list(dir: &Path) -> Result<Vec<String>> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) -> Result<()> {
        for e in std::fs::read_dir(d).with_context(|| format!("listing {}", d.display()))? {
            let e = e?;
            let p = e.path();
            if e.file_type()?.is_dir() {
                walk(root, &p, out)?;
                continue;
            }
            let rel = p
                .strip_prefix(root)
                .expect("below root")
                .to_string_lossy()
                .replace('\\', "/");
            let name = e.file_name().to_string_lossy().to_string();
            let skip = name == LOCK_FILE
                || name == MARKER_FILE
                || name.contains(".sqlite")
                || name.ends_with(".tmp")
                || name.ends_with(".part");
            if !skip {
                out.push(rel);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

impl ShardJob {
    /// Write the completion marker after the shard's run: checksums of its
    /// files, its counts and stage keys (`summary` is `None` for a shard
    /// with no input). Errors: I/O, a marker already there (another writer).
    pub fn finish(self, summary: Option<&Summary>) -> Result<Marker> {
        let mut files = BTreeMap::new();
        for f in shard_files(&self.dir)? {
            files.insert(f.clone(), file_sum(&self.dir.join(&f))?);
        }
        let summary_json = match summary {
            Some(s) => serde_json::to_value(s)?,
            None => serde_json::json!({}),
        };
        let marker = Marker {
            shard: self.index,
            num_shards: self.num_shards,
            plan_hash: self.plan_hash.clone(),
            keys: summary.map(|s| s.keys.clone()).unwrap_or_default(),
            documents: summary.map_or(0, |s| s.input.documents),
            examples: summary
                .map(|s| {
                    s.outputs
                        .iter()
                        .map(|(k, v)| (k.clone(), v.examples))
                        .collect()
                })
                .unwrap_or_default(),
            files,
            summary: summary_json,
            host: host_name(),
            pid: std::process::id(),
            finished_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        };
        let p = self.dir.join(MARKER_FILE);
        let json = serde_json::to_vec_pretty(&marker)?;
        if self.run.is_remote() {
            // the mirror is this task's own: the create-only step is the store's,
            // after every file is up
            let rel = shard_rel(self.index);
            for f in upload_list(&self.dir)? {
                self.run.push(&format!("{rel}/{f}"))?;
            }
            std::fs::write(&p, &json).with_context(|| format!("writing {}", p.display()))?;
            let marker_rel = format!("{rel}/{MARKER_FILE}");
            if !self.run.push_create(&marker_rel)? {
                bail!(
                    "{} was written by another task first (shard {} ran twice); its outputs stand, this task's are not used",
                    self.run.show(&marker_rel),
                    self.index
                );
            }
            return Ok(marker);
        }
        if !write_create_only(&p, &json)? {
            bail!(
                "{} was written by another process while this one held the lock",
                p.display()
            );
        }
        Ok(marker)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        let input = dir.join("docs.jsonl");
        std::fs::write(
            &input,
            "{\"id\": \"a\", \"text\": \"one\"}\n{\"id\": \"b\", \"text\": \"two\"}\n",
        )
        .unwrap();
        let mut cfg = Config::default();
        cfg.input.paths = vec![input.display().to_string()];
        cfg.output.dir = dir.join("run").display().to_string();
        cfg
    }

    #[test]
    fn a_running_shard_is_not_started_twice_and_its_marker_is_written_once() {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        let ShardStart::Run(job) = begin_shard(&cfg, 2, 1).unwrap() else {
            panic!("fresh shard")
        };
        assert_eq!(job.config.run.ordinal_base, 1 << 40);
        assert!(!job.config.input.parts.is_empty());
        let (_, st) = crate::status(Path::new(&cfg.output.dir)).unwrap();
        assert_eq!(st, [crate::ShardState::Missing, crate::ShardState::Running]);
        let e = begin_shard(&cfg, 2, 1)
            .err()
            .expect("second start refused")
            .to_string();
        assert!(e.contains("running in another process"), "{e}");
        // another shard count or other inputs: refused, not mixed
        let e = begin_shard(&cfg, 3, 0).err().unwrap().to_string();
        assert!(e.contains("made for 2 shards"), "{e}");
        let mut other = cfg.clone();
        other.input.min_chars = 5;
        let e = begin_shard(&other, 2, 0).err().unwrap().to_string();
        assert!(e.contains("other inputs"), "{e}");
        // a second writer of the marker loses
        let marker = job.dir.join(MARKER_FILE);
        assert!(write_create_only(&marker, b"{}").unwrap());
        let e = job.finish(None).unwrap_err().to_string();
        assert!(e.contains("written by another process"), "{e}");
        assert_eq!(
            std::fs::read(&marker).unwrap(),
            b"{}",
            "the first marker stays"
        );
    }

    #[test]
    fn finished_shard_is_done_on_relaunch() {
        let d = tempfile::tempdir().unwrap();
        let cfg = config(d.path());
        let ShardStart::Run(job) = begin_shard(&cfg, 1, 0).unwrap() else {
            panic!()
        };
        std::fs::write(job.dir.join("curated.jsonl"), "{\"id\": \"a\"}\n").unwrap();
        let m = job.finish(None).unwrap();
        assert_eq!(m.files["curated.jsonl"].lines, 1);
        match begin_shard(&cfg, 1, 0).unwrap() {
            ShardStart::Done(d) => assert_eq!(*d, m),
            ShardStart::Run(_) => panic!("a finished shard ran again"),
        }
    }
}
