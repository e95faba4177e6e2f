//! Property: the shards of a plan, read with the real corpus reader, give
//! exactly the documents (ids, line numbers, texts, in order) and the skip
//! counts of one reader over the whole input, for random files — valid and
//! broken JSON lines, blank lines, CRLF, over-long lines, no final newline,
//! a gzip file that cannot be split — and random shard counts.

use backforth_corpus::readers::{DocumentStream, InputFormat, ReaderOptions};
use backforth_shard::plan::{assign, list_inputs};
use rand::{Rng, SeedableRng};
use std::io::Write;

fn random_line(rng: &mut impl Rng, i: usize) -> String {
    match rng.gen_range(0..10) {
        0 => String::new(),           // blank
        1 => "{not json".to_string(), // invalid
        2 => format!("{{\"text\": \"{}\"}}", "x".repeat(rng.gen_range(300..600))), // over max_line_bytes
        3 => format!("{{\"id\": \"d{i}\", \"text\": \"crlf {i}\"}}\r"),
        _ => format!(
            "{{\"id\": \"d{i}\", \"text\": \"{}\"}}",
            "word ".repeat(rng.gen_range(1..40))
        ),
    }
}

#[test]
fn shards_read_every_document_once_in_order() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let (mut ranged_parts, mut all_docs) = (0, 0);
    for case in 0..40 {
        let d = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        let mut n = 0;
        for f in 0..rng.gen_range(1..4) {
            let gz = rng.gen_bool(0.2);
            let p = d
                .path()
                .join(format!("f{f}.jsonl{}", if gz { ".gz" } else { "" }));
            let mut body = String::new();
            for _ in 0..rng.gen_range(0..60) {
                body += &random_line(&mut rng, n);
                body.push('\n');
                n += 1;
            }
            if rng.gen_bool(0.3) {
                body.pop(); // no final newline
            }
            if gz {
                let mut e = flate2::write::GzEncoder::new(
                    std::fs::File::create(&p).unwrap(),
                    flate2::Compression::fast(),
                );
                e.write_all(body.as_bytes()).unwrap();
                e.finish().unwrap();
            } else {
                std::fs::write(&p, body).unwrap();
            }
            paths.push(p.display().to_string());
        }
        let opts = ReaderOptions {
            paths,
            format: InputFormat::Auto,
            max_line_bytes: 400,
            ..Default::default()
        };
        let files = list_inputs(&opts).unwrap();
        let whole_paths = files.iter().map(|f| f.path.clone()).collect();
        let mut whole = DocumentStream::new(whole_paths, opts.clone());
        let expect: Vec<_> = whole.by_ref().map(|d| (d.id, d.source, d.text)).collect();
        let shards = rng.gen_range(1..7);
        let mut got = Vec::new();
        let (mut docs, mut skipped) = (0, 0);
        for s in assign(&files, shards) {
            ranged_parts += s.parts.iter().filter(|p| p.range.is_some()).count();
            let mut st = DocumentStream::from_parts(s.parts, opts.clone());
            got.extend(st.by_ref().map(|d| (d.id, d.source, d.text)));
            docs += st.stats.documents;
            skipped += st.stats.skipped_total();
        }
        assert_eq!(got, expect, "case {case}: {shards} shards");
        all_docs += expect.len();
        assert_eq!(docs, whole.stats.documents, "case {case}");
        assert_eq!(
            skipped,
            whole.stats.skipped_total(),
            "case {case}: skips {:?}",
            whole.stats.skipped
        );
    }
    // not vacuous: files were cut mid-file and documents were read
    assert!(
        ranged_parts > 50 && all_docs > 500,
        "{ranged_parts} ranges, {all_docs} documents"
    );
}
