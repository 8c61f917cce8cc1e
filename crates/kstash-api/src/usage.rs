//! Usage policies: whether a namespace may use a BackupStorage, RetentionPolicy, HookTemplate or
//! BackupBlueprint, and the lookup order for a namespace's default storage and retention policy
//! (same namespace `from: Same`, then `from: Selector` matching the namespace, then `from: All`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::common::{FromNamespaces, ObjectReference, UsagePolicy};
use crate::object::Object;

/// Labels of `namespace`, from a stored Namespace object (plus the automatic
/// `kubernetes.io/metadata.name` label, as Kubernetes sets it).
pub fn namespace_labels(namespace: &str, existing: &[Object]) -> BTreeMap<String, String> {
    let mut labels = existing
        .iter()
        .find_map(|o| match o {
            Object::Namespace(n) if n.metadata.name.as_deref() == Some(namespace) => {
                n.metadata.labels.clone()
            }
            _ => None,
        })
        .unwrap_or_default();
    labels.insert("kubernetes.io/metadata.name".into(), namespace.into());
    labels
}

/// Does `selector` match `labels`? (`matchLabels` and `matchExpressions` In/NotIn/Exists/DoesNotExist.)
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    if let Some(ml) = &selector.match_labels
        && ml.iter().any(|(k, v)| labels.get(k) != Some(v))
    {
        return false;
    }
    for e in selector.match_expressions.iter().flatten() {
        let have = labels.get(&e.key);
        let values = e.values.clone().unwrap_or_default();
        let ok = match e.operator.as_str() {
            "In" => have.is_some_and(|v| values.contains(v)),
            "NotIn" => have.is_none_or(|v| !values.contains(v)),
            "Exists" => have.is_some(),
            "DoesNotExist" => have.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// May an object in `owner_ns` with `policy` be used from `user_ns`?
pub fn allows(policy: Option<&UsagePolicy>, owner_ns: &str, user_ns: &str, existing: &[Object]) -> bool {
    let from = policy
        .and_then(|p| p.allowed_namespaces.from)
        .unwrap_or(FromNamespaces::Same);
    match from {
        FromNamespaces::All => true,
        FromNamespaces::Same => owner_ns == user_ns,
        FromNamespaces::Selector => {
            let Some(sel) = policy.and_then(|p| p.allowed_namespaces.selector.as_ref()) else {
                return false;
            };
            selector_matches(sel, &namespace_labels(user_ns, existing))
        }
    }
}

fn default_lookup<'a, T: 'a>(
    ns: &str,
    existing: &'a [Object],
    pick: impl Fn(&'a Object) -> Option<(&'a T, bool, Option<&'a UsagePolicy>)>,
) -> Option<ObjectReference> {
    let candidates: Vec<(&Object, Option<&UsagePolicy>)> = existing
        .iter()
        .filter_map(|o| {
            pick(o)
                .filter(|(_, is_default, _)| *is_default)
                .map(|(_, _, u)| (o, u))
        })
        .collect();
    let from = |u: Option<&UsagePolicy>| {
        u.and_then(|p| p.allowed_namespaces.from)
            .unwrap_or(FromNamespaces::Same)
    };
    let pass = |want: FromNamespaces| {
        candidates.iter().find(|(o, u)| {
            let owner = o.namespace().unwrap_or("default");
            from(*u) == want
                && allows(*u, owner, ns, existing)
                && (want != FromNamespaces::Same || owner == ns)
        })
    };
    [
        FromNamespaces::Same,
        FromNamespaces::Selector,
        FromNamespaces::All,
    ]
    .into_iter()
    .find_map(pass)
    .map(|(o, _)| ObjectReference {
        namespace: o.namespace().map(str::to_string),
        name: o.name().to_string(),
    })
}

/// The default BackupStorage a BackupConfiguration in `ns` gets.
pub fn default_storage(ns: &str, existing: &[Object]) -> Option<ObjectReference> {
    default_lookup(ns, existing, |o| match o {
        Object::BackupStorage(b) => Some((b, b.spec.default, b.spec.usage_policy.as_ref())),
        _ => None,
    })
}

/// The default RetentionPolicy a backend in `ns` gets.
pub fn default_retention_policy(ns: &str, existing: &[Object]) -> Option<ObjectReference> {
    default_lookup(ns, existing, |o| match o {
        Object::RetentionPolicy(r) => Some((r, r.spec.default, r.spec.usage_policy.as_ref())),
        _ => None,
    })
}
