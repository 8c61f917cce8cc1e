//! Reading manifests: multi-document YAML or JSON text into JSON documents (empty documents
//! skipped, `kind: List` expanded), and ordering documents so referents come before referrers.

use serde::Deserialize;
use serde_json::Value;

use crate::meta;

/// A document that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {index}: {message}")]
pub struct ManifestError {
    /// File name or `-` for stdin.
    pub source_name: String,
    /// 1-based index of the document in the file.
    pub index: usize,
    /// What the YAML/JSON parser said.
    pub message: String,
}

/// Split `text` into documents. `source_name` is used in errors.
pub fn parse_documents(source_name: &str, text: &str) -> Result<Vec<Value>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(doc).map_err(|e| ManifestError {
            source_name: source_name.to_string(),
            index: i + 1,
            message: e.to_string(),
        })?;
        match v {
            Value::Null => {}
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                if let Some(Value::Array(items)) = m.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => out.push(v),
            other => {
                return Err(ManifestError {
                    source_name: source_name.to_string(),
                    index: i + 1,
                    message: format!("expected an object with apiVersion and kind, found {other}"),
                });
            }
        }
    }
    Ok(out)
}

/// Rank of a document's kind in apply order (Namespaces and Secrets first, sessions last);
/// unknown kinds sort last.
pub fn apply_rank(doc: &Value) -> usize {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    meta::ALL
        .iter()
        .position(|t| t.kind == kind)
        .unwrap_or(meta::ALL.len())
}

/// Stable-sort documents into apply order.
pub fn sort_for_apply(docs: &mut [Value]) {
    docs.sort_by_key(apply_rank);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_skips_empty_documents_and_expands_lists() {
        let text = "---\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: a}\n---\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: demo}}\n";
        let mut docs = parse_documents("f.yaml", text).unwrap();
        assert_eq!(docs.len(), 2);
        sort_for_apply(&mut docs);
        assert_eq!(docs[0]["kind"], "Namespace");
    }

    #[test]
    fn json_and_errors_name_the_document() {
        assert_eq!(
            parse_documents(
                "f.json",
                r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"x"}}"#
            )
            .unwrap()
            .len(),
            1
        );
        let err = parse_documents("bad.yaml", "a: b\n---\n- 1\n- 2\n").unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.to_string().starts_with("bad.yaml: document 2:"));
    }
}
