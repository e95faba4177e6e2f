//! WARC framing, HTTP payload split and HTML extraction on arbitrary bytes:
//! must never panic; every item is a document or a counted problem.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = backforth_corpus::readers::warc::WarcSource::new(std::path::Path::new("fuzz.warc"), Box::new(std::io::Cursor::new(data.to_vec())));
    for _ in src.take(1000) {}
});
