//! Object storage for backforth: inputs read from and outputs written to
//! `s3://`, `gs://`, `az://` (also `abfs[s]://`, `azure://`) and `file://`
//! URLs, through the `object_store` crate (Apache Arrow). We add only the
//! blocking seam the synchronous readers and shard steps need:
//!
//! - [`expand`] lists the objects a URL or glob names, with sizes;
//! - [`Location::reader`] is a streaming [`std::io::Read`] from a byte
//!   offset (one ranged GET, re-issued from the current offset if the
//!   connection drops mid-body), and [`Location::get_range`] a ranged read;
//! - [`Location::upload`] writes a local file in 8 MiB multipart parts
//!   (one PUT below that), [`Location::download`] streams one to disk;
//! - [`Location::put_create`] is a create-only put (S3 `If-None-Match: *`,
//!   GCS `ifGenerationMatch=0`, Azure `If-None-Match`): a second writer of
//!   a completion marker gets `false`, never a silent overwrite.
//!
//! Credentials and endpoints come from the environment as each builder's
//! `from_env` reads them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`;
//! `GOOGLE_SERVICE_ACCOUNT`, …; `AZURE_STORAGE_ACCOUNT_NAME`, …) or from
//! instance metadata; they are never logged: messages name only the URL.

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreScheme, PutMode, PutOptions};
use std::collections::HashMap;
use std::future::Future;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

/// URL schemes [`Location::parse`] takes.
pub const SCHEMES: [&str; 8] = ["s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "file"];

/// Size of a multipart part and of a read-ahead chunk: 8 MiB (S3's
/// minimum part is 5 MiB).
pub const PART_BYTES: usize = 8 << 20;

/// Whether `s` is an object-store URL (`<scheme>://…` with a scheme of
/// [`SCHEMES`]); plain paths, relative or absolute, are not.
pub fn is_url(s: &str) -> bool {
    s.split_once("://")
        .is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// One object (or prefix) in a store: the store client, shared by every
/// location of the same bucket, and the key.
#[derive(Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    /// `scheme://bucket` (no trailing slash); `file://` for local paths.
    base: String,
    path: ObjectPath,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.url())
    }
}

/// The runtime the blocking calls run on (two worker threads: requests
/// are I/O-bound; the callers are synchronous readers and shard steps).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("objstore")
            .enable_all()
            .build()
            .expect("tokio runtime for object storage")
    })
}

/// Run `f` to completion from synchronous code, also when the caller is
/// itself inside a tokio runtime (then on a scoped thread, since a runtime
/// cannot block inside another).
fn block<F>(f: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| match s.spawn(|| runtime().block_on(f)).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        })
    } else {
        runtime().block_on(f)
    }
}

/// Store clients by `scheme://bucket`, so every location of a bucket
/// shares one connection pool.
fn client(base: &str, url: &url::Url, scheme: ObjectStoreScheme) -> Result<Arc<dyn ObjectStore>> {
    static CLIENTS: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let mut map = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(c) = map.get(base) {
        return Ok(c.clone());
    }
    let u = url.as_str();
    let c: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(u)
                .build()
                .with_context(|| format!("S3 client for {base}"))?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(u)
                .build()
                .with_context(|| format!("GCS client for {base}"))?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(u)
                .build()
                .with_context(|| format!("Azure client for {base}"))?,
        ),
        ObjectStoreScheme::Local => Arc::new(object_store::local::LocalFileSystem::new()),
        other => bail!("{base}: object store {other:?} is not supported (s3, gs, az, file)"),
    };
    map.insert(base.to_string(), c.clone());
    Ok(c)
}

