//! Addon tasks: which driver runs a task (by the Addon task's `function`), and the task's
//! parameters (the Addon task's `parameters[].default`, overlaid by the BackupConfiguration's or
//! RestoreSession's free-form `params`).

use std::collections::BTreeMap;

use kstash_api::addons::Task;
use kstash_api::common::TaskReference;
pub use kstash_api::resolve::TaskKind;
use kstash_api::resolve::{AddonTask, ResolvedAddon};
use serde_json::Value;

use crate::error::{ExecError, Result};

/// The driver that runs a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    /// Directories of a workload or PVC (`workload-backup`, `pvc-backup`, `workload-restore`,
    /// `pvc-restore`).
    Volume,
    /// A PostgreSQL server reached through an AppBinding (`postgres-backup`, `postgres-restore`).
    Postgres,
    /// A MySQL or MariaDB server reached through an AppBinding (`mysql-backup`,
    /// `mariadb-backup`, `mysql-restore`, `mariadb-restore`).
    MySql,
    /// A Redis server reached through an AppBinding (`redis-backup`, `redis-restore`).
    Redis,
    /// A ZooKeeper server reached through an AppBinding (`zookeeper-backup`, `zookeeper-restore`).
    ZooKeeper,
    /// An Elasticsearch or OpenSearch cluster reached through an AppBinding
    /// (`elasticsearch-backup`, `elasticsearch-restore`, and the `opensearch-…` names).
    Elasticsearch,
    /// Objects read through an API, written as YAML files in KubeStash kubedump's layout
    /// (`kubedump-backup`, `kubedump-restore` of `kubedump-addon`; `manifest-backup`,
    /// `manifest-restore` of `workload-addon`).
    Manifest,
}

/// How long a driver waits for its server when `waitTimeout` is not set.
const DEFAULT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Functions with a backup driver.
const BACKUP_FUNCTIONS: &[(&str, DriverKind)] = &[
    ("workload-backup", DriverKind::Volume),
    ("pvc-backup", DriverKind::Volume),
    ("postgres-backup", DriverKind::Postgres),
    ("mysql-backup", DriverKind::MySql),
    ("mariadb-backup", DriverKind::MySql),
    ("redis-backup", DriverKind::Redis),
    ("zookeeper-backup", DriverKind::ZooKeeper),
    ("elasticsearch-backup", DriverKind::Elasticsearch),
    ("opensearch-backup", DriverKind::Elasticsearch),
    ("kubedump-backup", DriverKind::Manifest),
    ("manifest-backup", DriverKind::Manifest),
];
/// Functions with a restore driver.
const RESTORE_FUNCTIONS: &[(&str, DriverKind)] = &[
    ("workload-restore", DriverKind::Volume),
    ("pvc-restore", DriverKind::Volume),
    ("postgres-restore", DriverKind::Postgres),
    ("mysql-restore", DriverKind::MySql),
    ("mariadb-restore", DriverKind::MySql),
    ("redis-restore", DriverKind::Redis),
    ("zookeeper-restore", DriverKind::ZooKeeper),
    ("elasticsearch-restore", DriverKind::Elasticsearch),
    ("opensearch-restore", DriverKind::Elasticsearch),
    ("kubedump-restore", DriverKind::Manifest),
    ("manifest-restore", DriverKind::Manifest),
];

/// The driver of `function` for tasks of `kind`, if kstash has one.
pub(crate) fn driver_of(function: &str, kind: TaskKind) -> Option<DriverKind> {
    let table = match kind {
        TaskKind::Backup => BACKUP_FUNCTIONS,
        TaskKind::Restore => RESTORE_FUNCTIONS,
    };
    table.iter().find(|(f, _)| *f == function).map(|(_, d)| *d)
}

/// A task of an Addon, resolved: its driver and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTask {
    /// The Addon's name.
    pub addon: String,
    /// The task's name.
    pub task: String,
    /// The Addon task's `function`.
    pub function: String,
    /// The driver for that function.
    pub driver: DriverKind,
    /// Parameters: defaults overlaid by the task reference's `params`, values as text.
    pub params: BTreeMap<String, String>,
    /// Names (and usage) of the parameters the Addon task requires.
    pub required: Vec<(String, String)>,
}

impl ResolvedTask {
    /// `Addon <addon> task <task>`, for messages.
    pub fn describe(&self) -> String {
        format!("Addon {} task {}", self.addon, self.task)
    }

