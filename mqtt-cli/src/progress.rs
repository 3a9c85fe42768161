//! Progress on stderr while a command runs: a bar redrawn in place on a
//! terminal, a plain line every second otherwise (logs, CI), nothing with
//! `--quiet`.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// Set by `--quiet`.
pub(crate) static QUIET: AtomicBool = AtomicBool::new(false);

/// A running progress display.
#[derive(Debug)]
pub(crate) struct Progress {
    task: Option<JoinHandle<()>>,
    tty: bool,
}

impl Progress {
    /// Shows `status()`: the fraction done (0..=1) and a line of text.
    pub(crate) fn start<F>(status: F) -> Self
    where
        F: Fn() -> (f64, String) + Send + 'static,
    {
        let tty = std::io::stderr().is_terminal();
        if QUIET.load(Ordering::Relaxed) {
            return Self { task: None, tty };
        }
        let period = if tty {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.tick().await;
            loop {
                tick.tick().await;
                let (done, text) = status();
                let mut err = std::io::stderr().lock();
                let _ = if tty {
                    write!(err, "\r\x1b[2K{} {text}", bar(done, 30))
                } else {
                    writeln!(err, "{:3.0}% {text}", done.clamp(0.0, 1.0) * 100.0)
                };
                let _ = err.flush();
            }
        });
        Self {
            task: Some(task),
            tty,
        }
    }

    /// Stops and clears the bar.
    pub(crate) fn finish(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if self.tty {
                eprint!("\r\x1b[2K");
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `[#########.........]  45%`.
fn bar(done: f64, width: usize) -> String {
    let done = done.clamp(0.0, 1.0);
    // In 0..=width: `done` is clamped to [0, 1].
    #[allow(clippy::cast_possible_truncation)]
    let filled = ((done * width as f64).round() as usize).min(width);
    format!(
        "[{}{}] {:3.0}%",
        "#".repeat(filled),
        ".".repeat(width - filled),
        done * 100.0
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars() {
        assert_eq!(super::bar(0.5, 4), "[##..]  50%");
        assert_eq!(super::bar(2.0, 2), "[##] 100%");
        assert_eq!(super::bar(-1.0, 2), "[..]   0%");
    }
}
