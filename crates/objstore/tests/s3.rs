//! The object-store seam against a real S3 server (moto on loopback):
//! listing and globs, streaming and ranged reads, multipart upload,
//! download, create-only puts.

mod moto;

use backforth_objstore::{expand, Location, PART_BYTES};
use std::io::Read;

#[test]
fn s3_list_read_upload_download_and_create_only() {
    let d = tempfile::tempdir().unwrap();
    let Some(s3) = moto::Moto::with_bucket(d.path(), "corpus") else {
        return;
    };
    let root = Location::parse("s3://corpus").unwrap();
    for (k, body) in [
        ("in/a.jsonl", "{\"text\":\"a\"}\n"),
        ("in/b.jsonl", "{\"text\":\"bb\"}\n"),
        ("in/c.txt", "c"),
    ] {
        root.join(k).put(body.as_bytes().to_vec()).unwrap();
    }
    let got: Vec<(String, u64)> = expand("s3://corpus/in/*.jsonl")
        .unwrap()
        .into_iter()
        .map(|(l, n)| (l.url(), n))
        .collect();
    assert_eq!(
        got,
        [
            ("s3://corpus/in/a.jsonl".to_string(), 13),
            ("s3://corpus/in/b.jsonl".to_string(), 14)
        ]
    );
    assert_eq!(expand("s3://corpus/in/").unwrap().len(), 3);
    assert!(expand("s3://corpus/none/*.gz").is_err());

    // a file over one part goes up in parts and comes back byte for byte
    let big: Vec<u8> = (0..(2 * PART_BYTES + 12345))
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let src = d.path().join("big.bin");
    std::fs::write(&src, &big).unwrap();
    let obj = root.join("out/big.bin");
    assert_eq!(obj.upload(&src).unwrap(), big.len() as u64);
    assert_eq!(obj.head().unwrap(), Some(big.len() as u64));
    let back = d.path().join("back.bin");
    obj.download(&back).unwrap();
    assert!(std::fs::read(&back).unwrap() == big);
    // streaming read from an offset and a ranged read
    let mut tail = Vec::new();
    obj.reader(PART_BYTES as u64 + 3)
        .unwrap()
        .read_to_end(&mut tail)
        .unwrap();
    assert!(tail[..] == big[PART_BYTES + 3..]);
    assert_eq!(&obj.get_range(10, 20).unwrap()[..], &big[10..20]);

    // a second writer of a marker is refused; the first stays
    let marker = root.join("out/shards/00000/_DONE.json");
    assert!(marker.put_create(b"{\"first\":1}".to_vec()).unwrap());
    assert!(!marker.put_create(b"{\"second\":2}".to_vec()).unwrap());
    assert_eq!(&marker.get().unwrap().unwrap()[..], b"{\"first\":1}");
    let log = std::fs::read_to_string(&s3.log).unwrap();
    assert!(
        !log.contains(moto::SECRET),
        "the secret key reached the server log"
    );
}