impl Location {
    /// Parse an object-store URL (`s3://bucket/key`, `gs://…`, `az://…`,
    /// `file:///abs/path`). A trailing `/` names a prefix. Errors: not a
    /// URL of [`SCHEMES`], a client that cannot be configured from the
    /// environment (no region, bad endpoint).
    pub fn parse(s: &str) -> Result<Location> {
        if !is_url(s) {
            bail!("{s}: not an object-store URL (expected one of {SCHEMES:?}://…)");
        }
        // s3a:// is Hadoop's name for the same store
        let norm = match s.strip_prefix("s3a://") {
            Some(rest) => format!("s3://{rest}"),
            None => s.to_string(),
        };
        let url = url::Url::parse(&norm).with_context(|| format!("{s}: bad URL"))?;
        let (scheme, path) = ObjectStoreScheme::parse(&url).map_err(|e| anyhow!("{s}: {e}"))?;
        let base = match scheme {
            ObjectStoreScheme::Local => "file://".to_string(),
            _ => format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default()),
        };
        let store = client(&base, &url, scheme)?;
        Ok(Location { store, base, path })
    }

    /// The URL of this location.
    pub fn url(&self) -> String {
        match self.base.as_str() {
            "file://" => format!("file:///{}", self.path),
            b => format!("{b}/{}", self.path),
        }
    }

    /// The key inside the bucket.
    pub fn key(&self) -> &str {
        self.path.as_ref()
    }

    /// The location `rel` (a `/`-separated relative key) below this one.
    pub fn join(&self, rel: &str) -> Location {
        let mut key = self.path.as_ref().trim_end_matches('/').to_string();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(part);
        }
        Location {
            store: self.store.clone(),
            base: self.base.clone(),
            path: ObjectPath::from(key),
        }
    }

    /// Size of the object in bytes, `None` if there is none. Errors: the
    /// store's (permissions, network after retries).
    pub fn head(&self) -> Result<Option<u64>> {
        match block(self.store.head(&self.path)) {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("HEAD {}", self.url())),
        }
    }

    /// Every object under this location taken as a prefix (recursive),
    /// with its size, sorted by key.
    pub fn list(&self) -> Result<Vec<(Location, u64)>> {
        let prefix = self.path.clone();
        let store = self.store.clone();
        let metas: Vec<object_store::ObjectMeta> = block(async move {
            let p = if prefix.as_ref().is_empty() {
                None
            } else {
                Some(&prefix)
            };
            store
                .list(p)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })
        .with_context(|| format!("listing {}", self.url()))?;
        let mut out: Vec<(Location, u64)> = metas
            .into_iter()
            .map(|m| {
                (
                    Location {
                        store: self.store.clone(),
                        base: self.base.clone(),
                        path: m.location,
                    },
                    m.size,
                )
            })
            .collect();
        out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        Ok(out)
    }

    /// The whole object, `None` if there is none.
    pub fn get(&self) -> Result<Option<Bytes>> {
        let r = block(async {
            match self.store.get(&self.path).await {
                Ok(g) => g.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        r.with_context(|| format!("GET {}", self.url()))
    }

    /// Bytes `[start, end)` of the object. Errors: a range past the end.
    pub fn get_range(&self, start: u64, end: u64) -> Result<Bytes> {
        if end <= start {
            return Ok(Bytes::new());
        }
        block(self.store.get_range(&self.path, start..end))
            .with_context(|| format!("GET {} bytes {start}..{end}", self.url()))
    }

    /// A streaming reader from byte `start` to the end of the object.
    /// Errors: no such object.
    pub fn reader(&self, start: u64) -> Result<ObjectReader> {
        let len = self
            .head()?
            .with_context(|| format!("{}: no such object", self.url()))?;
        Ok(ObjectReader {
            loc: self.clone(),
            pos: start.min(len),
            len,
            stream: None,
            buf: Bytes::new(),
        })
    }

    /// Write `data` as the object, replacing any.
    pub fn put(&self, data: Vec<u8>) -> Result<()> {
        block(self.store.put(&self.path, data.into()))
            .map(|_| ())
            .with_context(|| format!("PUT {}", self.url()))
    }

    /// Write `data` only if no object is there: `Ok(false)` when one is
    /// (another writer came first; it is left as it was).
    pub fn put_create(&self, data: Vec<u8>) -> Result<bool> {
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match block(self.store.put_opts(&self.path, data.into(), opts)) {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(e).with_context(|| format!("create-only PUT {}", self.url())),
        }
    }

    /// Upload the local file `src` as this object: one PUT up to
    /// [`PART_BYTES`], multipart above (parts of [`PART_BYTES`], up to 4 in
    /// flight). Returns the bytes written. A failed multipart upload is
    /// aborted, so no partial object appears.
    pub fn upload(&self, src: &Path) -> Result<u64> {
        let len = std::fs::metadata(src)
            .with_context(|| format!("reading {}", src.display()))?
            .len();
        if len as usize <= PART_BYTES {
            let data = std::fs::read(src).with_context(|| format!("reading {}", src.display()))?;
            self.put(data)?;
            return Ok(len);
        }
        let r: Result<()> = block(async {
            let up = self.store.put_multipart(&self.path).await?;
            let mut w = object_store::WriteMultipart::new_with_chunk_size(up, PART_BYTES);
            let mut f = std::fs::File::open(src)?;
            let mut buf = vec![0u8; PART_BYTES];
            loop {
                let n = f.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                w.wait_for_capacity(4).await?;
                w.write(&buf[..n]);
            }
            w.finish().await?;
            Ok(())
        });
        r.with_context(|| format!("multipart upload of {} to {}", src.display(), self.url()))?;
        Ok(len)
    }

    /// Stream the object into the local file `dest` (written beside it under
    /// a name unique to this call and renamed, so `dest` is whole or absent,
    /// also when several processes fetch it at once). Returns the bytes
    /// written.
    pub fn download(&self, dest: &Path) -> Result<u64> {
        if let Some(d) = dest.parent() {
            std::fs::create_dir_all(d)?;
        }
        // a name of its own: several processes may fetch the same file at once
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let tmp = dest.with_file_name(format!(
            ".{}.{}.{}.part",
            dest.file_name().unwrap_or_default().to_string_lossy(),
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let n = io::copy(&mut self.reader(0)?, &mut f)
            .with_context(|| format!("downloading {} to {}", self.url(), dest.display()))?;
        f.flush()?;
        std::fs::rename(&tmp, dest).with_context(|| {
            format!("moving {} into place as {}", tmp.display(), dest.display())
        })?;
        Ok(n)
    }
}

/// The objects `pattern` names, with sizes, in a stable order: an object
/// URL names itself; a URL ending in `/` names every object below it
/// (sorted); a URL with `*`, `?` or `[` in its key is matched as a glob
/// (`**` crosses `/`) against the objects below its last literal folder,
/// sorted. Errors: nothing matched, a bad pattern, the store's.
pub fn expand(pattern: &str) -> Result<Vec<(Location, u64)>> {
    let loc = Location::parse(pattern)?;
    let key = loc.key().to_string();
    let found = if let Some(i) = key.find(['*', '?', '[']) {
        let prefix = key[..i].rsplit_once('/').map(|(p, _)| p).unwrap_or("");
        let glob = glob::Pattern::new(&key).with_context(|| format!("bad glob {pattern}"))?;
        let opts = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        let root = Location {
            store: loc.store.clone(),
            base: loc.base.clone(),
            path: ObjectPath::from(prefix),
        };
        root.list()?
            .into_iter()
            .filter(|(l, _)| glob.matches_with(l.key(), opts))
            .collect()
    } else if pattern.ends_with('/') {
        loc.list()?
    } else {
        match loc.head()? {
            Some(n) => vec![(loc, n)],
            None => Vec::new(),
        }
    };
    if found.is_empty() {
        bail!("input {pattern} matches no object");
    }
    Ok(found)
}

/// A streaming reader over one object from an offset: one ranged GET whose
/// body is read as it arrives; if the connection fails mid-body the GET is
/// re-issued from the current offset (up to 3 times in a row).
pub struct ObjectReader {
    loc: Location,
    pos: u64,
    len: u64,
    stream: Option<BoxStream<'static, object_store::Result<Bytes>>>,
    buf: Bytes,
}

impl ObjectReader {
    /// Size of the whole object in bytes.
    pub fn object_len(&self) -> u64 {
        self.len
    }

    fn open(&mut self) -> object_store::Result<()> {
        let store = self.loc.store.clone();
        let path = self.loc.path.clone();
        let opts = GetOptions {
            range: Some(GetRange::Offset(self.pos)),
            ..Default::default()
        };
        let s = block(async move { store.get_opts(&path, opts).await.map(|g| g.into_stream()) })?;
        self.stream = Some(s);
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut failures = 0;
        while self.buf.is_empty() {
            if self.pos >= self.len || out.is_empty() {
                return Ok(0);
            }
            if self.stream.is_none() {
                if let Err(e) = self.open() {
                    failures += 1;
                    if failures > 3 {
                        return Err(io::Error::other(format!("GET {}: {e}", self.loc.url())));
                    }
                    continue;
                }
            }
            let s = self.stream.as_mut().expect("opened above");
            match block(s.next()) {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => {
                    self.stream = None;
                    failures += 1;
                    tracing::warn!(
                        "{}: read failed at byte {} ({e}); re-requesting",
                        self.loc.url(),
                        self.pos
                    );
                    if failures > 3 {
                        return Err(io::Error::other(format!("GET {}: {e}", self.loc.url())));
                    }
                }
                None => {
                    // the body ended before the object's end: re-request the rest
                    self.stream = None;
                    failures += 1;
                    if failures > 3 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!(
                                "{}: body ended at byte {} of {}",
                                self.loc.url(),
                                self.pos,
                                self.len
                            ),
                        ));
                    }
                }
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf = self.buf.slice(n..);
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_plain_paths() {
        assert!(is_url("s3://bucket/key.jsonl"));
        assert!(is_url("GS://bucket/x"));
        assert!(is_url("file:///tmp/x"));
        assert!(!is_url("/tmp/s3://x"));
        assert!(!is_url("data/docs.jsonl"));
        assert!(!is_url("http://example.com/x"));
    }

    #[test]
    fn file_urls_list_glob_read_ranges_and_create_only() {
        let d = tempfile::tempdir().unwrap();
        let root = format!("file://{}", d.path().display());
        for (name, body) in [
            ("a/one.jsonl", "1\n2\n"),
            ("a/two.jsonl", "3\n"),
            ("a/b/three.txt", "x"),
        ] {
            let p = d.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        let keys =
            |v: Vec<(Location, u64)>| v.into_iter().map(|(l, n)| (l.url(), n)).collect::<Vec<_>>();
        let got = keys(expand(&format!("{root}/a/*.jsonl")).unwrap());
        assert_eq!(
            got,
            [
                (format!("{root}/a/one.jsonl"), 4),
                (format!("{root}/a/two.jsonl"), 2)
            ]
        );
        assert_eq!(expand(&format!("{root}/a/")).unwrap().len(), 3);
        assert_eq!(expand(&format!("{root}/a/**/*.txt")).unwrap().len(), 1);
        let e = expand(&format!("{root}/a/*.parquet"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("matches no object"), "{e}");
        let one = Location::parse(&format!("{root}/a/one.jsonl")).unwrap();
        let mut s = String::new();
        one.reader(2).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "2\n");
        assert_eq!(&one.get_range(0, 1).unwrap()[..], b"1");
        let m = Location::parse(&root).unwrap().join("out/_DONE.json");
        assert!(m.put_create(b"first".to_vec()).unwrap());
        assert!(!m.put_create(b"second".to_vec()).unwrap());
        assert_eq!(&m.get().unwrap().unwrap()[..], b"first");
        assert!(Location::parse(&root)
            .unwrap()
            .join("none")
            .get()
            .unwrap()
            .is_none());
    }
}
