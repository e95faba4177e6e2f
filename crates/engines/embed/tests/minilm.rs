//! Real all-MiniLM-L6-v2 (fetched by `scripts/fetch-assets.sh minilm`).
use backforth_embed::{cosine, Embedder};
use std::path::PathBuf;

fn model_dir() -> PathBuf {
    let cache = std::env::var("BACKFORTH_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/backforth"));
    let d = cache.join("models/all-MiniLM-L6-v2");
    assert!(
        d.join("model.safetensors").is_file(),
        "{} missing: run scripts/fetch-assets.sh minilm",
        d.display()
    );
    d
}

#[test]
fn paraphrases_are_closer_than_unrelated_and_vectors_are_unit_length() {
    let e = Embedder::load(&model_dir()).unwrap();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_seq_len(), 256);
    let texts = [
        "How do I reverse a list in Python?",
        "What is the way to invert the order of a Python list?",
        "The cat slept on the warm windowsill all afternoon.",
        "A kitten was napping in the sun by the window.",
        "Interest rates were raised by the central bank this quarter.",
    ];
    let v = e.embed_batch(&texts).unwrap();
    for x in &v {
        let n: f32 = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4, "norm {n}");
    }
    let para = cosine(&v[0], &v[1]);
    let para2 = cosine(&v[2], &v[3]);
    for (i, j) in [(0, 2), (0, 4), (1, 3), (2, 4), (3, 4), (1, 4)] {
        let c = cosine(&v[i], &v[j]);
        assert!(
            para > c + 0.2 && para2 > c + 0.2,
            "paraphrase {para:.3}/{para2:.3} vs unrelated ({i},{j}) {c:.3}"
        );
    }
}

#[test]
fn padding_does_not_change_an_embedding() {
    // Mean pooling must use the attention mask: a short text embedded alone and
    // next to a long one (so it is padded) gives the same vector.
    let e = Embedder::load(&model_dir()).unwrap();
    let short = "Short sentence.";
    let long = "This is a considerably longer sentence that forces the short one in the same batch to be padded with many pad tokens.";
    let alone = e.embed_batch(&[short]).unwrap();
    let padded = e.embed_batch(&[short, long]).unwrap();
    let d: f32 = alone[0]
        .iter()
        .zip(&padded[0])
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-4, "max abs diff {d}");
    // embed_all sorts by length internally but returns input order.
    let texts = vec![long.to_string(), short.to_string(), String::new()];
    let all = e.embed_all(&texts, 2, |_| {}).unwrap();
    assert!(cosine(&all[1], &alone[0]) > 0.9999);
    assert_eq!(all.len(), 3);
    assert!(e.token_count(&"word ".repeat(1000)).unwrap() == 256);
}
