//! A deterministic stand-in sentence embedder for unit tests that exercise
//! plumbing (windows, maxima, feature wiring); the real MiniLM is tested in
//! the CLI's tests.

/// Bag-of-letters vectors, L2-normalised.
pub(crate) struct Letters;

impl backforth_inference::encoder::SentenceEmbedder for Letters {
    fn embedder_id(&self) -> String {
        "letters".into()
    }
    fn embed_texts(&mut self, texts: &[&str]) -> anyhow::Result<Vec<Vec<f32>>> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0f32; 26];
                for c in t.chars().filter(|c| c.is_ascii_lowercase()) {
                    v[(c as u8 - b'a') as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-9);
                v.into_iter().map(|x| x / n).collect()
            })
            .collect())
    }
}
