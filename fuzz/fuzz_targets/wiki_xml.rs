//! MediaWiki XML export reader on arbitrary bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = backforth_corpus::readers::wiki::WikiSource::new(std::path::Path::new("fuzz.xml"), Box::new(std::io::Cursor::new(data.to_vec())), 1 << 20);
    for _ in src.take(1000) {}
});
