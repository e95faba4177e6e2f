//! Dedup across shards, in stages (the shape of datatrove's MinHash dedup:
//! signatures per shard → buckets per band → one clustering task → remove
//! lists per shard), before any LLM call.
//!
//! 1. `sign` (one task per shard): the shard's documents (its
//!    `documents.jsonl`, written as its run would write it) → under
//!    `<out>/dedup/sig/`: `<I>.sig` (fixed records: exact key 16 B +
//!    signature `bands × rows` u32 LE), `<I>.band<b>` (one u64 band key per
//!    document, band-major so a bucket pass reads 8 bytes per document),
//!    `<I>.ids` (one id per line) and `<I>.done` (the count).
//! 2. `buckets` (one task per band, in parallel): documents numbered in
//!    global input order (shard by shard); the band's keys sorted; in each
//!    bucket every document is compared with the bucket's first (signatures
//!    read by offset) and the pairs whose estimated Jaccard similarity reaches
//!    the threshold are written to `<out>/dedup/pairs/band<b>.bin`.
//! 3. `cluster` (one task): equal exact keys joined, the confirmed pairs of
//!    every band joined (a band whose task did not run is run here); a
//!    cluster keeps its first document. → `<out>/dedup/remove/<I>.jsonl`
//!    (`id`, `duplicate_of`, `kind`), `summary.json`, `_DONE`.
//! 4. a shard's `run` drops its remove list from its documents first.
//!
//! Because the order and every decision depend only on the documents, not
//! on how they were cut, any shard count gives the same remove set (tested
//! against one shard). This differs from the single-process streaming dedup
//! of `prepare` (which compares a document only with the first *kept*
//! document of a bucket); a local run can use this one with `--num-shards 1`.
//!
//! Memory: a bucket task holds one band's (key, index) pairs (16 B per
//! document); `cluster` the union-find (8 B), the exact keys (16 B) and the
//! ids of all documents.

