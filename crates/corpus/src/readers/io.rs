//! Byte-level input helpers shared by the readers: decompression by
//! extension, bounded line reading (an over-long line is never held whole),
//! capped whole-file reads, and a byte counter for decompressed offsets.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Extensions [`open_decompressed`] decompresses.
const COMPRESSED: [&str; 4] = [".gz", ".zst", ".zstd", ".bz2"];

/// Whether [`open_decompressed`] decompresses `path` (by its extension).
pub fn compressed(path: &Path) -> bool {
    let name = path.to_string_lossy();
    COMPRESSED.iter().any(|e| name.ends_with(e))
}

/// `name` without the compression extension [`open_decompressed`] reads
/// through (one of `.gz`, `.zst`, `.zstd`, `.bz2`), for format detection.
pub fn strip_compression(name: &str) -> &str {
    COMPRESSED
        .iter()
        .find_map(|e| name.strip_suffix(e))
        .unwrap_or(name)
}

/// Whether `path` names an object in a store (`s3://`, `gs://`, `az://`,
/// `file://`, … see `backforth_objstore::SCHEMES`) rather than a local path.
/// Decided on the text alone, so a build without the `object-store`
/// feature can still say why it cannot read one.
pub fn is_url(path: &Path) -> bool {
    path.to_str().is_some_and(|s| {
        s.split_once("://").is_some_and(|(scheme, _)| {
            scheme.len() >= 2 && scheme.chars().all(|c| c.is_ascii_alphanumeric())
        })
    })
}

/// Open `path` at byte `start`: a local file (seeked), or with the
/// `object-store` feature an object URL (one streaming ranged GET).
/// Errors: I/O, no such object, a URL in a build without the feature.
pub fn open_at(path: &Path, start: u64) -> io::Result<Box<dyn Read>> {
    if is_url(path) {
        return open_url(path, start);
    }
    let mut f = File::open(path)?;
    if start > 0 {
        use std::io::{Seek, SeekFrom};
        f.seek(SeekFrom::Start(start))?;
    }
    Ok(Box::new(f))
}

#[cfg(feature = "object-store")]
fn open_url(path: &Path, start: u64) -> io::Result<Box<dyn Read>> {
    let url = path.to_string_lossy();
    backforth_objstore::Location::parse(&url)
        .and_then(|l| l.reader(start))
        .map(|r| Box::new(r) as Box<dyn Read>)
        .map_err(|e| io::Error::other(format!("{e:#}")))
}

#[cfg(feature = "object-store")]
fn url_size(path: &Path) -> io::Result<u64> {
    backforth_objstore::Location::parse(&path.to_string_lossy())
        .and_then(|l| l.head())
        .map_err(|e| io::Error::other(format!("{e:#}")))?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such object"))
}

#[cfg(not(feature = "object-store"))]
fn url_size(path: &Path) -> io::Result<u64> {
    open_url(path, 0).map(|_| 0)
}

#[cfg(not(feature = "object-store"))]
fn open_url(path: &Path, _start: u64) -> io::Result<Box<dyn Read>> {
    Err(io::Error::other(format!(
        "{}: object-store URLs need backforth built with the `object-store` feature",
        path.display()
    )))
}

/// Size in bytes of an input: a file, an object URL, or a folder (the sum
/// of the files below it). Errors: I/O, no such object.
pub fn input_size(path: &Path) -> io::Result<u64> {
    if is_url(path) {
        return url_size(path);
    }
    let m = std::fs::metadata(path)?;
    if !m.is_dir() {
        return Ok(m.len());
    }
    let mut total = 0;
    for e in std::fs::read_dir(path)? {
        total += input_size(&e?.path())?;
    }
    Ok(total)
}