    /// A parameter, `None` when absent or empty.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// Fail when a parameter the Addon task requires is unset or empty.
    pub fn check_required(&self) -> Result<()> {
        for (name, usage) in &self.required {
            if self.param(name).is_none() {
                return Err(ExecError::invalid(
                    self.describe(),
                    format!(
                        "parameter {name} is required ({}); set it in the task's params",
                        if usage.is_empty() { "no description" } else { usage }
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `waitTimeout` in seconds: how long a driver waits for its server (default 300).
    pub fn wait_timeout(&self) -> Result<std::time::Duration> {
        match self.param("waitTimeout") {
            None => Ok(DEFAULT_WAIT),
            Some(v) => v.parse::<u64>().map(std::time::Duration::from_secs).map_err(|_| {
                ExecError::invalid(
                    self.describe(),
                    format!("parameter waitTimeout {v:?} is not a number of seconds"),
                )
            }),
        }
    }

    /// The user's `args`, split like a shell would.
    pub fn args(&self) -> Result<Vec<String>> {
        crate::tool::split_args(self.param("args").unwrap_or_default())
            .map_err(|m| ExecError::invalid(self.describe(), format!("parameter args: {m}")))
    }

    /// A boolean parameter, `default` when absent or empty. Case is ignored; anything but
    /// `true`/`false` is refused, naming the parameter.
    pub fn bool_param(&self, name: &str, default: bool) -> Result<bool> {
        match self.param(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(other) => Err(ExecError::invalid(
                self.describe(),
                format!("parameter {name} is {other:?}; use true or false"),
            )),
        }
    }

    /// A comma-separated list parameter (empty items dropped).
    pub fn list_param(&self, name: &str) -> Vec<String> {
        self.param(name)
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The driver and parameters of every task of a resolved Addon (the Addon and its tasks were
/// looked up by [`kstash_api::resolve`]).
pub fn resolve_tasks(addon: &ResolvedAddon) -> Result<Vec<ResolvedTask>> {
    addon
        .tasks
        .iter()
        .map(|t: &AddonTask| resolve_task(addon.name(), &t.task, &t.reference, addon.kind))
        .collect()
}

fn resolve_task(addon: &str, task: &Task, reference: &TaskReference, kind: TaskKind) -> Result<ResolvedTask> {
    let table = match kind {
        TaskKind::Backup => BACKUP_FUNCTIONS,
        TaskKind::Restore => RESTORE_FUNCTIONS,
    };
    let Some((_, driver)) = table.iter().find(|(f, _)| *f == task.function) else {
        return Err(ExecError::UnsupportedFunction {
            addon: addon.into(),
            task: task.name.clone(),
            function: task.function.clone(),
            supported: table.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", "),
        });
    };
    let mut params: BTreeMap<String, String> = task
        .parameters
        .iter()
        .filter(|p| !p.name.is_empty() && !p.default.is_empty())
        .map(|p| (p.name.clone(), p.default.clone()))
        .collect();
    match &reference.params {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                params.insert(k.clone(), param_text(v));
            }
        }
        Some(other) => {
            return Err(ExecError::invalid(
                format!("Addon {addon} task {}", task.name),
                format!("params must be an object of name: value, not {other}"),
            ));
        }
    }
    Ok(ResolvedTask {
        addon: addon.into(),
        task: task.name.clone(),
        function: task.function.clone(),
        driver: *driver,
        params,
        required: task
            .parameters
            .iter()
            .filter(|p| p.required)
            .map(|p| (p.name.clone(), p.usage.clone()))
            .collect(),
    })
}

/// A free-form parameter value as text: strings as they are, lists joined with commas, other
/// values as JSON.
fn param_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(items) => items.iter().map(param_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kstash_api::common::ParameterDefinition;
    use serde_json::json;

    fn task(function: &str) -> Task {
        Task {
            name: "logical-backup".into(),
            function: function.into(),
            parameters: vec![
                ParameterDefinition {
                    name: "paths".into(),
                    required: true,
                    usage: "directories to back up".into(),
                    ..Default::default()
                },
                ParameterDefinition {
                    name: "exclude".into(),
                    default: "*.tmp".into(),
                    ..Default::default()
                },
                ParameterDefinition {
                    name: "enableCache".into(),
                    default: "true".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn reference(params: Value) -> TaskReference {
        TaskReference {
            name: "logical-backup".into(),
            params: Some(params),
            ..Default::default()
        }
    }

    #[test]
    fn params_overlay_defaults_and_are_stringified() {
        let t = resolve_task(
            "workload-addon",
            &task("workload-backup"),
            &reference(json!({"paths": "/a, /b,", "enableCache": false, "n": 3, "list": ["x", "y"]})),
            TaskKind::Backup,
        )
        .unwrap();
        assert_eq!(t.driver, DriverKind::Volume);
        assert_eq!(t.list_param("paths"), ["/a", "/b"]);
        assert_eq!(t.param("exclude"), Some("*.tmp"));
        assert_eq!(t.param("enableCache"), Some("false"));
        assert_eq!(t.param("n"), Some("3"));
        assert_eq!(t.param("list"), Some("x,y"));
        assert_eq!(t.param("missing"), None);
    }

    #[test]
    fn refusals_name_addon_task_and_function() {
        let e = resolve_task(
            "mongodb-addon",
            &task("mongodb-backup"),
            &reference(json!({"paths": "/a"})),
            TaskKind::Backup,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("Addon mongodb-addon")
                && e.contains("task logical-backup")
                && e.contains("function mongodb-backup")
                && e.contains("workload-backup"),
            "{e}"
        );

        let t = resolve_task(
            "workload-addon",
            &task("workload-backup"),
            &reference(json!({"paths": " "})),
            TaskKind::Backup,
        )
        .unwrap();
        let e = t.check_required().unwrap_err().to_string();
        assert!(
            e.contains("Addon workload-addon task logical-backup")
                && e.contains("parameter paths is required (directories to back up)"),
            "{e}"
        );
    }
}
