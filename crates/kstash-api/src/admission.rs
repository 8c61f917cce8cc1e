//! Admission: what an API server does to a document before storing it — parse into its kind,
//! note unknown fields, apply defaults (mutating webhook), validate (validating webhook).

use serde_json::Value;

use crate::object::{FieldError, Object};
use crate::validation::{Context, check, ignored_namespace};

/// An object that passed admission, with warnings about fields kstash does not know.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The defaulted object, ready to store.
    pub object: Object,
    /// Unknown fields of the input document (kept in nothing) and what KubeStash accepts but
    /// kstash cannot use as written (`validation::check`'s warnings); reported to the user.
    pub warnings: Vec<FieldError>,
}

/// Admit `doc` given what is `stored`; `old` is the stored version when updating.
pub fn admit(doc: &Value, stored: &[Object], old: Option<&Object>) -> Result<Admitted, Vec<FieldError>> {
    let mut object = Object::from_value(doc).map_err(|e| vec![e])?;
    let mut warnings = object.unknown_fields(doc);
    warnings.extend(ignored_namespace(&object));
    crate::defaults::apply(&mut object, stored);
    let checked = check(
        &object,
        Context {
            existing: stored,
            old,
        },
    );
    warnings.extend(checked.warnings);
    if checked.errors.is_empty() {
        Ok(Admitted { object, warnings })
    } else {
        Err(checked.errors)
    }
}
