//! Run folders in object storage (`output.dir = "s3://bucket/run"`).
//!
//! The work happens in a local mirror of the run folder on node-local disk
//! (`$BACKFORTH_WORK_DIR/backforth-<16 hex of blake3(URL)>`, else under the
//! system temp folder), where a shard runs, resumes and keeps its SQLite
//! response cache exactly as in a local run (SQLite does not belong on
//! network storage). The store holds what other tasks must see, written at
//! fixed points:
//!
//! - `plan.json` — create-only put; a task that finds one takes it;
//! - `shards/<I>/…` — every output file of a finished shard (multipart
//!   above 8 MiB), then `shards/<I>/_DONE.json` by create-only put: a second
//!   writer is refused, and a shard counts as done only once its marker is
//!   in the store, so a task killed mid-upload is simply run (resumed) again;
//! - merged exports, `data/*.parquet`, `summary.json`, `README.md`, then
//!   `_SUCCESS` by create-only put.
//!
//! `merge` downloads the markers and the files it merges into the mirror,
//! merges there (the same code as a local merge, re-hashing every file
//! against its marker) and uploads the result.

#[cfg(feature = "object-store")]
use anyhow::Context;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// A run folder: its local folder (the folder itself, or the mirror of a
/// URL) and, for a URL, the store location of the run.
#[derive(Debug, Clone)]
pub struct OutDir {
    /// Where the work happens: the run folder, or the mirror of a URL.
    pub local: PathBuf,
    /// `output.dir` as given (a path or a URL).
    pub name: String,
    #[cfg(feature = "object-store")]
    remote: Option<backforth_objstore::Location>,
}

/// Whether `dir` is an object-store URL rather than a path.
pub fn is_url(dir: &str) -> bool {
    backforth_corpus::readers::io::is_url(Path::new(dir))
}

/// The local mirror of the run at `url`: `$BACKFORTH_WORK_DIR` (or the
/// temp folder) + `backforth-<16 hex of blake3(url)>`.
pub fn mirror_dir(url: &str) -> PathBuf {
    let root = std::env::var_os("BACKFORTH_WORK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    root.join(format!(
        "backforth-{}",
        backforth::hash::hex(url.trim_end_matches('/').as_bytes(), 16)
    ))
}

impl OutDir {
    /// The run folder `dir` (`output.dir`): a local path, or an
    /// object-store URL with its mirror (created). Errors: a URL in a build
    /// without the `object-store` feature, a store client that cannot be
    /// configured, I/O.
    pub fn open(dir: &str) -> Result<OutDir> {
        if !is_url(dir) {
            return Ok(OutDir {
                local: PathBuf::from(dir),
                name: dir.to_string(),
                #[cfg(feature = "object-store")]
                remote: None,
            });
        }
        #[cfg(feature = "object-store")]
        {
            let remote = backforth_objstore::Location::parse(dir)?;
            let local = mirror_dir(dir);
            std::fs::create_dir_all(&local)
                .with_context(|| format!("creating the mirror {}", local.display()))?;
            Ok(OutDir {
                local,
                name: dir.to_string(),
                remote: Some(remote),
            })
        }
        #[cfg(not(feature = "object-store"))]
        anyhow::bail!(
            "output {dir}: object-store URLs need backforth built with the `object-store` feature"
        )
    }

    /// Whether the run folder is in object storage.
    pub fn is_remote(&self) -> bool {
        #[cfg(feature = "object-store")]
        return self.remote.is_some();
        #[cfg(not(feature = "object-store"))]
        false
    }

    /// Where `rel` lives, for messages: the URL or the path.
    pub fn show(&self, rel: &str) -> String {
        if self.is_remote() {
            format!("{}/{rel}", self.name.trim_end_matches('/'))
        } else {
            self.local.join(rel).display().to_string()
        }
    }

    /// Bring `rel` from the store into the mirror (replacing the mirror's
    /// copy); a local run folder is its own copy. Returns whether `rel`
    /// exists (in the store for a URL: a mirror copy without a store copy
    /// is removed, so stale local state never counts).
    pub fn fetch(&self, rel: &str) -> Result<bool> {
        let local = self.local.join(rel);
        #[cfg(feature = "object-store")]
        if let Some(r) = &self.remote {
            let obj = r.join(rel);
            if obj.head()?.is_none() {
                match std::fs::remove_file(&local) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).with_context(|| format!("removing {}", local.display()))
                    }
                    _ => {}
                }
                return Ok(false);
            }
            obj.download(&local)?;
            return Ok(true);
        }
        Ok(local.exists())
    }

    /// Bring every object below `rel/` into the mirror whose relative name
    /// `keep` accepts. Returns the relative names fetched. A local run
    /// folder: nothing to do, returns none.
    pub fn fetch_tree(&self, rel: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
        #[cfg(feature = "object-store")]
        if let Some(r) = &self.remote {
            let mut got = Vec::new();
            let root = r.join(rel);
            let prefix = format!("{}/", root.key());
            for (obj, _) in root.list()? {
                let Some(name) = obj.key().strip_prefix(&prefix) else {
                    continue;
                };
                if keep(name) {
                    obj.download(&self.local.join(rel).join(name))?;
                    got.push(format!("{rel}/{name}"));
                }
            }
            return Ok(got);
        }
        let _ = (&keep, rel);
        Ok(Vec::new())
    }

    /// Upload the mirror's `rel` to the store (replacing any); a local run
    /// folder: nothing to do.
    pub fn push(&self, rel: &str) -> Result<()> {
        #[cfg(feature = "object-store")]
        if let Some(r) = &self.remote {
            r.join(rel).upload(&self.local.join(rel))?;
        }
        let _ = rel;
        Ok(())
    }

    /// Upload the mirror's `rel` only if the store has none: `Ok(false)`
    /// when another writer came first (its object is left as it was). A
    /// local run folder: `Ok(true)` (the caller wrote it create-only).
    pub fn push_create(&self, rel: &str) -> Result<bool> {
        #[cfg(feature = "object-store")]
        if let Some(r) = &self.remote {
            let p = self.local.join(rel);
            let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            return r.join(rel).put_create(data);
        }
        let _ = rel;
        Ok(true)
    }

    /// Relative names of the objects below `rel/` in the store (a local
    /// run folder: an empty list; read the folder instead).
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        #[cfg(feature = "object-store")]
        if let Some(r) = &self.remote {
            let root = r.join(rel);
            let prefix = format!("{}/", root.key());
            return Ok(root
                .list()?
                .into_iter()
                .filter_map(|(o, _)| o.key().strip_prefix(&prefix).map(str::to_string))
                .collect());
        }
        let _ = rel;
        Ok(Vec::new())
    }
}
