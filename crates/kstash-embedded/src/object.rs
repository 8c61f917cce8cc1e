//! Object documents: resolving an object's kind through the registry, normalising its identity
//! (namespace defaulting, generateName), validating the metadata the store relies on, and small
//! accessors for metadata fields.

use kstash_api::meta::{self, ResourceType};
use serde_json::{Map, Value};

use crate::error::{Result, StoreError, object_ref};
use crate::selector;

/// Namespace used for namespaced objects that name none, as kubectl does.
pub const DEFAULT_NAMESPACE: &str = "default";

/// Alphabet Kubernetes uses for `generateName` suffixes (no vowels, no look-alikes).
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of a `generateName` suffix.
const SUFFIX_LEN: usize = 5;

/// Best-effort human name of a possibly invalid object, for error messages.
pub fn describe(obj: &Value) -> String {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("object");
    let ns = meta_str(obj, "namespace").unwrap_or("");
    match meta_str(obj, "name").or_else(|| meta_str(obj, "generateName")) {
        Some(name) => object_ref(kind, ns, name),
        None => kind.to_string(),
    }
}

pub(crate) fn invalid(object: impl Into<String>, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid {
        object: object.into(),
        reason: reason.into(),
    }
}

/// Resolve `apiVersion` + `kind` through the registry.
pub fn resource_type(obj: &Value) -> Result<&'static ResourceType> {
    if !obj.is_object() {
        return Err(invalid(
            "object",
            "an object document must be a JSON/YAML mapping",
        ));
    }
    let api_version = obj.get("apiVersion").and_then(Value::as_str);
    let kind = obj.get("kind").and_then(Value::as_str);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        return Err(invalid(describe(obj), "apiVersion and kind are required"));
    };
    meta::by_api_version_kind(api_version, kind).ok_or_else(|| {
        let known: Vec<String> = meta::every_kind()
            .map(|t| format!("{} {}", t.api_version(), t.kind))
            .collect();
        invalid(
            describe(obj),
            format!(
                "unknown kind {kind:?} in apiVersion {api_version:?}; known kinds: {}",
                known.join(", ")
            ),
        )
    })
}

/// The storage namespace of `rt` for a namespace a caller gave: cluster-scoped kinds always use
/// `""`; namespaced kinds use `ns`, or [`DEFAULT_NAMESPACE`] when it is empty.
pub fn effective_namespace(rt: &ResourceType, ns: &str) -> String {
    if !rt.namespaced {
        String::new()
    } else if ns.is_empty() {
        DEFAULT_NAMESPACE.to_string()
    } else {
        ns.to_string()
    }
}

/// Identity of an object after normalisation.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub rt: &'static ResourceType,
    pub namespace: String,
    /// `None` when only `generateName` was given (create only).
    pub name: Option<String>,
    pub generate_name: Option<String>,
}

impl Identity {
    pub fn describe(&self) -> String {
        let name = self
            .name
            .clone()
            .or_else(|| self.generate_name.as_ref().map(|g| format!("{g}*")))
            .unwrap_or_default();
        object_ref(self.rt.kind, &self.namespace, &name)
    }
}

/// Resolve the kind, default or reject the namespace (writing the result back into
/// `metadata.namespace`), and validate the metadata fields the store relies on.
pub(crate) fn normalize(obj: &mut Value) -> Result<Identity> {
    let rt = resource_type(obj)?;
    let what = describe(obj);
    let root = obj
        .as_object_mut()
        .ok_or_else(|| invalid(&what, "an object document must be a mapping"))?;
    let meta = match root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        Value::Object(m) => m,
        _ => return Err(invalid(&what, "metadata must be a mapping")),
    };
    let ns = match meta.get("namespace") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(invalid(&what, "metadata.namespace must be a string")),
    };
    let namespace = if rt.namespaced {
        let ns = effective_namespace(rt, &ns);
        validate_dns_label(&ns).map_err(|r| invalid(&what, format!("metadata.namespace {ns:?}: {r}")))?;
        meta.insert("namespace".into(), Value::String(ns.clone()));
        ns
    } else {
        if !ns.is_empty() {
            return Err(invalid(
                &what,
                format!(
                    "{} is cluster-scoped and cannot have a namespace (got {ns:?}); remove metadata.namespace",
                    rt.kind
                ),
            ));
        }
        meta.remove("namespace");
        String::new()
    };
    let string_field = |field: &str| -> Result<Option<String>> {
        match meta.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(&what, format!("metadata.{field} must be a string"))),
        }
    };
    let name = string_field("name")?;
    let generate_name = string_field("generateName")?;
    if let Some(n) = &name {
        validate_name(rt, n).map_err(|r| invalid(&what, format!("metadata.name {n:?}: {r}")))?;
    }
    validate_metadata(meta).map_err(|r| invalid(&what, r))?;
    Ok(Identity {
        rt,
        namespace,
        name,
        generate_name,
    })
}

