//! JSON lines to stdout or to a file.
//!
//! The file is opened in append mode and re-opened when it is moved or deleted (logrotate's
//! default `create` rotation), checked at most once a second, so rotation never loses lines
//! into an unlinked file for longer than that.
//!
//! A write that fails (disk full, file size limit, I/O error) is not a lost record: the sink
//! keeps the rest of the line and retries with backoff, so the pipeline waits behind it
//! (file sources wait, live sources drop at their own queue, counted) and the output goes on
//! where it stopped once there is room — no line lost, none cut in half. Only a shutdown
//! ends the wait, after `shutdown_timeout`: the records still unwritten then are counted
//! in `sink_failed` and a partly written line is cut off the file.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::{Outgoing, Sink, SinkError};
use crate::backoff::Backoff;
use crate::telemetry::Events;

enum Target {
    Stdout,
    File {
        path: PathBuf,
        file: File,
        inode: (u64, u64),
        checked: Instant,
    },
}

pub struct JsonlSink {
    target: Target,
    stop: Arc<AtomicBool>,
    events: Arc<Events>,
    shutdown_timeout: Duration,
    /// Set when a shutdown ended a failing write: later records fail at once instead of
    /// each waiting `shutdown_timeout` again.
    gave_up: bool,
}

const ROTATION_CHECK: Duration = Duration::from_secs(1);
const FIRST_RETRY: Duration = Duration::from_millis(100);
const LONGEST_RETRY: Duration = Duration::from_secs(2);

impl JsonlSink {
    /// "-" is stdout; anything else a file path.
    pub fn open(
        target: &str,
        events: Arc<Events>,
        stop: Arc<AtomicBool>,
        shutdown_timeout: Duration,
    ) -> Result<JsonlSink, SinkError> {
        let target = if target == "-" {
            Target::Stdout
        } else {
            let path = PathBuf::from(target);
            let (file, inode) = open_append(&path)?;
            Target::File {
                path,
                file,
                inode,
                checked: Instant::now(),
            }
        };
        Ok(JsonlSink {
            target,
            stop,
            events,
            shutdown_timeout,
            gave_up: false,
        })
    }
}

fn io_error(path: &Path, source: std::io::Error) -> SinkError {
    SinkError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn open_append(path: &Path) -> Result<(File, (u64, u64)), SinkError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    Ok((file, (meta.dev(), meta.ino())))
}

impl Sink for JsonlSink {
    fn name(&self) -> String {
        match &self.target {
            Target::Stdout => "jsonl:-".into(),
            Target::File { path, .. } => format!("jsonl:{}", path.display()),
        }
    }

    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError> {
        self.write_line(message.line)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Every line is written straight to the file or stdout (no buffer of our own), so
        // only stdout's buffer is left.
        match &self.target {
            Target::Stdout => std::io::stdout().flush().map_err(|e| SinkError::Io {
                path: "stdout".into(),
                source: e,
            }),
            Target::File { .. } => Ok(()),
        }
    }
}

impl Target {
    fn error(&self, e: std::io::Error) -> SinkError {
        match self {
            Target::Stdout if e.kind() == std::io::ErrorKind::BrokenPipe => {
                SinkError::Closed("stdout".into())
            }
            Target::Stdout => SinkError::Io {
                path: "stdout".into(),
                source: e,
            },
            Target::File { path, .. } => io_error(path, e),
        }
    }

    /// Re-opens the file if it was moved or deleted since the last check.
    fn follow_rotation(&mut self) -> Result<(), SinkError> {
        let Target::File {
            path,
            file,
            inode,
            checked,
        } = self
        else {
            return Ok(());
        };
        if checked.elapsed() < ROTATION_CHECK {
            return Ok(());
        }
        *checked = Instant::now();
        let current = std::fs::metadata(&*path).ok().map(|m| (m.dev(), m.ino()));
        if current != Some(*inode) {
            let (f, i) = open_append(path)?;
            tracing::info!(path = %path.display(), "JSONL output was moved or deleted; reopened");
            *file = f;
            *inode = i;
        }
        Ok(())
    }

    /// One `write` call: some prefix of `bytes` is written.
    fn write_some(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                let n = out.write(bytes)?;
                out.flush()?;
                Ok(n)
            }
            Target::File { file, .. } => file.write(bytes),
        }
    }

    /// Cuts the `written` bytes of an unfinished line off the end of the file, so the next
    /// line starts on a line boundary (stdout cannot be taken back).
    fn cut_partial_line(&mut self, written: usize) {
        if let Target::File { path, file, .. } = self
            && written > 0
            && let Err(e) = file
                .metadata()
                .and_then(|m| file.set_len(m.len().saturating_sub(written as u64)))
        {
            tracing::error!(path = %path.display(), "cannot remove a partly written line: {e}");
        }
    }
}

