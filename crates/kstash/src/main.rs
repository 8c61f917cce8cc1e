//! The `kstash` binary: parses the command line and runs the command ([`cli::Cli::run`]).
//! Exit codes: 0 success, 1 invalid input or failed operation, 2 usage error (from clap).

/// `print!` to stdout that ends the process quietly when the reader went away (`kstash get | head`).
macro_rules! out {
    ($($t:tt)*) => { $crate::emit(&format!($($t)*)) };
}

/// `println!` counterpart of [`out!`].
macro_rules! outln {
    ($($t:tt)*) => { $crate::emit(&(format!($($t)*) + "\n")) };
}

mod cli;
mod convert_cmd;
mod dashboard;
mod debug_cmd;
mod kube_cmd;
mod ops;
mod print;
mod progress_bar;
mod repo_cmd;
mod repositories;
mod resources;

use std::process::ExitCode;

use clap::Parser;

/// Write to stdout; exit 0 on a closed pipe, as `kubectl` does.
pub fn emit(text: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let default_level = args.command.default_log_level();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KSTASH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level)),
        )
        .init();
    match args.run() {
        Ok(code) => code,
        Err(e) => {
            // Library errors often repeat their source in their own message; print each cause once.
            let mut message = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !message.contains(&cause) {
                    message = format!("{message}: {cause}");
                }
            }
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}
