//! Resource commands (`apply`, `get`, `describe`, `delete`, `validate`, `crd`) over the embedded
//! store, with admission (defaults + validation) before every write.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use kstash_api::admission::admit;
use kstash_api::manifest::{parse_documents, sort_for_apply};
use kstash_api::meta::{self, ResourceType};
use kstash_api::{Object, crd};
use kstash_embedded::pruned::KeepPaths;
use kstash_embedded::{ApplyOutcome, DeleteOutcome, LabelSelector, Store};
use serde_json::Value;

use crate::cli::Output;
use crate::print;

pub(crate) fn open_store(home: Option<&Path>) -> Result<Store> {
    let path = match home {
        Some(h) => h.join("kstash.db"),
        None => Store::default_path()?,
    };
    Store::open(&path).with_context(|| format!("opening the kstash store at {}", path.display()))
}

fn resolve_kind(name: &str) -> Result<&'static ResourceType> {
    meta::lookup(name).with_context(|| {
        let known: Vec<String> = meta::ALL
            .iter()
            .map(|t| match t.short_names.first() {
                Some(s) => format!("{} ({s})", t.plural),
                None => t.plural.to_string(),
            })
            .collect();
        format!(
            "unknown resource type '{name}'; kstash knows: {}",
            known.join(", ")
        )
    })
}

/// Read every document from files, directories (recursively, *.yaml/*.yml/*.json) or stdin.
pub(crate) fn read_documents(sources: &[String]) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for src in sources {
        if src == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).context("reading stdin")?;
            docs.extend(parse_documents("-", &text)?);
            continue;
        }
        let path = PathBuf::from(src);
        let files = if path.is_dir() {
            manifest_files(&path)?
        } else {
            vec![path]
        };
        for f in files {
            let text = std::fs::read_to_string(&f).with_context(|| format!("reading {}", f.display()))?;
            docs.extend(parse_documents(&f.display().to_string(), &text)?);
        }
    }
    Ok(docs)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading directory {}", dir.display()))? {
        let p = entry?.path();
        if p.is_dir() {
            out.extend(manifest_files(&p)?);
        } else if p
            .extension()
            .is_some_and(|e| e == "yaml" || e == "yml" || e == "json")
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// Every stored object, typed (objects that no longer parse are skipped with a warning).
fn stored_objects(store: &Store) -> Result<Vec<Object>> {
    let mut out = Vec::new();
    for rt in meta::every_kind() {
        for v in store.list(rt, None, &LabelSelector::everything())? {
            match Object::from_value(&v) {
                Ok(o) => out.push(o),
                Err(e) => tracing::warn!(error = %e, "stored object no longer parses"),
            }
        }
    }
    Ok(out)
}

fn set_default_namespace(doc: &mut Value, namespace: Option<&str>) {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let namespaced = meta::by_api_version_kind(api_version, kind)
        .or_else(|| meta::ALL.iter().find(|t| t.kind == kind))
        .is_some_and(|t| t.namespaced);
    if !namespaced {
        return;
    }
    if let Some(Value::Object(m)) = doc.get_mut("metadata")
        && !m.contains_key("namespace")
    {
        m.insert(
            "namespace".into(),
            Value::String(namespace.unwrap_or("default").into()),
        );
    }
}

/// Built-in Kubernetes kinds that only make sense on a cluster (`Kind name`), or `None`. The
/// workload kinds of `meta::WORKLOADS` (Deployment, StatefulSet, DaemonSet, PersistentVolumeClaim)
/// are stored: they are backup targets and carry auto-backup annotations.
fn kubernetes_only(doc: &Value) -> Option<String> {
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let cluster_kinds: &[(&str, &[&str])] = &[
        ("apps/v1", &["ReplicaSet"]),
        (
            "v1",
            &[
                "PersistentVolume",
                "Pod",
                "Service",
                "ConfigMap",
                "ServiceAccount",
            ],
        ),
        ("batch/v1", &["Job", "CronJob"]),
    ];
    cluster_kinds
        .iter()
        .any(|(a, ks)| *a == api && ks.contains(&kind))
        .then(|| {
            format!(
                "{kind} {}",
                doc.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )
        })
}

fn same_object(a: &Object, b: &Object) -> bool {
    a.resource_type() == b.resource_type() && a.namespace() == b.namespace() && a.name() == b.name()
}

fn display_name(rt: &ResourceType, name: &str) -> String {
    if rt.group.is_empty() {
        format!("{}/{name}", rt.singular)
    } else {
        format!("{}.{}/{name}", rt.singular, rt.group)
    }
}

