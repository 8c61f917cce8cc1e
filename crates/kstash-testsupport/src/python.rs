//! Running small inline Python scripts with the venv's interpreter (boto3, azure-storage-blob,
//! google-cloud-storage, jsonschema) as independent clients in tests.

use std::process::Command;

use crate::error::Result;
use crate::tools::{run_command, venv_python};

/// Runs `python -c SCRIPT ARGS…` with extra environment; stdout on success, `CommandFailed`
/// (with the traceback) otherwise. Arguments arrive in `sys.argv[1:]`.
pub fn run_python(script: &str, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    run_command(
        Command::new(venv_python()?)
            .arg("-c")
            .arg(script)
            .args(args)
            .envs(env.iter().copied())
            .env("PYTHONDONTWRITEBYTECODE", "1"),
    )
}
