//! Admission: what an API server does to a document before storing it — parse into its kind,
//! note unknown fields, apply defaults (mutating webhook), validate (validating webhook).

use serde_json::Value;

use crate::object::{FieldError, Object};
use crate::validation::{Context, validate};

/// An object that passed admission, with warnings about fields kstash does not know.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// The defaulted object, ready to store.
    pub object: Object,
    /// Unknown fields of the input document (kept in nothing) and what kstash cannot use as
    /// written (`validation::warnings`); reported to the user.
    pub warnings: Vec<FieldError>,
}

/// Admit `doc` given what is `stored`; `old` is the stored version when updating.
pub fn admit(doc: &Value, stored: &[Object], old: Option<&Object>) -> Result<Admitted, Vec<FieldError>> {
    let mut object = Object::from_value(doc).map_err(|e| vec![e])?;
    let mut warnings = object.unknown_fields(doc);
    crate::defaults::apply(&mut object, stored);
    warnings.extend(crate::validation::warnings(&object));
    let errors = validate(
        &object,
        Context {
            existing: stored,
            old,
        },
    );
    if errors.is_empty() {
        Ok(Admitted { object, warnings })
    } else {
        Err(errors)
    }
}
