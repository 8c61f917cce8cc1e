//! `addons.kubestash.com/v1alpha1` (cluster-scoped): Addon (the tasks a target kind supports) and
//! Function (the container that runs a task).

use k8s_openapi::api::core::v1::{ContainerPort, VolumeDevice, VolumeMount};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{ContainerRuntimeSettings, Driver, ParameterDefinition, VolumeSource};

/// How a task is executed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum TaskExecutor {
    Job,
    Sidecar,
    EphemeralContainer,
    MultiLevelJob,
}

/// A volume a task needs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeTemplate {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub usage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<VolumeSource>,
}

/// A backup or restore task of an addon.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<TaskExecutor>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub singleton: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<ParameterDefinition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_template: Vec<VolumeTemplate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// The backup and restore tasks for one kind of target.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addons.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "Addon",
    plural = "addons",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AddonSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backup_tasks: Vec<Task>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_tasks: Vec<Task>,
}

/// The container template that runs a task.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "addons.kubestash.com",
    version = "v1alpha1",
    derive = "PartialEq",
    kind = "Function",
    plural = "functions",
    shortname = "fn",
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct FunctionSpec {
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_devices: Vec<VolumeDevice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_settings: Option<ContainerRuntimeSettings>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub available_versions: Vec<String>,
}
