//! The sentence encoder run by llama.cpp (a GGUF our code writes from the
//! all-MiniLM-L6-v2 folder) gives the vectors candle gives (candle's match
//! sentence-transformers', BENCHMARKS.md): the same ids, mean pooling and
//! normalisation, on real news text including documents cut at 256 tokens.

mod common;
use common::*;

#[test]
fn llama_cpp_encoder_matches_candle() {
    let dir = cache().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} missing: run scripts/fetch-assets.sh minilm",
        dir.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let gguf = tmp.path().join("minilm.f32.gguf");
    backforth_embed::write_gguf(&dir, &gguf).unwrap();
    assert_eq!(
        backforth_embed::gguf_tensor_name("encoder.layer.3.attention.self.query.weight").as_deref(),
        Some("blk.3.attn_q.weight")
    );
    assert_eq!(
        backforth_embed::gguf_tensor_name("bert.encoder.layer.0.output.LayerNorm.gamma").as_deref(),
        Some("blk.0.layer_output_norm.weight")
    );
    assert_eq!(
        backforth_embed::gguf_tensor_name("pooler.dense.weight"),
        None
    );

    let candle = backforth_embed::Embedder::load(&dir).unwrap();
    let enc = backforth_llama::LlamaEncoder::load(&gguf, 2).unwrap();
    let llama = backforth_embed::Embedder::with_encoder(&dir, Box::new(enc)).unwrap();
    assert_ne!(
        candle.model_id(),
        llama.model_id(),
        "cached vectors of one engine are not taken for the other's"
    );

    // whole stories (many over 256 tokens: truncated), their first sentences, an empty text
    let lee = std::fs::read_to_string(lee_corpus()).unwrap();
    let mut texts: Vec<String> = lee.lines().take(40).map(String::from).collect();
    texts.extend(
        lee.lines()
            .take(40)
            .filter_map(|l| l.split(". ").next().map(String::from)),
    );
    texts.push(String::new());
    assert!(
        texts.iter().any(|t| candle.token_count(t).unwrap() == 256),
        "some texts must be truncated"
    );
    let a = candle.embed_all(&texts, 16, |_| {}).unwrap();
    let b = llama.embed_all(&texts, 16, |_| {}).unwrap();
    let min = a
        .iter()
        .zip(&b)
        .map(|(x, y)| backforth_embed::cosine(x, y))
        .fold(1.0f32, f32::min);
    assert!(min >= 0.9999, "min cosine {min}");
    for v in &b {
        let n: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((n - 1.0).abs() < 1e-4);
    }
}
