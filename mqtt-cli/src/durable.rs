//! Lines written durably, then acknowledged: a writer thread that takes
//! batches of lines with their messages, writes every batch waiting, makes
//! them durable with one fsync (a group commit; stdout: one flush), and only
//! then acks their messages. The pipeline keeps receiving while a fsync runs,
//! so a slow disk costs latency, not throughput. Memory is bounded by the
//! source's window: a message not yet acked holds a slot.

use std::fs::File;
use std::io::Write;
use std::sync::{Arc, Mutex};

use mqtt_source::Message;
use tokio::sync::mpsc;

/// Where lines go.
#[derive(Debug)]
pub(crate) enum Target {
    /// Flushed after each group of batches.
    Stdout,
    /// `fsync`ed (data) after each group of batches.
    File(File),
}

struct Job {
    bytes: Vec<u8>,
    messages: Vec<Message>,
}

/// What sees each group of messages once durable, before their acks.
pub(crate) trait OnDurable: Send + 'static {
    fn durable(&mut self, messages: &[Message]);
}

impl<F: FnMut(&[Message]) + Send + 'static> OnDurable for F {
    fn durable(&mut self, messages: &[Message]) {
        self(messages);
    }
}

/// The writer; `S` sees each group of messages once durable.
pub(crate) struct Durable<S> {
    tx: Option<mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<Result<S, String>>>,
    error: Arc<Mutex<Option<String>>>,
}

impl<S: OnDurable> Durable<S> {
    pub(crate) fn start(mut target: Target, mut on_durable: S) -> Result<Self, String> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let error = Arc::new(Mutex::new(None));
        let failed = Arc::clone(&error);
        let thread = std::thread::Builder::new()
            .name("mqtt-writer".into())
            .spawn(move || {
                let mut jobs = Vec::new();
                while let Some(job) = rx.blocking_recv() {
                    jobs.push(job);
                    while let Ok(job) = rx.try_recv() {
                        jobs.push(job);
                    }
                    if let Err(e) = write_group(&mut target, &jobs) {
                        // Nothing of the group is acked: dropped, the messages
                        // are failed and the broker sends them again.
                        let message = e.to_string();
                        if let Ok(mut slot) = failed.lock() {
                            *slot = Some(message.clone());
                        }
                        return Err(message);
                    }
                    for job in jobs.drain(..) {
                        on_durable.durable(&job.messages);
                        for message in job.messages {
                            if let Err(error) = message.ack() {
                                // Its connection ended: the broker sends it again.
                                tracing::debug!(event = "write.stale_ack", %error);
                            }
                        }
                    }
                }
                Ok(on_durable)
            })
            .map_err(|e| e.to_string())?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            error,
        })
    }

    /// Queues `bytes` (the lines of `messages`); their acks follow the write.
    /// An error once the writer has failed.
    pub(crate) fn write(&self, bytes: Vec<u8>, messages: Vec<Message>) -> Result<(), String> {
        if let Some(error) = self.error() {
            return Err(error);
        }
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(Job { bytes, messages }).is_ok());
        match sent {
            Some(true) => Ok(()),
            _ => Err(self.error().unwrap_or_else(|| "the writer stopped".into())),
        }
    }

    /// The writer's error, if it failed.
    pub(crate) fn error(&self) -> Option<String> {
        self.error.lock().ok().and_then(|e| e.clone())
    }

    /// Writes and acks everything queued, then gives back `on_durable`.
    pub(crate) async fn finish(mut self) -> Result<S, String> {
        drop(self.tx.take());
        let thread = self.thread.take();
        let joined = tokio::task::spawn_blocking(move || thread.map(|t| t.join()))
            .await
            .map_err(|e| e.to_string())?;
        match joined {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the writer panicked".into()),
            None => Err("the writer was already finished".into()),
        }
    }
}

fn write_group(target: &mut Target, jobs: &[Job]) -> std::io::Result<()> {
    match target {
        Target::Stdout => {
            let mut out = std::io::stdout().lock();
            for job in jobs {
                out.write_all(&job.bytes)?;
            }
            out.flush()
        }
        Target::File(file) => {
            for job in jobs {
                file.write_all(&job.bytes)?;
            }
            file.sync_data()
        }
    }
}
