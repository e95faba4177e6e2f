//! Model references: a model path (or server model name) with LoRA
//! adapters, as one string, so that stages and `BackendProvider`s keep
//! naming a model by `&str`. The embedded engine loads the adapters; the
//! model id it reports includes their hashes.

/// Separator of a model reference naming a base GGUF and a LoRA adapter:
/// `base.gguf+lora:adapter.gguf` (see [`split_model_ref`]); the model
/// strings stages pass to a `BackendProvider` use it.
pub const LORA_SEP: &str = "+lora:";

/// Split a model reference into the base GGUF path and the adapter paths
/// (`base.gguf+lora:a.gguf`; none for a plain path).
pub fn split_model_ref(model: &str) -> (&str, Vec<&str>) {
    let mut parts = model.split(LORA_SEP);
    let base = parts.next().unwrap_or_default();
    (base, parts.filter(|p| !p.is_empty()).collect())
}

/// A model reference for a base GGUF with adapters (the inverse of [`split_model_ref`]).
pub fn model_ref(base: &str, adapters: &[String]) -> String {
    let mut s = base.to_string();
    for a in adapters {
        s.push_str(LORA_SEP);
        s.push_str(a);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_splits_into_what_it_was_made_of() {
        let r = model_ref("m/base.gguf", &["a/one.gguf".to_string()]);
        assert_eq!(r, "m/base.gguf+lora:a/one.gguf");
        assert_eq!(split_model_ref(&r), ("m/base.gguf", vec!["a/one.gguf"]));
        assert_eq!(split_model_ref("plain.gguf"), ("plain.gguf", vec![]));
    }
}
