//! Errors of the Kubernetes runtime, each naming the object or endpoint and the fix.

/// Why talking to the Kubernetes API failed.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// No kubeconfig or in-cluster configuration could be loaded.
    #[error("cannot load the Kubernetes client configuration: {0}")]
    Config(String),
    /// The API server did not answer.
    #[error(
        "the Kubernetes API at {url} is unreachable: {message} (check the kubeconfig's server address and that the cluster is running)"
    )]
    Unreachable { url: String, message: String },
    /// CustomResourceDefinitions kstash needs are not installed.
    #[error(
        "CustomResourceDefinitions not installed in the cluster: {}; install the CRDs first: `kubectl apply -f deploy/crds/` (or the Helm chart in deploy/helm/kstash)",
        names.join(", ")
    )]
    CrdMissing { names: Vec<String> },
    /// An API call failed.
    #[error("{object}: {message}")]
    Api { object: String, message: String },
    /// A desired object could not be built from the resources it comes from.
    #[error("{object}: {message}")]
    Build { object: String, message: String },
    /// Anything else (I/O of the health server, the runtime).
    #[error("{0}")]
    Other(String),
}

impl KubeError {
    /// A build error about `object`.
    pub fn build(object: impl Into<String>, message: impl Into<String>) -> Self {
        KubeError::Build {
            object: object.into(),
            message: message.into(),
        }
    }
}

/// Result of the Kubernetes runtime.
pub type Result<T> = std::result::Result<T, KubeError>;
