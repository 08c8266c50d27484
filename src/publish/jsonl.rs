//! JSON lines to stdout or to a file.
//!
//! The file is opened in append mode and re-opened when it is moved or deleted (logrotate's
//! default `create` rotation), checked at most once a second, so rotation never loses lines
//! into an unlinked file for longer than that.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Outgoing, Sink, SinkError};

pub enum JsonlSink {
    Stdout,
    File {
        path: PathBuf,
        writer: BufWriter<File>,
        inode: (u64, u64),
        checked: Instant,
    },
}

const ROTATION_CHECK: Duration = Duration::from_secs(1);

impl JsonlSink {
    /// "-" is stdout; anything else a file path.
    pub fn open(target: &str) -> Result<JsonlSink, SinkError> {
        if target == "-" {
            return Ok(JsonlSink::Stdout);
        }
        let path = PathBuf::from(target);
        let (writer, inode) = open_append(&path)?;
        Ok(JsonlSink::File {
            path,
            writer,
            inode,
            checked: Instant::now(),
        })
    }
}

fn io_error(path: &std::path::Path, source: std::io::Error) -> SinkError {
    SinkError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn open_append(path: &std::path::Path) -> Result<(BufWriter<File>, (u64, u64)), SinkError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| io_error(path, e))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    let meta = file.metadata().map_err(|e| io_error(path, e))?;
    Ok((BufWriter::new(file), (meta.dev(), meta.ino())))
}

impl Sink for JsonlSink {
    fn name(&self) -> String {
        match self {
            JsonlSink::Stdout => "jsonl:-".into(),
            JsonlSink::File { path, .. } => format!("jsonl:{}", path.display()),
        }
    }

    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError> {
        self.write_line(message.line)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.flush_all()
    }
}

impl JsonlSink {
    fn write_line(&mut self, line: &str) -> Result<(), SinkError> {
        match self {
            JsonlSink::Stdout => {
                let mut out = std::io::stdout().lock();
                writeln!(out, "{line}")
                    .and_then(|_| out.flush())
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::BrokenPipe => SinkError::Closed("stdout".into()),
                        _ => SinkError::Io {
                            path: "stdout".into(),
                            source: e,
                        },
                    })
            }
            JsonlSink::File {
                path,
                writer,
                inode,
                checked,
            } => {
                if checked.elapsed() >= ROTATION_CHECK {
                    *checked = Instant::now();
                    let current = std::fs::metadata(&*path).ok().map(|m| (m.dev(), m.ino()));
                    if current != Some(*inode) {
                        writer.flush().map_err(|e| io_error(path, e))?;
                        let (w, i) = open_append(path)?;
                        tracing::info!(path = %path.display(), "JSONL output was moved or deleted; reopened");
                        *writer = w;
                        *inode = i;
                    }
                }
                writeln!(writer, "{line}")
                    .and_then(|_| writer.flush())
                    .map_err(|e| io_error(path, e))
            }
        }
    }

    fn flush_all(&mut self) -> Result<(), SinkError> {
        match self {
            JsonlSink::Stdout => std::io::stdout().flush().map_err(|e| SinkError::Io {
                path: "stdout".into(),
                source: e,
            }),
            JsonlSink::File { path, writer, .. } => writer.flush().map_err(|e| io_error(path, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sink_appends_and_reopens_after_rotation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out/landmarks.jsonl");
        let mut sink = JsonlSink::open(&path.display().to_string()).expect("open");
        sink.write_line("{\"n\":1}").expect("publish");
        // logrotate's default: move the file away, expect the writer to start a new one.
        std::fs::rename(&path, dir.path().join("rotated.jsonl")).expect("rotate");
        std::thread::sleep(ROTATION_CHECK + Duration::from_millis(50));
        sink.write_line("{\"n\":2}").expect("publish");
        sink.flush_all().expect("flush");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("rotated.jsonl")).expect("old"),
            "{\"n\":1}\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("new"), "{\"n\":2}\n");
        // Reopening appends rather than truncating.
        let mut again = JsonlSink::open(&path.display().to_string()).expect("open");
        again.write_line("{\"n\":3}").expect("publish");
        assert_eq!(
            std::fs::read_to_string(&path).expect("new").lines().count(),
            2
        );
    }
}