/// Open a file or object, decompressing by extension (`.gz` multi-member
/// gzip, `.zst`/`.zstd`, `.bz2` multi-stream bzip2).
pub fn open_decompressed(path: &Path) -> io::Result<Box<dyn Read>> {
    let f = open_at(path, 0)?;
    let name = path.to_string_lossy();
    Ok(if name.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(f)))
    } else if name.ends_with(".bz2") {
        Box::new(bzip2::read::MultiBzDecoder::new(BufReader::new(f)))
    } else if name.ends_with(".zst") || name.ends_with(".zstd") {
        Box::new(zstd::Decoder::new(f)?)
    } else {
        Box::new(f)
    })
}

/// Outcome of [`read_line_bounded`].
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line (without the newline) is in the buffer.
    Full,
    /// The line had this many bytes, more than the limit; the buffer is empty.
    TooLong(usize),
    /// End of input.
    Eof,
}

/// Read one `\n`-terminated line into `buf` (cleared first), holding at most
/// `max` bytes: a longer line is consumed and discarded, never buffered whole.
/// A final line without `\n` counts as a line. Errors: the underlying I/O error.
pub fn read_line_bounded<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<Line> {
    read_line_counted(r, buf, max).map(|(l, _)| l)
}

/// [`read_line_bounded`], also returning the bytes consumed (the line and
/// its newline), so a caller can keep the byte offset of the next line.
pub fn read_line_counted<R: BufRead + ?Sized>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<(Line, u64)> {
    buf.clear();
    let mut consumed = 0u64;
    let mut total = 0usize;
    let mut any = false;
    loop {
        let avail = match r.fill_buf() {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if avail.is_empty() {
            break;
        }
        any = true;
        let (chunk, done) = match memchr(avail) {
            Some(i) => (&avail[..i], Some(i + 1)),
            None => (avail, None),
        };
        if total + chunk.len() <= max {
            buf.extend_from_slice(chunk);
        } else {
            buf.clear();
            buf.shrink_to(64 << 10);
        }
        total += chunk.len();
        let n = done.unwrap_or(avail.len());
        r.consume(n);
        consumed += n as u64;
        if done.is_some() {
            break;
        }
    }
    if !any {
        return Ok((Line::Eof, 0));
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let line = if total > max {
        Line::TooLong(total)
    } else {
        Line::Full
    };
    Ok((line, consumed))
}

fn memchr(s: &[u8]) -> Option<usize> {
    s.iter().position(|&b| b == b'\n')
}

/// Read a whole file or object, refusing ones over `max` bytes (so one
/// huge file cannot exhaust memory; at most `max + 1` bytes are read).
pub fn read_capped(f: &Path, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    open_at(f, 0)?.take(max + 1).read_to_end(&mut out)?;
    if out.len() as u64 > max {
        return Err(io::Error::other(format!(
            "file is over max_line_bytes={max} bytes"
        )));
    }
    Ok(out)
}

/// Counts bytes read through it (shared counter), to report decompressed offsets.
pub struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R> Counting<R> {
    /// Wrap `inner`; returns the reader and its counter.
    pub fn new(inner: R) -> (Self, Arc<AtomicU64>) {
        let count = Arc::new(AtomicU64::new(0));
        (
            Counting {
                inner,
                count: count.clone(),
            },
            count,
        )
    }
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The file name of `p` (the whole path if it has none), used in record ids.
pub fn file_label(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_lines() {
        let data = b"short\nthis line is long\r\nlast";
        let mut r = io::Cursor::new(&data[..]);
        let mut b = Vec::new();
        assert_eq!(read_line_bounded(&mut r, &mut b, 10).unwrap(), Line::Full);
        assert_eq!(b, b"short");
        assert_eq!(
            read_line_bounded(&mut r, &mut b, 10).unwrap(),
            Line::TooLong(18)
        );
        assert!(b.is_empty());
        assert_eq!(read_line_bounded(&mut r, &mut b, 10).unwrap(), Line::Full);
        assert_eq!(b, b"last");
        assert_eq!(read_line_bounded(&mut r, &mut b, 10).unwrap(), Line::Eof);
    }
}
