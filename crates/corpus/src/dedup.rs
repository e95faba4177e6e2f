//! Deduplication: exact (hash of normalised text) and near-duplicate MinHash
//! with LSH banding (Broder 1997; Leskovec et al., "Mining of Massive
//! Datasets" ch. 3). Defaults follow common web-corpus practice (word 5-gram
//! shingles, 14 bands × 8 rows = 112 permutations, as in datatrove), and a
//! candidate pair is confirmed only when the signatures' estimated Jaccard
//! similarity reaches `threshold` (0.8).
//!
//! Our own code: it is the method's data step, and the crates we looked at
//! either hash non-deterministically across runs or keep whole documents in
//! memory. Memory: one signature (4 bytes × permutations) per kept document.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Near-dedup settings (the `[dedup]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    pub exact: bool,
    pub near: bool,
    /// Words per shingle.
    pub shingle: usize,
    pub bands: usize,
    pub rows: usize,
    /// Estimated Jaccard similarity at or above which a document is a near duplicate.
    pub threshold: f64,
    pub seed: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            exact: true,
            near: true,
            shingle: 5,
            bands: 14,
            rows: 8,
            threshold: 0.8,
            seed: 1,
        }
    }
}

/// Lowercase, keep letters/digits, collapse whitespace: the text exact dedup compares.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

/// FNV-1a, 64 bit: a fixed, fast hash so signatures are the same on every run and machine.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// splitmix64: derives the permutation parameters from the seed.
fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

const MERSENNE_61: u64 = (1 << 61) - 1;

fn mod61(x: u128) -> u64 {
    let lo = (x as u64) & MERSENNE_61;
    let hi = (x >> 61) as u64;
    let r = lo + hi;
    if r >= MERSENNE_61 {
        r - MERSENNE_61
    } else {
        r
    }
}

/// MinHash signatures with universal hashing h(x) = (a·x + b) mod (2^61 − 1).
pub struct MinHasher {
    shingle: usize,
    params: Vec<(u64, u64)>,
}

impl MinHasher {
    /// `perms` hash functions over word `shingle`-grams.
    pub fn new(shingle: usize, perms: usize, seed: u64) -> Self {
        let mut s = seed;
        let params = (0..perms)
            .map(|_| {
                (
                    (splitmix(&mut s) % (MERSENNE_61 - 1)) + 1,
                    splitmix(&mut s) % MERSENNE_61,
                )
            })
            .collect();
        MinHasher {
            shingle: shingle.max(1),
            params,
        }
    }

    /// The set of shingle hashes of a text (normalised words).
    pub fn shingles(&self, text: &str) -> HashSet<u64> {
        let norm = normalise(text);
        let ws: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        let mut out = HashSet::new();
        if ws.len() < self.shingle {
            if !ws.is_empty() {
                out.insert(fnv1a(ws.join(" ").as_bytes()));
            }
            return out;
        }
        for g in ws.windows(self.shingle) {
            out.insert(fnv1a(g.join(" ").as_bytes()) & MERSENNE_61);
        }
        out
    }

    /// Signature: per permutation, the minimum permuted shingle hash (truncated to 32 bits).
    pub fn signature(&self, text: &str) -> Vec<u32> {
        let sh = self.shingles(text);
        self.params
            .iter()
            .map(|&(a, b)| {
                sh.iter()
                    .map(|&x| mod61(a as u128 * x as u128 + b as u128))
                    .min()
                    .unwrap_or(u64::MAX) as u32
            })
            .collect()
    }
}

/// One key per LSH band of a signature (`rows` values per band, FNV-1a of
/// their little-endian bytes): two documents are near-duplicate candidates
/// when any band key is equal.
pub fn band_keys(sig: &[u32], rows: usize) -> Vec<u64> {
    sig.chunks(rows.max(1))
        .map(|c| fnv1a(&c.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>()))
        .collect()
}

/// The exact-dedup key of a text: the first 16 bytes of blake3 of [`normalise`]d text.
pub fn exact_key(text: &str) -> [u8; 16] {
    blake3::hash(normalise(text).as_bytes()).as_bytes()[..16]
        .try_into()
        .expect("16 bytes")
}

/// Union-find over items `0..n` in which every set's root is its smallest
/// item: after any unions, `find(i) == i` exactly for the first item of each
/// cluster (the one a dedup keeps). Our own: ten lines, no crate needed.
pub struct FirstKeeps {
    parent: Vec<u64>,
}

impl FirstKeeps {
    pub fn new(n: u64) -> Self {
        FirstKeeps {
            parent: (0..n).collect(),
        }
    }
    /// The cluster's first item (path halving).
    pub fn find(&mut self, mut x: u64) -> u64 {
        while self.parent[x as usize] != x {
            let p = self.parent[x as usize];
            self.parent[x as usize] = self.parent[p as usize];
            x = p;
        }
        x
    }
    /// Put `a` and `b` in one cluster.
    pub fn union(&mut self, a: u64, b: u64) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi as usize] = lo;
        }
    }
}