fn validate_metadata(meta: &Map<String, Value>) -> std::result::Result<(), String> {
    if let Some(labels) = meta.get("labels").filter(|v| !v.is_null()) {
        let labels = labels
            .as_object()
            .ok_or("metadata.labels must be a mapping of strings")?;
        for (k, v) in labels {
            let v = v
                .as_str()
                .ok_or_else(|| format!("metadata.labels.{k} must be a string"))?;
            selector::validate_key(k)?;
            selector::validate_value(v)?;
        }
    }
    if let Some(ann) = meta.get("annotations").filter(|v| !v.is_null()) {
        let ann = ann
            .as_object()
            .ok_or("metadata.annotations must be a mapping of strings")?;
        if let Some((k, _)) = ann.iter().find(|(_, v)| !v.is_string()) {
            return Err(format!("metadata.annotations.{k} must be a string"));
        }
    }
    if let Some(f) = meta.get("finalizers").filter(|v| !v.is_null()) {
        let ok = f
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s.as_str().is_some_and(|s| !s.is_empty())));
        if !ok {
            return Err("metadata.finalizers must be a list of non-empty strings".into());
        }
    }
    if let Some(o) = meta.get("ownerReferences").filter(|v| !v.is_null()) {
        let refs = o.as_array().ok_or("metadata.ownerReferences must be a list")?;
        for (i, r) in refs.iter().enumerate() {
            if r.get("uid").and_then(Value::as_str).is_none_or(str::is_empty) {
                return Err(format!("metadata.ownerReferences[{i}].uid is required"));
            }
        }
    }
    Ok(())
}

/// Object names: DNS-1123 subdomains (labels for Namespace), as Kubernetes requires; the rules
/// are `kstash_api::names`'.
fn validate_name(rt: &ResourceType, name: &str) -> std::result::Result<(), String> {
    let why = if rt.kind == "Namespace" {
        kstash_api::names::dns1123_label_error(name)
    } else {
        kstash_api::names::dns1123_subdomain_error(name)
    };
    why.map_or(Ok(()), Err)
}

fn validate_dns_label(s: &str) -> std::result::Result<(), String> {
    kstash_api::names::dns1123_label_error(s).map_or(Ok(()), Err)
}

/// `metadata.<field>` as a string.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// Mutable `metadata` mapping (created when absent). Panics if `obj` is not a mapping, which
/// normalised objects always are.
pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    let root = obj.as_object_mut().expect("object documents are mappings");
    let meta = root
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut().expect("metadata was just made a mapping")
}

/// `metadata.finalizers`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    string_list(obj.pointer("/metadata/finalizers"))
}

/// The uids in `metadata.ownerReferences`.
pub fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn string_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

/// Current time as Kubernetes writes timestamps: RFC 3339, UTC, whole seconds.
pub(crate) fn now_timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Five random characters for `generateName`.
pub(crate) fn random_suffix() -> String {
    let bytes = *uuid::Uuid::new_v4().as_bytes();
    bytes
        .iter()
        .take(SUFFIX_LEN)
        .map(|b| SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn namespaced_kinds_default_to_the_default_namespace() {
        let mut obj = json!({
            "apiVersion": "core.kubestash.com/v1alpha1",
            "kind": "BackupConfiguration",
            "metadata": {"name": "sample"}
        });
        let id = normalize(&mut obj).unwrap();
        assert_eq!(id.namespace, "default");
        assert_eq!(obj["metadata"]["namespace"], "default");
    }

    #[test]
    fn unknown_kinds_and_bad_names_are_invalid() {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
        let err = normalize(&mut pod).unwrap_err();
        assert!(err.to_string().contains("unknown kind"), "{err}");

        let mut upper = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "Bad"}});
        assert!(normalize(&mut upper).unwrap_err().is_invalid());

        let mut labels = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "labels": {"a": 1}}});
        assert!(normalize(&mut labels).unwrap_err().is_invalid());
    }

    #[test]
    fn generated_suffixes_are_five_lower_case_alphanumerics() {
        let s = random_suffix();
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    }
}
