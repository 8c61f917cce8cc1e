//! `kstash convert`: print the KubeStash equivalent of Stash v1 manifests (see
//! [`kstash_api::stash::convert`]). AppBindings and Secrets come from the input and the store;
//! for a Stash RestoreSession whose repository is reachable, the restic snapshots its rules
//! choose are named in a comment (unless `--offline`).

use std::process::ExitCode;

use anyhow::Result;
use kstash_api::Object;
use kstash_api::admission::admit;
use kstash_api::appcatalog::AppBinding;
use kstash_api::client::ResourcesExt;
use kstash_api::memory::MemoryResources;
use kstash_api::meta;
use kstash_api::stash::convert::{Conversion, Lookup, convert, render};
use kstash_embedded::Store;
use kstash_embedded::selector::LabelSelector;

use crate::cli::ConvertArgs;
use crate::resources::read_documents;

/// Lookups over the input and the store together.
struct Known<'a>(&'a MemoryResources);

impl Lookup for Known<'_> {
    fn app_binding(&self, namespace: &str, name: &str) -> Option<AppBinding> {
        self.0.get_as(namespace, name).ok().flatten()
    }

    fn secret_has_key(&self, namespace: &str, name: &str, key: &str) -> bool {
        use kstash_api::client::Resources;
        self.0
            .get(&meta::SECRET, namespace, name)
            .ok()
            .flatten()
            .is_some_and(|s| {
                ["data", "stringData"].iter().any(|field| {
                    s[*field]
                        .get(key)
                        .is_some_and(|v| v.as_str().is_some_and(|v| !v.is_empty()))
                })
            })
    }
}

/// `kstash convert -f …`.
pub fn convert_cmd(store: &Store, a: ConvertArgs) -> Result<ExitCode> {
    let docs = read_documents(&a.files.files)?;
    let mut errors = Vec::new();
    let mut stash = Vec::new();
    let mut known = Vec::new();
    // Only what the conversion and a restore's snapshot choice read (not every object stored).
    for rt in [
        &meta::SECRET,
        &meta::APP_BINDING,
        &meta::ADDON,
        &meta::STASH_REPOSITORY,
    ] {
        known.extend(store.list(rt, None, &LabelSelector::everything())?);
    }
    for doc in &docs {
        match admit(doc, &[], None) {
            Ok(admitted) => {
                if admitted.object.resource_type().group == meta::STASH_GROUP {
                    stash.push(admitted.object.clone());
                }
                known.retain(|k| {
                    !(k["kind"] == doc["kind"]
                        && k["apiVersion"] == doc["apiVersion"]
                        && k["metadata"]["name"] == doc["metadata"]["name"]
                        && k["metadata"]["namespace"] == admitted.object.to_value()["metadata"]["namespace"])
                });
                known.push(admitted.object.to_value());
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        return Ok(ExitCode::from(1));
    }
    // Referents first, as `kstash apply` orders them.
    stash.sort_by_key(|o| meta::STASH.iter().position(|rt| rt == o.resource_type()));
    if stash.is_empty() {
        eprintln!("no Stash v1 (stash.appscode.com) objects in the input; nothing to convert");
        return Ok(ExitCode::from(1));
    }
    let mem = MemoryResources::with(known.into_iter().map(|mut v| {
        if let Some(m) = v["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        v
    }))?;
    let lookup = Known(&mem);
    let mut conversions: Vec<Conversion> = Vec::new();
    for obj in &stash {
        let mut c = convert(obj, &lookup);
        if let (Object::StashRestoreSession(rs), false) = (obj, a.offline) {
            c.notes.push(selection_note(&mem, rs));
        }
        conversions.push(c);
    }
    print!("{}", render(&conversions));
    Ok(ExitCode::SUCCESS)
}

/// What the Stash RestoreSession's rules choose in its repository now, as a note.
fn selection_note(mem: &MemoryResources, rs: &kstash_api::stash::RestoreSession) -> String {
    let ns = rs.metadata.namespace.as_deref().unwrap_or("default");
    let name = rs.metadata.name.as_deref().unwrap_or("");
    match kstash_exec::stash_restore_selection(mem, ns, name, &kstash_exec::ExecOptions::embedded()) {
        Ok(selected) => format!(
            "the Stash rules choose restic snapshot(s) {} now; apply the Stash RestoreSession to kstash to restore them",
            selected
                .iter()
                .map(|s| format!("{} (host {})", &s.id[..8], s.hostname))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("the Stash repository was not read ({e}); --offline skips this"),
    }
}
