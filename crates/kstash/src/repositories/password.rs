//! `kstash password add|list|update|remove`: the restic keys of a Repository's component
//! repositories, opened with the Repository's encryption password.

use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use kstash_embedded::Store;
use kstash_exec::access::ComponentRepo;
use kstash_repo::keys::{KdfParams, KeyInfo};

use super::{components, encryption_secret, lock_component, matches_path, open_component};
use crate::cli::{PasswordAction, PasswordArgs, PasswordTarget};
use crate::print::{indented_table, row};

fn new_password(t: &PasswordTarget, action: &str) -> Result<String> {
    let Some(file) = &t.new_password_file else {
        bail!("kstash password {action} needs --new-password-file FILE (its first line is the new password)");
    };
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading the new password file {}", file.display()))?;
    let password = text.lines().next().unwrap_or("").to_string();
    if password.is_empty() {
        bail!(
            "the new password file {} is empty; put the new password on its first line",
            file.display()
        );
    }
    Ok(password)
}

fn key_rows(keys: &[KeyInfo]) -> Vec<Vec<String>> {
    let mut rows = vec![row(["ID", "CURRENT", "USER", "HOST", "CREATED"])];
    for k in keys {
        rows.push(vec![
            k.id.short(),
            if k.current { "*".into() } else { String::new() },
            k.username.clone(),
            k.hostname.clone(),
            k.created.timestamp.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        ]);
    }
    rows
}

/// `kstash password add|list|update|remove <repo>`.
pub fn password(store: &Store, a: PasswordArgs) -> Result<ExitCode> {
    match a.action {
        PasswordAction::List(t) => password_list(store, &t),
        PasswordAction::Add(t) => password_add(store, &t),
        PasswordAction::Update(t) => password_update(store, &t),
        PasswordAction::Remove(t) => password_remove(store, &t),
    }
}

fn password_list(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let (_, comps) = components(store, ns, &t.repository, &t.paths)?;
    for (i, comp) in comps.iter().enumerate() {
        let engine = open_component(comp, ns, &t.repository)?;
        let _lock = lock_component(&engine, false, comp, ns, &t.repository)?;
        let keys = engine
            .list_keys()
            .with_context(|| format!("listing the keys of {}", comp.path))?;
        if i > 0 {
            outln!("");
        }
        outln!("{}:", comp.path);
        out!("{}", indented_table(&key_rows(&keys), "  "));
    }
    Ok(ExitCode::SUCCESS)
}

fn password_add(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let new = new_password(t, "add")?;
    let (repo, comps) = components(store, ns, &t.repository, &t.paths)?;
    for comp in &comps {
        let engine = open_component(comp, ns, &t.repository)?;
        let _lock = lock_component(&engine, false, comp, ns, &t.repository)?;
        let id = engine.add_key(&new, KdfParams::default()).with_context(|| {
            format!(
                "adding a key to {} of Repository {ns}/{}",
                comp.path, t.repository
            )
        })?;
        outln!("{}: added key {}", comp.path, id.short());
    }
    eprintln!(
        "note: the {} still holds the old password, which keeps working and is what kstash uses; to switch, put the new password into its RESTIC_PASSWORD, then remove the old keys (kstash password remove {} -n {ns} --id-paths ID:PATH)",
        encryption_secret(store, &repo)?,
        t.repository
    );
    Ok(ExitCode::SUCCESS)
}

fn password_update(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let new = new_password(t, "update")?;
    let (repo, comps) = components(store, ns, &t.repository, &t.paths)?;
    let secret = encryption_secret(store, &repo)?;
    let mut changed: Vec<&str> = Vec::new();
    for comp in &comps {
        let result = (|| -> Result<kstash_repo::Id> {
            let mut engine = open_component(comp, ns, &t.repository)?;
            let _lock = lock_component(&engine, true, comp, ns, &t.repository)?;
            Ok(engine.change_password(&new, KdfParams::default())?)
        })();
        match result {
            Ok(id) => {
                outln!("{}: password changed (new key {})", comp.path, id.short());
                changed.push(&comp.path);
            }
            Err(e) if changed.is_empty() => return Err(e),
            Err(e) => {
                return Err(e.context(format!(
                    "changing the password of {}; already changed (these now only open with the new password): {} — put the new password into the {secret} only once every path is changed, or change those back",
                    comp.path,
                    changed.join(", ")
                )));
            }
        }
    }
    eprintln!(
        "warning: the {secret} still holds the old password, which no longer opens {}; update its RESTIC_PASSWORD with the new password now, or backups and restores of Repository {ns}/{} fail",
        if t.paths.is_empty() {
            "these repositories".to_string()
        } else {
            changed.join(", ")
        },
        t.repository
    );
    Ok(ExitCode::SUCCESS)
}

fn password_remove(store: &Store, t: &PasswordTarget) -> Result<ExitCode> {
    let ns = t.namespace.as_str();
    let name = t.repository.as_str();
    let pairs: Vec<&String> = t.id_paths.iter().filter(|p| !p.trim().is_empty()).collect();
    if pairs.is_empty() {
        bail!(
            "kstash password remove needs --id-paths ID:PATH[,ID:PATH…] (ids and paths: kstash password list {name} -n {ns})"
        );
    }
    let (repo, comps) = components(store, ns, name, &[])?;
    // Check every pair before removing anything.
    let mut plan: Vec<(&ComponentRepo, kstash_repo::Repository, KeyInfo)> = Vec::new();
    for pair in pairs {
        let Some((id, path)) = pair.split_once(':') else {
            bail!(
                "--id-paths takes ID:PATH pairs; '{pair}' has no ':' (see kstash password list {name} -n {ns})"
            );
        };
        let Some(comp) = comps.iter().find(|c| matches_path(&c.path, path)) else {
            bail!(
                "Repository {ns}/{name} has no component path {path}; its paths: {}",
                comps
                    .iter()
                    .map(|c| c.path.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        };
        let engine = open_component(comp, ns, name)?;
        let keys = engine
            .list_keys()
            .with_context(|| format!("listing the keys of {}", comp.path))?;
        let found: Vec<&KeyInfo> = keys
            .iter()
            .filter(|k| !id.is_empty() && k.id.to_string().starts_with(id))
            .collect();
        let key = match found.as_slice() {
            [k] => (*k).clone(),
            [] => bail!(
                "{} has no key '{id}' (kstash password list {name} -n {ns})",
                comp.path
            ),
            _ => bail!(
                "'{id}' matches {} keys of {}; give more of the id",
                found.len(),
                comp.path
            ),
        };
        if key.current {
            bail!(
                "key {} of {} is the one the password in the {} opens: removing it would lock kstash out; put another key's password into the Secret first (kstash password add/update), then remove this one",
                key.id.short(),
                comp.path,
                encryption_secret(store, &repo)?
            );
        }
        plan.push((comp, engine, key));
    }
    for (comp, engine, key) in plan {
        let _lock = lock_component(&engine, true, comp, ns, name)?;
        engine
            .remove_key(&key.id)
            .with_context(|| format!("removing key {} of {}", key.id.short(), comp.path))?;
        outln!("{}: removed key {}", comp.path, key.id.short());
    }
    Ok(ExitCode::SUCCESS)
}