use crate::remote::OutDir;
use crate::shard::ShardJob;
use anyhow::{bail, Context, Result};
use backforth::pipeline::{exclude_documents, prepare_documents};
use backforth::store::{RecordLines, RunDir};
use backforth_corpus::dedup::{
    band_keys, estimate_jaccard, exact_key, DedupConfig, FirstKeeps, MinHasher,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// `<out>/dedup`.
pub fn dedup_dir(out: &Path) -> PathBuf {
    out.join("dedup")
}
fn sig_base(out: &Path, i: u32) -> PathBuf {
    dedup_dir(out).join("sig").join(format!("{i:05}"))
}
/// A shard's remove list.
pub fn remove_list(out: &Path, i: u32) -> PathBuf {
    dedup_dir(out).join("remove").join(format!("{i:05}.jsonl"))
}
/// Written last by `cluster`.
pub fn cluster_done(out: &Path) -> PathBuf {
    dedup_dir(out).join("remove").join("_DONE")
}
/// Whether shard `i` has signed its documents.
pub fn signed(out: &Path, i: u32) -> bool {
    sig_base(out, i).with_extension("done").exists()
}

#[derive(Serialize, Deserialize)]
struct SignDone {
    documents: u64,
    bands: usize,
    rows: usize,
}

/// Sign a shard that has not run yet: read its documents as its run will
/// (`documents.jsonl` in its folder; none for a shard with no input), then
/// [`sign`] them. `embedder` runs the document filter when `run.prepare`
/// and `doc_filter.model` are set ([`backforth::pipeline::doc_filter_embedder`]).
/// Returns the number signed. Errors: as [`sign`], reading the input.
pub fn sign_shard(
    job: &ShardJob,
    embedder: Option<&mut dyn backforth::SentenceEmbedder>,
) -> Result<u64> {
    let docs = job.dir.join("documents.jsonl");
    if job.empty {
        std::fs::write(&docs, b"")?;
    } else {
        prepare_documents(&job.config, &RunDir(job.dir.clone()), embedder)?;
    }
    let n = sign(&job.out, job.index, &docs, &job.config.dedup)?;
    // in object storage: the signature files, then the `.done` that says they are whole
    if job.run.is_remote() {
        let base = sig_rel(job.index);
        let mut exts = vec!["sig".to_string(), "ids".to_string()];
        exts.extend((0..job.config.dedup.bands).map(|b| format!("band{b}")));
        exts.push("done".into());
        for e in exts {
            job.run.push(&format!("{base}.{e}"))?;
        }
    }
    Ok(n)
}

/// `dedup/sig/<I>` relative to the run folder (extensions added).
fn sig_rel(i: u32) -> String {
    format!("dedup/sig/{i:05}")
}

/// [`buckets`] on a run folder that may be in object storage: the
/// signatures and band-`band` keys are fetched into the mirror, the pairs
/// file and its `.done` uploaded after.
pub fn buckets_at(
    run: &OutDir,
    num_shards: u32,
    cfg: &DedupConfig,
    band: u32,
) -> Result<BucketReport> {
    let key = format!(".band{band}");
    run.fetch_tree("dedup/sig", |f| {
        f.ends_with(".done") || f.ends_with(".sig") || f.ends_with(&key)
    })?;
    let r = buckets(&run.local, num_shards, cfg, band)?;
    run.push(&format!("dedup/pairs/band{band}.bin"))?;
    run.push(&format!("dedup/pairs/band{band}.done"))?;
    Ok(r)
}

/// [`cluster`] on a run folder that may be in object storage: signatures,
/// ids and pairs are fetched into the mirror; the remove lists, the
/// summary and, last, `remove/_DONE` uploaded.
pub fn cluster_at(run: &OutDir, num_shards: u32, cfg: &DedupConfig) -> Result<ClusterReport> {
    run.fetch_tree("dedup/sig", |_| true)?;
    run.fetch_tree("dedup/pairs", |_| true)?;
    let r = cluster(&run.local, num_shards, cfg)?;
    for i in 0..num_shards {
        run.push(&format!("dedup/remove/{i:05}.jsonl"))?;
    }
    run.push("dedup/summary.json")?;
    run.push("dedup/remove/_DONE")?;
    Ok(r)
}

/// Before a shard's first stage: if dedup across shards signed it, drop
/// the documents on its remove list (see
/// [`backforth::pipeline::exclude_documents`]). Returns the number dropped,
/// or `None` when dedup across shards was not used. Errors: the shard was
/// signed but `cluster` has not run, I/O.
pub fn drop_remove_list(job: &ShardJob) -> Result<Option<u64>> {
    // in object storage: the store's copies decide (a missing one removes the mirror's)
    job.run.fetch(&format!("{}.done", sig_rel(job.index)))?;
    job.run.fetch("dedup/remove/_DONE")?;
    job.run
        .fetch(&format!("dedup/remove/{:05}.jsonl", job.index))?;
    if !signed(&job.out, job.index) {
        return Ok(None);
    }
    anyhow::ensure!(
        cluster_done(&job.out).exists(),
        "shard {} signed its documents for dedup across shards, but `backforth shard dedup cluster` has not run",
        job.index
    );
    let remove = read_remove_list(&job.out, job.index)?;
    let run = RunDir(job.dir.clone());
    // signing read the documents (and ran any document filter): this finds them done
    prepare_documents(&job.config, &run, None)?;
    Ok(Some(exclude_documents(&run, &remove)?))
}

/// Sign shard `index`'s documents (`documents`: JSONL records with `id` and
/// `text`). Returns the number signed. Errors: I/O, a line that is not a record.
pub fn sign(out: &Path, index: u32, documents: &Path, cfg: &DedupConfig) -> Result<u64> {
    let base = sig_base(out, index);
    std::fs::create_dir_all(base.parent().expect("has parent"))?;
    let hasher = MinHasher::new(cfg.shingle, cfg.bands * cfg.rows, cfg.seed);
    let mut sig_w = BufWriter::new(File::create(base.with_extension("sig"))?);
    let mut ids_w = BufWriter::new(File::create(base.with_extension("ids"))?);
    let mut band_w: Vec<BufWriter<File>> = (0..cfg.bands)
        .map(|b| File::create(base.with_extension(format!("band{b}"))).map(BufWriter::new))
        .collect::<std::io::Result<_>>()?;
    let mut n = 0u64;
    for d in RecordLines::open(documents)? {
        let d = d.map_err(anyhow::Error::msg)?;
        let sig = hasher.signature(&d.text);
        sig_w.write_all(&exact_key(&d.text))?;
        for x in &sig {
            sig_w.write_all(&x.to_le_bytes())?;
        }
        for (b, k) in band_keys(&sig, cfg.rows).into_iter().enumerate() {
            band_w[b].write_all(&k.to_le_bytes())?;
        }
        writeln!(ids_w, "{}", d.id.replace('\n', " "))?;
        n += 1;
    }
    sig_w.flush()?;
    ids_w.flush()?;
    for w in &mut band_w {
        w.flush()?;
    }
    let done = SignDone {
        documents: n,
        bands: cfg.bands,
        rows: cfg.rows,
    };
    std::fs::write(base.with_extension("done"), serde_json::to_vec(&done)?)?;
    Ok(n)
}

/// The signed shards: documents per shard and where each shard starts in
/// the global (input) order.
struct Signed {
    counts: Vec<u64>,
    starts: Vec<u64>,
    n: u64,
}

impl Signed {
    fn load(out: &Path, num_shards: u32, cfg: &DedupConfig) -> Result<Signed> {
        let missing: Vec<String> = (0..num_shards)
            .filter(|&i| !signed(out, i))
            .map(|i| i.to_string())
            .collect();
        if !missing.is_empty() {
            bail!(
                "shards {} have not signed their documents (backforth shard dedup sign)",
                missing.join(", ")
            );
        }
        let mut counts = Vec::new();
        for i in 0..num_shards {
            let d: SignDone =
                serde_json::from_slice(&std::fs::read(sig_base(out, i).with_extension("done"))?)?;
            if (d.bands, d.rows) != (cfg.bands, cfg.rows) {
                bail!(
                    "shard {i} was signed with {}×{} bands×rows, not {}×{}",
                    d.bands,
                    d.rows,
                    cfg.bands,
                    cfg.rows
                );
            }
            counts.push(d.documents);
        }
        let starts: Vec<u64> = counts
            .iter()
            .scan(0, |acc, &c| {
                let s = *acc;
                *acc += c;
                Some(s)
            })
            .collect();
        let n = counts.iter().sum();
        Ok(Signed { counts, starts, n })
    }

    /// (shard, index inside it) of global document `g`.
    fn locate(&self, g: u64) -> (usize, u64) {
        let s = self.starts.partition_point(|&st| st <= g) - 1;
        (s, g - self.starts[s])
    }
}

/// `<out>/dedup/pairs/band<b>.bin`: the confirmed pairs of one band.
fn pairs_path(out: &Path, band: u32) -> PathBuf {
    dedup_dir(out).join("pairs").join(format!("band{band}.bin"))
}

/// What one bucket task found.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BucketReport {
    pub band: u32,
    /// Pairs (bucket's first document, another in the bucket) compared and confirmed.
    pub compared: u64,
    pub confirmed: u64,
}