pub(crate) fn apply(store: &Store, files: &[String], namespace: Option<&str>) -> Result<ExitCode> {
    let mut docs = read_documents(files)?;
    sort_for_apply(&mut docs);
    let mut stored = stored_objects(store)?;
    let mut failed = false;
    for mut doc in docs {
        if let Some(what) = kubernetes_only(&doc) {
            eprintln!(
                "warning: skipped {what}: a Kubernetes kind the embedded runtime does not store (apply it to a cluster)"
            );
            continue;
        }
        set_default_namespace(&mut doc, namespace);
        let probe = Object::from_value(&doc);
        let old_index = probe
            .as_ref()
            .ok()
            .and_then(|p| stored.iter().position(|s| same_object(s, p)));
        let old = old_index.map(|i| stored[i].clone());
        match admit(&doc, &stored, old.as_ref()) {
            Err(errors) => {
                failed = true;
                for e in errors {
                    eprintln!("error: {e}");
                }
            }
            Ok(admitted) => {
                for w in &admitted.warnings {
                    eprintln!("warning: {w}");
                }
                let rt = admitted.object.resource_type();
                let (outcome, saved) = store
                    .apply(admitted.object.to_value())
                    .with_context(|| format!("storing {}", admitted.object.describe()))?;
                let verb = match outcome {
                    ApplyOutcome::Created => "created",
                    ApplyOutcome::Configured => "configured",
                    ApplyOutcome::Unchanged => "unchanged",
                };
                outln!("{} {verb}", display_name(rt, admitted.object.name()));
                let saved = Object::from_value(&saved).unwrap_or(admitted.object);
                match old_index {
                    Some(i) => stored[i] = saved,
                    None => stored.push(saved),
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn get(store: &Store, args: crate::cli::GetArgs) -> Result<ExitCode> {
    let rt = resolve_kind(&args.kind)?;
    let ns = args.namespace.as_deref().unwrap_or("default");
    let selector = match &args.selector {
        Some(s) => LabelSelector::parse(s).with_context(|| format!("invalid label selector '{s}'"))?,
        None => LabelSelector::everything(),
    };
    let scope = if args.all_namespaces { None } else { Some(ns) };
    let named = |store: &Store| -> Result<Vec<Value>> {
        Ok(args
            .names
            .iter()
            .map(|n| store.get(rt, ns, n))
            .collect::<Result<Vec<_>, _>>()?)
    };
    match args.output {
        Some(Output::Yaml) => {
            let objects = if args.names.is_empty() {
                store.list(rt, scope, &selector)?
            } else {
                named(store)?
            };
            let docs: Vec<String> = objects.iter().map(print::yaml).collect();
            out!("{}", docs.join("---\n"));
        }
        Some(Output::Json) => {
            let objects = if args.names.is_empty() {
                store.list(rt, scope, &selector)?
            } else {
                named(store)?
            };
            let out = if objects.len() == 1 && !args.names.is_empty() {
                print::redact(objects[0].clone())
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "List",
                    "items": objects.iter().cloned().map(print::redact).collect::<Vec<_>>()})
            };
            outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        Some(Output::Name) => {
            let line = |o: &Value| {
                outln!(
                    "{}",
                    display_name(
                        rt,
                        o.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("")
                    )
                );
            };
            if args.names.is_empty() {
                store.for_each(
                    rt,
                    scope,
                    &selector,
                    Some(&KeepPaths::new([".metadata.name"])),
                    |o| line(&o),
                )?;
            } else {
                named(store)?.iter().for_each(line);
            }
        }
        wide => {
            // A listing reads a few fields of each object: parse only those, keep only the cells.
            let wide = wide == Some(Output::Wide);
            let mut table = print::Table::new(rt, args.all_namespaces, wide);
            if args.names.is_empty() {
                let keep = KeepPaths::new(print::table_fields(rt, wide));
                store.for_each(rt, scope, &selector, Some(&keep), |o| table.push(&o))?;
            } else {
                named(store)?.iter().for_each(|o| table.push(o));
            }
            if table.is_empty() {
                if args.all_namespaces || !rt.namespaced {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
            } else {
                out!("{}", table.render());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn describe(store: &Store, args: crate::cli::DescribeArgs) -> Result<ExitCode> {
    let rt = resolve_kind(&args.kind)?;
    let obj = store.get(rt, args.namespace.as_deref().unwrap_or("default"), &args.name)?;
    let m = |p: &str| obj.pointer(p).cloned().unwrap_or(Value::Null);
    let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or("").to_string();
    outln!("Name:               {}", s("/metadata/name"));
    if rt.namespaced {
        outln!("Namespace:          {}", s("/metadata/namespace"));
    }
    outln!("API Version:        {}", rt.api_version());
    outln!("Kind:               {}", rt.kind);
    let kv = |v: Value| match v {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect::<Vec<_>>()
            .join("\n                    "),
        _ => "<none>".into(),
    };
    outln!("Labels:             {}", kv(m("/metadata/labels")));
    outln!("Annotations:        {}", kv(m("/metadata/annotations")));
    outln!("UID:                {}", s("/metadata/uid"));
    outln!("Resource Version:   {}", s("/metadata/resourceVersion"));
    outln!("Generation:         {}", m("/metadata/generation"));
    outln!("Creation Timestamp: {}", s("/metadata/creationTimestamp"));
    if let Some(d) = obj.pointer("/metadata/deletionTimestamp").and_then(Value::as_str) {
        outln!("Deletion Timestamp: {d}");
    }
    if let Some(Value::Array(f)) = obj.pointer("/metadata/finalizers") {
        outln!(
            "Finalizers:         {}",
            f.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        );
    }
    if rt.kind == "AppBinding"
        && let Ok(ab) = serde_json::from_value::<kstash_api::appcatalog::AppBinding>(obj.clone())
    {
        outln!(
            "Address:            {}",
            appbinding_address(&ab.spec.client_config)
        );
    }
    let redacted = print::redact(obj.clone());
    let running = print::progress(&obj);
    if !running.is_empty() {
        outln!("Progress:");
        for (component, p) in running {
            outln!("  {component}: {}", p.summary());
        }
    }
    for section in ["spec", "data", "type", "status"] {
        if let Some(v) = redacted.get(section) {
            let body = serde_yaml_ng::to_string(v).unwrap_or_default();
            outln!("{}:", capitalise(section));
            for line in body.lines() {
                outln!("  {line}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Which address of an AppBinding the embedded runtime uses, and what a cluster would use.
fn appbinding_address(cc: &kstash_api::appcatalog::ClientConfig) -> String {
    use kstash_api::appcatalog::Address;
    let show = |a: Option<Address<'_>>| match a {
        Some(Address::Url(u)) => match kstash_api::appcatalog::parse_client_url(u) {
            Ok(p) => format!(
                "url {u} (host {}{})",
                p.host,
                p.port.map(|p| format!(", port {p}")).unwrap_or_default()
            ),
            Err(why) => format!("url {u}: cannot be used ({why})"),
        },
        Some(Address::Service(svc)) => format!(
            "service {}{}",
            svc.name,
            svc.port.map(|p| format!(":{p}")).unwrap_or_default()
        ),
        None => "none (set clientConfig.url or clientConfig.service)".into(),
    };
    let here = show(cc.address(false));
    let cluster = show(cc.address(true));
    if here == cluster {
        here
    } else {
        format!("{here} on this machine; {cluster} in a cluster")
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub(crate) fn delete(store: &Store, args: crate::cli::DeleteArgs) -> Result<ExitCode> {
    let ns = args.namespace.as_deref().unwrap_or("default").to_string();
    let mut targets: Vec<(&'static ResourceType, String, String)> = Vec::new();
    if !args.files.is_empty() {
        let mut docs = read_documents(&args.files)?;
        sort_for_apply(&mut docs);
        docs.reverse(); // referrers first
        for doc in docs {
            let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
            let rt = resolve_kind(kind)?;
            let name = doc
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let dns = doc
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or(&ns)
                .to_string();
            targets.push((rt, dns, name));
        }
    } else {
        let Some(kind) = &args.kind else {
            bail!("name a kind and names (`kstash delete bc my-backup`) or use -f FILE")
        };
        if args.names.is_empty() {
            bail!("name the {kind} objects to delete (`kstash delete {kind} NAME…`)");
        }
        let rt = resolve_kind(kind)?;
        targets.extend(args.names.iter().map(|n| (rt, ns.clone(), n.clone())));
    }
    let mut failed = false;
    for (rt, ns, name) in targets {
        match store.delete(rt, &ns, &name) {
            Ok(DeleteOutcome::Deleted(_)) => outln!("{} deleted", display_name(rt, &name)),
            Ok(DeleteOutcome::Pending(obj)) => {
                let fin: Vec<&str> = obj
                    .pointer("/metadata/finalizers")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                outln!(
                    "{} marked for deletion; waiting for finalizers: {}",
                    display_name(rt, &name),
                    fin.join(", ")
                );
            }
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(crate) fn validate(files: &[String]) -> Result<ExitCode> {
    let mut docs = read_documents(files)?;
    sort_for_apply(&mut docs);
    let mut admitted_so_far: Vec<Object> = Vec::new();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for doc in &docs {
        if let Some(what) = kubernetes_only(doc) {
            eprintln!("warning: skipped {what}: a built-in Kubernetes kind, not validated by kstash");
            warnings += 1;
            continue;
        }
        match admit(doc, &admitted_so_far, None) {
            Ok(a) => {
                for w in &a.warnings {
                    warnings += 1;
                    eprintln!("warning: {w}");
                }
                admitted_so_far.push(a.object);
            }
            Err(list) => {
                for e in list {
                    errors += 1;
                    eprintln!("error: {e}");
                }
            }
        }
    }
    if errors > 0 {
        eprintln!(
            "{errors} error(s), {warnings} warning(s) in {} document(s)",
            docs.len()
        );
        Ok(ExitCode::from(1))
    } else {
        outln!("{} document(s) valid, {warnings} warning(s)", docs.len());
        Ok(ExitCode::SUCCESS)
    }
}

pub(crate) fn print_crds(kind: Option<&str>) -> Result<ExitCode> {
    let wanted = kind.map(resolve_kind).transpose()?;
    let mut docs = Vec::new();
    for c in crd::all() {
        if wanted.is_none_or(|w| w.kind == c.spec.names.kind) {
            docs.push(crd::to_yaml(&c));
        }
    }
    if docs.is_empty() {
        bail!(
            "{} is not a custom resource (it is a built-in Kubernetes kind)",
            kind.unwrap_or("")
        );
    }
    out!("{}", docs.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
