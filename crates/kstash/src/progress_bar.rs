//! Progress bars for long `kstash repo` commands: bytes, rate and (when the total is known) ETA
//! on standard error, only when it is a terminal and output is not `--json`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kstash_repo::progress::Progress;

/// A bar drawn by a thread from engine counters; cleared when dropped.
pub struct Bar {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Whether bars should be drawn: stderr is a terminal, no `--json`, not disabled by
/// `KSTASH_NO_PROGRESS`.
pub fn wanted(json: bool) -> bool {
    !json && std::io::stderr().is_terminal() && std::env::var_os("KSTASH_NO_PROGRESS").is_none()
}

/// Start drawing `progress` as `label` when `enabled`; returns the counters to pass to the engine.
pub fn start(label: &str, enabled: bool) -> (Arc<Progress>, Option<Bar>) {
    let progress = Arc::new(Progress::new());
    if !enabled {
        return (progress, None);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(5));
    let label = label.to_string();
    let thread = {
        let stop = Arc::clone(&stop);
        let progress = Arc::clone(&progress);
        std::thread::Builder::new()
            .name("kstash-progress".into())
            .spawn(move || draw(&bar, &progress, &label, &stop))
            .ok()
    };
    (progress, Some(Bar { stop, thread }))
}

fn draw(bar: &ProgressBar, p: &Progress, label: &str, stop: &AtomicBool) {
    let known = "{prefix} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";
    let unknown = "{prefix} [{elapsed_precise}] {bytes} {binary_bytes_per_sec} {msg}";
    let mut styled_total = None;
    bar.set_prefix(label.to_string());
    while !stop.load(Ordering::Relaxed) {
        let total = p.total_bytes();
        if styled_total != Some(total != 0) {
            let template = if total != 0 { known } else { unknown };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            styled_total = Some(total != 0);
        }
        if total != 0 {
            bar.set_length(total);
        }
        bar.set_position(p.bytes());
        if p.items() > 0 {
            bar.set_message(format!("{} files", p.items()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bar.finish_and_clear();
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
