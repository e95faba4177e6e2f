//! The JSONL / lines readers (bounded lines, UTF-8 and JSON errors) through a
//! real file, then the quality filters on whatever documents come out.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("backforth-fuzz-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let p = dir.join("in.jsonl");
    if std::fs::write(&p, data).is_err() {
        return;
    }
    let opts = backforth_corpus::readers::ReaderOptions { max_line_bytes: 4096, ..Default::default() };
    let cfg = backforth_corpus::filter::FilterConfig::default();
    for d in backforth_corpus::readers::DocumentStream::new(vec![p], opts) {
        let _ = backforth_corpus::filter::text_problem(&d.text, &cfg);
        let _ = backforth_corpus::segment::segments(&d.text);
    }
});
