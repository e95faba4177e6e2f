//! Wikitext → plain text, then segmenting.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(text) = backforth_corpus::readers::wiki::wikitext_to_text(s) {
            let _ = backforth_corpus::segment::segments(&text);
        }
    }
});