/// The bucket task of one band (they can run in parallel, one per band):
/// every document's key of band `band`, sorted; in each bucket, each
/// document is compared with the bucket's first in input order and the
/// pairs whose estimated Jaccard similarity reaches the threshold are
/// written (16 bytes each). Errors: shards not signed, I/O.
pub fn buckets(out: &Path, num_shards: u32, cfg: &DedupConfig, band: u32) -> Result<BucketReport> {
    anyhow::ensure!(
        (band as usize) < cfg.bands,
        "band {band} is out of range (dedup.bands = {})",
        cfg.bands
    );
    let signed = Signed::load(out, num_shards, cfg)?;
    let perms = cfg.bands * cfg.rows;
    let rec = 16 + 4 * perms as u64;
    let mut sig_files = (0..num_shards)
        .map(|i| File::open(sig_base(out, i).with_extension("sig")))
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut read_sig = |g: u64| -> Result<Vec<u32>> {
        let (s, local) = signed.locate(g);
        let f = &mut sig_files[s];
        f.seek(SeekFrom::Start(local * rec + 16))?;
        let mut b = vec![0u8; 4 * perms];
        f.read_exact(&mut b)?;
        Ok(b.chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect())
    };
    let mut keys: Vec<(u64, u64)> = Vec::with_capacity(signed.n as usize);
    for i in 0..num_shards {
        let p = sig_base(out, i).with_extension(format!("band{band}"));
        let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        anyhow::ensure!(
            bytes.len() as u64 == 8 * signed.counts[i as usize],
            "{} does not match its count",
            p.display()
        );
        for (j, c) in bytes.chunks_exact(8).enumerate() {
            keys.push((
                u64::from_le_bytes(c.try_into().expect("8 bytes")),
                signed.starts[i as usize] + j as u64,
            ));
        }
    }
    keys.sort_unstable();
    let mut report = BucketReport {
        band,
        ..Default::default()
    };
    let path = pairs_path(out, band);
    std::fs::create_dir_all(path.parent().expect("has parent"))?;
    let mut w = BufWriter::new(File::create(&path)?);
    let mut k = 0;
    while k < keys.len() {
        let mut e = k + 1;
        while e < keys.len() && keys[e].0 == keys[k].0 {
            e += 1;
        }
        if e - k > 1 {
            let first = keys[k].1;
            let first_sig = read_sig(first)?;
            for &(_, m) in &keys[k + 1..e] {
                report.compared += 1;
                if estimate_jaccard(&first_sig, &read_sig(m)?) >= cfg.threshold {
                    report.confirmed += 1;
                    w.write_all(&first.to_le_bytes())?;
                    w.write_all(&m.to_le_bytes())?;
                }
            }
        }
        k = e;
    }
    w.flush()?;
    std::fs::write(path.with_extension("done"), serde_json::to_vec(&report)?)?;
    Ok(report)
}

