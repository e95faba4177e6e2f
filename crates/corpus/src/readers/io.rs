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

/// Open a file, decompressing by extension (`.gz` multi-member gzip, `.zst`/`.zstd`,
/// `.bz2` multi-stream bzip2).
pub fn open_decompressed(path: &Path) -> io::Result<Box<dyn Read>> {
    let f = File::open(path)?;
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

/// Read a whole file, refusing ones over `max` bytes (so one huge file cannot exhaust memory).
pub fn read_capped(f: &Path, max: u64) -> io::Result<Vec<u8>> {
    let m = std::fs::metadata(f)?;
    if m.len() > max {
        return Err(io::Error::other(format!(
            "file of {} bytes is over max_line_bytes={max}",
            m.len()
        )));
    }
    std::fs::read(f)
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
