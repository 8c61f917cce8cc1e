//! A minimal command-line driver for manual checks and rough timings of the stream engine:
//! `stream REPO init | backup NAME (< stdin) | dump NAME (> stdout) | snapshots`, with the password
//! in `RESTIC_PASSWORD`.

use std::io::{BufWriter, Write};
use std::sync::Arc;

use kstash_repo::backup_stream::{StreamBackupOptions, backup_stream};
use kstash_repo::{Backend, InitOptions, LocalBackend, Repository, dump_file};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: stream REPO (init | backup NAME | dump NAME | snapshots)";
    let (Some(repo_dir), Some(cmd)) = (args.get(1), args.get(2)) else {
        return Err(usage.into());
    };
    let password = std::env::var("RESTIC_PASSWORD").map_err(|_| "set RESTIC_PASSWORD")?;
    let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(repo_dir));
    match cmd.as_str() {
        "init" => {
            let repo = Repository::init(backend, &password, InitOptions::default())?;
            eprintln!("created repository {} at {repo_dir}", repo.config().id);
        }
        "backup" => {
            let name = args.get(3).ok_or(usage)?;
            let repo = Repository::open(backend, &password)?;
            let sum = backup_stream(&repo, std::io::stdin(), &StreamBackupOptions::named(name.clone()))?;
            let secs = sum.elapsed.as_secs_f64();
            eprintln!(
                "snapshot {} saved: {} bytes read, {} added, {} stored, {} new / {} known blobs, {} packs, {:.2} s ({:.0} MiB/s)",
                sum.snapshot_id.short(),
                sum.bytes_read,
                sum.bytes_added,
                sum.bytes_stored,
                sum.blobs_new,
                sum.blobs_known,
                sum.packs_written,
                secs,
                sum.bytes_read as f64 / secs / 1048576.0
            );
        }
        "dump" => {
            let name = args.get(3).ok_or(usage)?;
            let repo = Repository::open(backend, &password)?;
            let mut out = BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            dump_file(&repo, "latest", name, &mut out)?;
            out.flush()?;
        }
        "snapshots" => {
            let repo = Repository::open(backend, &password)?;
            for s in repo.list_snapshots()? {
                println!(
                    "{} {} {:?} {}",
                    s.id.short(),
                    s.snapshot.time,
                    s.snapshot.paths,
                    s.snapshot.hostname
                );
            }
        }
        _ => return Err(usage.into()),
    }
    Ok(())
}