/// What `cluster` found.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ClusterReport {
    pub documents: u64,
    /// Documents removed as exact / near duplicates of a kept one.
    pub exact: u64,
    pub near: u64,
    /// Bucket pairs compared, and those confirmed (estimate ≥ threshold).
    pub compared: u64,
    pub confirmed: u64,
    /// Removed per shard.
    pub per_shard: BTreeMap<u32, u64>,
}

/// Cluster the signatures of all `num_shards` shards and write the remove
/// lists (see the module docs). Errors: a shard not signed (listed), I/O.
pub fn cluster(out: &Path, num_shards: u32, cfg: &DedupConfig) -> Result<ClusterReport> {
    let signed = Signed::load(out, num_shards, cfg)?;
    let (counts, starts, n) = (&signed.counts, &signed.starts, signed.n);
    let rec = 16 + 4 * (cfg.bands * cfg.rows) as u64;
    let mut uf = FirstKeeps::new(n);
    let mut report = ClusterReport {
        documents: n,
        ..Default::default()
    };
    // exact keys, in memory for the exact pass and to name a removal's kind
    let mut exact: Vec<[u8; 16]> = Vec::with_capacity(n as usize);
    for i in 0..num_shards {
        let p = sig_base(out, i).with_extension("sig");
        let mut r =
            BufReader::new(File::open(&p).with_context(|| format!("opening {}", p.display()))?);
        let mut buf = vec![0u8; rec as usize];
        for _ in 0..counts[i as usize] {
            r.read_exact(&mut buf)
                .with_context(|| format!("{} is shorter than its count", p.display()))?;
            exact.push(buf[..16].try_into().expect("16 bytes"));
        }
    }
    if cfg.exact {
        let mut order: Vec<u64> = (0..n).collect();
        order.sort_by_key(|&g| (exact[g as usize], g));
        for w in order.windows(2) {
            if exact[w[0] as usize] == exact[w[1] as usize] {
                uf.union(w[0], w[1]);
            }
        }
    }
    if cfg.near {
        for band in 0..cfg.bands as u32 {
            let done = pairs_path(out, band).with_extension("done");
            let r: BucketReport = match std::fs::read(&done) {
                Ok(b) => serde_json::from_slice(&b)?,
                // not run as its own task: run it here
                Err(_) => buckets(out, num_shards, cfg, band)?,
            };
            report.compared += r.compared;
            report.confirmed += r.confirmed;
            let bytes = std::fs::read(pairs_path(out, band))?;
            for c in bytes.chunks_exact(16) {
                let a = u64::from_le_bytes(c[..8].try_into().expect("8 bytes"));
                let b = u64::from_le_bytes(c[8..].try_into().expect("8 bytes"));
                anyhow::ensure!(a < n && b < n, "band {band}: pair ({a}, {b}) outside the {n} documents signed now; rerun dedup buckets");
                uf.union(a, b);
            }
        }
    }
    // ids, to write the remove lists
    let mut ids: Vec<String> = Vec::with_capacity(n as usize);
    for i in 0..num_shards {
        let p = sig_base(out, i).with_extension("ids");
        ids.extend(
            BufReader::new(File::open(&p)?)
                .lines()
                .collect::<std::io::Result<Vec<_>>>()?,
        );
    }
    anyhow::ensure!(
        ids.len() as u64 == n,
        "id files do not match the signature counts"
    );
    let rm_dir = dedup_dir(out).join("remove");
    std::fs::create_dir_all(&rm_dir)?;
    for i in 0..num_shards {
        let mut w = BufWriter::new(File::create(remove_list(out, i))?);
        let mut removed = 0;
        for g in starts[i as usize]..starts[i as usize] + counts[i as usize] {
            let root = uf.find(g);
            if root == g {
                continue;
            }
            let kind = if exact[g as usize] == exact[root as usize] {
                "exact"
            } else {
                "near"
            };
            if kind == "exact" {
                report.exact += 1;
            } else {
                report.near += 1;
            }
            removed += 1;
            serde_json::to_writer(
                &mut w,
                &serde_json::json!({"id": ids[g as usize], "duplicate_of": ids[root as usize], "kind": kind}),
            )?;
            w.write_all(b"\n")?;
        }
        w.flush()?;
        report.per_shard.insert(i, removed);
    }
    std::fs::write(
        dedup_dir(out).join("summary.json"),
        serde_json::to_vec_pretty(&report)?,
    )?;
    std::fs::write(cluster_done(out), b"")?;
    Ok(report)
}

/// The ids on shard `i`'s remove list with their reason (`exact_duplicate` / `near_duplicate`).
/// Errors: I/O, a line that does not parse.
pub fn read_remove_list(out: &Path, i: u32) -> Result<BTreeMap<String, String>> {
    let p = remove_list(out, i);
    let mut m = BTreeMap::new();
    for (n, line) in
        BufReader::new(File::open(&p).with_context(|| format!("opening {}", p.display()))?)
            .lines()
            .enumerate()
    {
        let v: serde_json::Value =
            serde_json::from_str(&line?).with_context(|| format!("{}:{}", p.display(), n + 1))?;
        let kind = v["kind"].as_str().unwrap_or("near");
        m.insert(
            v["id"].as_str().unwrap_or_default().to_string(),
            format!("{kind}_duplicate_across_shards"),
        );
    }
    Ok(m)
}
