//! An in-memory [`Resources`]: objects in a map, with resourceVersion checks, label selection
//! and a status that only `update_status` writes. For unit tests of anything that reads or writes
//! through the client seam (the resolver, planners, executors' lookups) without a store or a server.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::client::{ClientError, ClientResult, Resources};
use crate::meta::{self, ResourceType};

/// `(kind, namespace, name)`; cluster-scoped kinds use namespace `""`.
type Key = (String, String, String);

/// Objects kept in memory; see the module documentation.
#[derive(Debug, Default)]
pub struct MemoryResources {
    objects: Mutex<BTreeMap<Key, Value>>,
}

fn text<'v>(obj: &'v Value, ptr: &str) -> &'v str {
    obj.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn key_of(rt: &ResourceType, namespace: &str, name: &str) -> Key {
    let ns = if rt.namespaced { namespace } else { "" };
    (rt.key_kind().to_string(), ns.to_string(), name.to_string())
}

fn resource_type(obj: &Value) -> ClientResult<&'static ResourceType> {
    meta::by_api_version_kind(text(obj, "/apiVersion"), text(obj, "/kind")).ok_or_else(|| {
        ClientError::Invalid {
            object: format!("{} {}", text(obj, "/kind"), text(obj, "/metadata/name")),
            message: "unknown apiVersion and kind".into(),
        }
    })
}

impl MemoryResources {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding `objects` (each with apiVersion and kind), as if created in order.
    pub fn with(objects: impl IntoIterator<Item = Value>) -> ClientResult<Self> {
        let store = Self::new();
        for o in objects {
            let status = o.get("status").cloned();
            let created = store.create(o)?;
            if let Some(status) = status {
                let mut with_status = created;
                with_status["status"] = status;
                store.update_status(with_status)?;
            }
        }
        Ok(store)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, Value>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn key(obj: &Value) -> ClientResult<(&'static ResourceType, Key)> {
        let rt = resource_type(obj)?;
        Ok((
            rt,
            key_of(rt, text(obj, "/metadata/namespace"), text(obj, "/metadata/name")),
        ))
    }

    /// Replace the stored object after a resourceVersion check; `keep` says which top-level
    /// fields come from the stored object rather than from `obj`.
    fn replace(&self, mut obj: Value, keep_status: bool) -> ClientResult<Value> {
        let (rt, key) = Self::key(&obj)?;
        let mut objects = self.lock();
        let object = crate::object::describe(rt, Some(&key.1), &key.2);
        let Some(current) = objects.get(&key) else {
            return Err(ClientError::NotFound(object));
        };
        let want = text(&obj, "/metadata/resourceVersion");
        let have = text(current, "/metadata/resourceVersion");
        if !want.is_empty() && want != have {
            return Err(ClientError::Conflict {
                object,
                reason: format!("resourceVersion {want} is stale (now {have})"),
            });
        }
        let version: u64 = have.parse().unwrap_or(0) + 1;
        if keep_status {
            match current.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(map) = obj.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        } else {
            let status = obj.get("status").cloned();
            obj = current.clone();
            match status {
                Some(s) => obj["status"] = s,
                None => {
                    if let Some(map) = obj.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        obj["metadata"]["resourceVersion"] = Value::String(version.to_string());
        objects.insert(key, obj.clone());
        Ok(obj)
    }
}

impl Resources for MemoryResources {
    fn get(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<Option<Value>> {
        Ok(self.lock().get(&key_of(rt, namespace, name)).cloned())
    }

    fn list(
        &self,
        rt: &'static ResourceType,
        namespace: Option<&str>,
        labels: &[(&str, &str)],
    ) -> ClientResult<Vec<Value>> {
        Ok(self
            .lock()
            .iter()
            .filter(|((kind, ns, _), _)| kind == rt.key_kind() && namespace.is_none_or(|n| n == ns))
            .filter(|(_, obj)| {
                labels.iter().all(|(k, v)| {
                    obj.pointer("/metadata/labels")
                        .and_then(|l| l.get(*k))
                        .and_then(Value::as_str)
                        == Some(*v)
                })
            })
            .map(|(_, obj)| obj.clone())
            .collect())
    }

    fn create(&self, mut obj: Value) -> ClientResult<Value> {
        let (rt, key) = Self::key(&obj)?;
        let mut objects = self.lock();
        if objects.contains_key(&key) {
            return Err(ClientError::Conflict {
                object: crate::object::describe(rt, Some(&key.1), &key.2),
                reason: "already exists".into(),
            });
        }
        if let Some(map) = obj.as_object_mut() {
            map.remove("status");
        }
        let uid = format!("uid-{}-{}-{}", key.0, key.1, key.2).to_lowercase();
        obj["metadata"]["resourceVersion"] = Value::String("1".into());
        obj["metadata"]["uid"] = Value::String(uid);
        obj["metadata"]["generation"] = Value::from(1);
        objects.insert(key, obj.clone());
        Ok(obj)
    }

    fn update(&self, obj: Value) -> ClientResult<Value> {
        self.replace(obj, true)
    }

    fn update_status(&self, obj: Value) -> ClientResult<Value> {
        self.replace(obj, false)
    }

    fn delete(&self, rt: &'static ResourceType, namespace: &str, name: &str) -> ClientResult<()> {
        self.lock().remove(&key_of(rt, namespace, name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ResourcesExt;
    use crate::storage::Repository;
    use serde_json::json;

    fn repo(name: &str, labels: Value) -> Value {
        json!({
            "apiVersion": "storage.kubestash.com/v1alpha1",
            "kind": "Repository",
            "metadata": {"name": name, "namespace": "demo", "labels": labels},
            "spec": {"path": name},
            "status": {"phase": "Ready"},
        })
    }

    #[test]
    fn objects_are_read_listed_by_label_and_versioned() {
        let store = MemoryResources::with([repo("a", json!({"x": "1"})), repo("b", json!({}))]).unwrap();
        let a: Repository = store.must_get("demo", "a").unwrap();
        assert_eq!(a.spec.path, "a");
        assert!(a.status.is_some(), "with() keeps the given status");
        assert_eq!(
            store
                .list_as::<Repository>(Some("demo"), &[("x", "1")])
                .unwrap()
                .len(),
            1
        );
        assert_eq!(store.list_as::<Repository>(None, &[]).unwrap().len(), 2);
        assert!(store.create(repo("a", json!({}))).unwrap_err().is_conflict());

        let mut stale = a.clone();
        store.update_as(&a).unwrap();
        stale.spec.path = "other".into();
        assert!(store.update_as(&stale).unwrap_err().is_conflict());
        store.delete(&meta::REPOSITORY, "demo", "a").unwrap();
        assert!(store.get_as::<Repository>("demo", "a").unwrap().is_none());
    }
}
