//! The keys of a Secret as the drivers and the job programs read them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kstash_storage::SecretData;

/// The keys of a Secret: `data` (already base64-decoded by the type) overlaid with
/// `stringData`, as the API server merges them.
pub fn secret_data(secret: &Secret) -> SecretData {
    let mut data = BTreeMap::new();
    for (k, v) in secret.data.iter().flatten() {
        data.insert(k.clone(), v.0.clone());
    }
    for (k, v) in secret.string_data.iter().flatten() {
        data.insert(k.clone(), v.as_bytes().to_vec());
    }
    SecretData {
        name: format!(
            "{}/{}",
            secret.metadata.namespace.as_deref().unwrap_or_default(),
            secret.metadata.name.as_deref().unwrap_or_default()
        ),
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    #[test]
    fn secret_data_merges_data_and_string_data() {
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some("enc".into()),
                namespace: Some("demo".into()),
                ..Default::default()
            },
            data: Some(BTreeMap::from([
                ("RESTIC_PASSWORD".to_string(), ByteString(b"old\n".to_vec())),
                ("OTHER".to_string(), ByteString(b"x".to_vec())),
            ])),
            string_data: Some(BTreeMap::from([(
                "RESTIC_PASSWORD".to_string(),
                "new".to_string(),
            )])),
            ..Default::default()
        };
        let d = secret_data(&secret);
        assert_eq!(d.name, "demo/enc");
        assert_eq!(d.get("RESTIC_PASSWORD").as_deref(), Some("new"));
        assert_eq!(d.get("OTHER").as_deref(), Some("x"));
    }
}
