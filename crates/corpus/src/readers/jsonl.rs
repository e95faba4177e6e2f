//! Dolma / FineWeb JSONL: one JSON object per line with the text and id in
//! configurable fields (Dolma: `id`, `text`, `source`, `metadata`; Soldaini
//! et al. 2024, Dolma toolkit docs). Every other field is kept as metadata.

use crate::document::{Document, SourceLoc};

/// Parse one JSONL line into a document. Errors: (reason, message).
pub fn parse_jsonl(
    bytes: &[u8],
    path: &str,
    line: u64,
    text_field: &str,
    id_field: &str,
) -> std::result::Result<Document, (&'static str, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        (
            "invalid_utf8",
            format!(
                "{path}:{line}: invalid UTF-8 at byte {} of the line, line skipped",
                e.valid_up_to()
            ),
        )
    })?;
    if text.trim().is_empty() {
        return Err(("empty", format!("{path}:{line}: blank line skipped")));
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        (
            "invalid_json",
            format!("{path}:{line}: invalid JSON ({e}), line skipped"),
        )
    })?;
    let serde_json::Value::Object(mut obj) = v else {
        return Err((
            "invalid_json",
            format!("{path}:{line}: not a JSON object, line skipped"),
        ));
    };
    let body = match obj.remove(text_field) {
        Some(serde_json::Value::String(s)) => s,
        Some(_) => {
            return Err((
                "missing_text",
                format!(
                    "{path}:{line}: field `{}` is not a string, line skipped",
                    text_field
                ),
            ))
        }
        None => {
            return Err((
                "missing_text",
                format!("{path}:{line}: no `{}` field, line skipped", text_field),
            ))
        }
    };
    let id = match obj.remove(id_field) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => format!("{path}:{line}"),
    };
    let metadata = if obj.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::Object(obj)
    };
    Ok(Document {
        id,
        source: SourceLoc {
            path: path.to_string(),
            line: Some(line),
        },
        text: body,
        metadata,
    })
}
