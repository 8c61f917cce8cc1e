//! The [`Resources`] seam implemented by the SQLite [`Store`], so reconcilers and executors run on
//! the embedded runtime.

use kstash_api::client::{ClientError, ClientResult, Resources};
use kstash_api::meta::ResourceType;
use serde_json::Value;

use crate::error::StoreError;
use crate::selector::{LabelSelector, Operator, Requirement};
use crate::store::Store;

fn map_err(e: StoreError) -> ClientError {
    let message = e.to_string();
    match e {
        StoreError::NotFound { .. } => ClientError::NotFound(message),
        StoreError::Conflict {
            kind,
            namespace,
            name,
            reason,
        } => ClientError::Conflict {
            object: crate::error::object_ref(&kind, &namespace, &name),
            reason,
        },
        StoreError::AlreadyExists {
            kind,
            namespace,
            name,
        } => ClientError::Conflict {
            object: crate::error::object_ref(&kind, &namespace, &name),
            reason: "already exists".into(),
        },
        StoreError::Invalid { object, reason } => ClientError::Invalid {
            object,
            message: reason,
        },
        _ => ClientError::Other(message),
    }
}

impl Resources for Store {
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        match Store::get(self, rt, namespace, name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn get_lean(
        &self,
        rt: &'static ResourceType,
        namespace: &str,
        name: &str,
    ) -> ClientResult<Option<Value>> {
        match Store::get_lean(self, rt, namespace, name) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        let selector = if labels.is_empty() {
            LabelSelector::everything()
        } else {
            LabelSelector::from_requirements(
                labels
                    .iter()
                    .map(|(k, v)| Requirement {
                        key: (*k).to_string(),
                        operator: Operator::Equals((*v).to_string()),
                    })
                    .collect(),
            )
        };
        Store::list(self, rt, namespace, &selector).map_err(map_err)
    }

    fn create(&self, obj: Value) -> ClientResult<Value> {
        Store::create(self, obj).map_err(map_err)
    }

    fn update(&self, obj: Value) -> ClientResult<Value> {
        Store::update(self, obj).map_err(map_err)
    }

    fn update_status(&self, obj: Value) -> ClientResult<Value> {
        Store::update_status(self, obj).map_err(map_err)
    }

    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()> {
        match Store::delete(self, rt, namespace, name) {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }
}
