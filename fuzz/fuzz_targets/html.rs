//! Main-content extraction on arbitrary (lossily decoded) HTML.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let html = String::from_utf8_lossy(data);
    if let Ok((_, text)) = backforth_corpus::readers::html::html_to_text(&html, None) {
        let _ = backforth_corpus::segment::segments(&text);
    }
});