impl JsonlSink {
    fn write_line(&mut self, line: &str) -> Result<(), SinkError> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        let mut written = 0;
        let mut outage: Option<Outage> = None;
        loop {
            let attempt = self.target.follow_rotation().and_then(|()| {
                match self.target.write_some(&bytes[written..]) {
                    Ok(0) => Err(self.target.error(std::io::ErrorKind::WriteZero.into())),
                    Ok(n) => Ok(n),
                    Err(e) => Err(self.target.error(e)),
                }
            });
            match attempt {
                Ok(n) => {
                    written += n;
                    if written == bytes.len() {
                        if let Some(outage) = outage {
                            tracing::warn!(
                                sink = self.name(),
                                retries = outage.retries,
                                "writing again after {:.1} s; nothing was lost",
                                outage.since.elapsed().as_secs_f64()
                            );
                        }
                        return Ok(());
                    }
                }
                Err(SinkError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::Interrupted => {}
                Err(closed @ SinkError::Closed(_)) => return Err(closed),
                Err(e) => {
                    let name = self.name();
                    if self.gave_up {
                        self.target.cut_partial_line(written);
                        return Err(e);
                    }
                    let outage = outage.get_or_insert_with(|| {
                        tracing::error!(
                            sink = name,
                            "{e}; holding the records and retrying (the pipeline waits until it can write)"
                        );
                        Outage::new()
                    });
                    self.events.sink_write_retry(&name);
                    if !outage.wait(&self.stop, self.shutdown_timeout) {
                        tracing::error!(
                            sink = name,
                            "shutting down while the output still fails; the records not written are counted in sink_failed"
                        );
                        self.gave_up = true;
                        self.target.cut_partial_line(written);
                        return Err(e);
                    }
                }
            }
        }
    }
}

/// A run of failed writes of one line.
struct Outage {
    since: Instant,
    retries: u64,
    backoff: Backoff,
    stop_seen: Option<Instant>,
}

impl Outage {
    fn new() -> Outage {
        Outage {
            since: Instant::now(),
            retries: 0,
            backoff: Backoff::steady(FIRST_RETRY, LONGEST_RETRY),
            stop_seen: None,
        }
    }

    /// Sleeps before the next retry; false when a shutdown has waited long enough.
    fn wait(&mut self, stop: &AtomicBool, shutdown_timeout: Duration) -> bool {
        self.retries += 1;
        let until = Instant::now() + self.backoff.next_delay();
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                let seen = *self.stop_seen.get_or_insert_with(Instant::now);
                if seen.elapsed() >= shutdown_timeout {
                    return false;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(target: &str, stop: &Arc<AtomicBool>, shutdown: Duration) -> JsonlSink {
        JsonlSink::open(target, Arc::new(Events::new()), stop.clone(), shutdown).expect("open")
    }

    #[test]
    fn file_sink_appends_and_reopens_after_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/landmarks.jsonl");
        let stop = Arc::new(AtomicBool::new(false));
        let mut sink = open(&path.display().to_string(), &stop, Duration::ZERO);
        sink.write_line("{\"n\":1}").expect("publish");
        // logrotate's default: move the file away, expect the writer to start a new one.
        std::fs::rename(&path, dir.path().join("rotated.jsonl")).expect("rotate");
        std::thread::sleep(ROTATION_CHECK + Duration::from_millis(50));
        sink.write_line("{\"n\":2}").expect("publish");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rotated.jsonl")).expect("old"),
            "{\"n\":1}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "{\"n\":2}\n");
        // Reopening appends rather than truncating.
        let mut again = open(&path.display().to_string(), &stop, Duration::ZERO);
        again.write_line("{\"n\":3}").expect("publish");
        assert_eq!(
            std::fs::read_to_string(&path).expect("new").lines().count(),
            2
        );
    }

    #[test]
    fn a_full_disk_holds_the_record_until_shutdown_then_fails_fast() {
        // /dev/full answers every write with ENOSPC.
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Events::new());
        let mut sink = JsonlSink::open(
            "/dev/full",
            events.clone(),
            stop.clone(),
            Duration::from_millis(200),
        )
        .expect("open");
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(500));
                stop.store(true, Ordering::Relaxed);
            })
        };
        let started = Instant::now();
        let e = sink.write_line("{}").expect_err("disk full");
        stopper.join().expect("stopper");
        // Held (retrying) until the shutdown, then gave up after the timeout.
        assert!(
            started.elapsed() >= Duration::from_millis(650),
            "{:?}",
            started.elapsed()
        );
        assert!(e.to_string().contains("No space left on device"), "{e}");
        let retries = events.total("sink_write_retries", Some("jsonl:/dev/full"));
        assert!(retries >= 3, "{retries}");
        // The next record does not wait (retry) again.
        sink.write_line("{}").expect_err("still full");
        assert_eq!(
            events.total("sink_write_retries", Some("jsonl:/dev/full")),
            retries
        );
    }
}