/// Estimated Jaccard similarity: share of equal signature positions.
pub fn estimate_jaccard(a: &[u32], b: &[u32]) -> f64 {
    let eq = a.iter().zip(b).filter(|(x, y)| x == y).count();
    eq as f64 / a.len().max(1) as f64
}

/// Exact Jaccard similarity of two sets.
pub fn jaccard(a: &HashSet<u64>, b: &HashSet<u64>) -> f64 {
    let inter = a.intersection(b).count();
    let union = a.len() + b.len() - inter;
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

/// Why a document was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Duplicate {
    /// Same normalised text as the document with this id.
    Exact(String),
    /// Near duplicate of this id (estimated Jaccard ≥ threshold).
    Near(String),
}

/// Streaming deduplicator: the first occurrence is kept, later copies dropped.
pub struct Deduper {
    cfg: DedupConfig,
    hasher: MinHasher,
    exact: HashMap<[u8; 16], String>,
    buckets: HashMap<(u16, u64), u32>,
    kept: Vec<(String, Vec<u32>)>,
}

impl Deduper {
    pub fn new(cfg: DedupConfig) -> Self {
        let hasher = MinHasher::new(cfg.shingle, cfg.bands * cfg.rows, cfg.seed);
        Deduper {
            cfg,
            hasher,
            exact: HashMap::new(),
            buckets: HashMap::new(),
            kept: Vec::new(),
        }
    }

    /// Check a document; if it is new, remember it. Returns the duplicate it matched, if any.
    pub fn check(&mut self, id: &str, text: &str) -> Option<Duplicate> {
        if self.cfg.exact {
            let k = exact_key(text);
            if let Some(first) = self.exact.get(&k) {
                return Some(Duplicate::Exact(first.clone()));
            }
            self.exact.insert(k, id.to_string());
        }
        if self.cfg.near {
            let sig = self.hasher.signature(text);
            let bands = band_keys(&sig, self.cfg.rows);
            let mut tried = HashSet::new();
            for (b, &bh) in bands.iter().enumerate() {
                if let Some(&j) = self.buckets.get(&(b as u16, bh)) {
                    if tried.insert(j)
                        && estimate_jaccard(&sig, &self.kept[j as usize].1) >= self.cfg.threshold
                    {
                        return Some(Duplicate::Near(self.kept[j as usize].0.clone()));
                    }
                }
            }
            let j = self.kept.len() as u32;
            for (b, bh) in bands.into_iter().enumerate() {
                self.buckets.entry((b as u16, bh)).or_insert(j);
            }
            self.kept.push((id.to_string(), sig));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(seed: u64, n: usize) -> Vec<String> {
        let mut s = seed;
        (0..n)
            .map(|_| format!("w{}", splitmix(&mut s) % 5000))
            .collect()
    }

    #[test]
    fn minhash_estimates_exact_jaccard_on_sampled_pairs() {
        let mh = MinHasher::new(5, 128, 7);
        let mut worst: f64 = 0.0;
        for k in 0..40u64 {
            let base = text(k, 400);
            // replace a growing share of words to get pairs across the similarity range
            let mut other = base.clone();
            let changed = (k as usize * 10) % 400;
            let fresh = text(1000 + k, changed);
            for (i, w) in fresh.into_iter().enumerate() {
                other[(i * 7919) % 400] = w;
            }
            let (a, b) = (base.join(" "), other.join(" "));
            let exact = jaccard(&mh.shingles(&a), &mh.shingles(&b));
            let est = estimate_jaccard(&mh.signature(&a), &mh.signature(&b));
            worst = worst.max((exact - est).abs());
        }
        // standard error at 128 permutations is ≤ 0.045; allow ~3.5 σ
        assert!(worst < 0.16, "worst |exact - estimate| = {worst}");
    }

    #[test]
    fn exact_and_near_duplicates_are_dropped_first_kept() {
        let mut d = Deduper::new(DedupConfig::default());
        let a = text(1, 300).join(" ");
        let mut near: Vec<String> = a.split(' ').map(String::from).collect();
        near[150] = "changed".into();
        let near = near.join(" ");
        let other = text(2, 300).join(" ");
        assert_eq!(d.check("a", &a), None);
        assert_eq!(
            d.check("a-copy", &a.to_uppercase().replace(' ', "  ")),
            Some(Duplicate::Exact("a".into()))
        );
        assert_eq!(d.check("a-near", &near), Some(Duplicate::Near("a".into())));
        assert_eq!(d.check("other", &other), None);
        assert_eq!(normalise("Hello,  World!\n"), "hello world");
    }
}
