//! A JetStream stream as the config wants it: created when missing; when present, checked
//! setting by setting, and refused (with the setting named) when it does not fit — never
//! changed behind the operator's back.

use std::time::Duration;

use async_nats::jetstream::{self, stream};

use super::NatsError;
use super::config::Retention;

/// The settings spectrald needs from a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamWanted {
    pub name: String,
    /// Subjects it must take (e.g. `spectrald.>`).
    pub subjects: Vec<String>,
    pub replicas: usize,
    pub retention: Retention,
    /// `Duration::ZERO` = no age limit.
    pub max_age: Duration,
    pub duplicate_window: Duration,
}

fn policy(r: Retention) -> stream::RetentionPolicy {
    match r {
        Retention::Limits => stream::RetentionPolicy::Limits,
        Retention::Interest => stream::RetentionPolicy::Interest,
        Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
    }
}

impl StreamWanted {
    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            num_replicas: self.replicas,
            retention: policy(self.retention),
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            storage: stream::StorageType::File,
            ..Default::default()
        }
    }

    /// The first setting of `found` that does not fit, as (setting, found, wanted).
    fn mismatch(&self, found: &stream::Config) -> Option<(&'static str, String, String)> {
        let covers = |subject: &String| found.subjects.iter().any(|s| subject_covers(s, subject));
        if let Some(missing) = self.subjects.iter().find(|s| !covers(s)) {
            return Some((
                "subject_prefix",
                format!("subjects {:?}", found.subjects),
                format!("{missing} (not among them)"),
            ));
        }
        if found.num_replicas != self.replicas {
            return Some((
                "replicas",
                found.num_replicas.to_string(),
                self.replicas.to_string(),
            ));
        }
        if found.retention != policy(self.retention) {
            return Some((
                "retention",
                format!("{:?}", found.retention).to_lowercase(),
                format!("{:?}", self.retention).to_lowercase(),
            ));
        }
        if found.duplicate_window < self.duplicate_window {
            return Some((
                "duplicate_window_s",
                format!("{} s", found.duplicate_window.as_secs()),
                format!("at least {} s", self.duplicate_window.as_secs()),
            ));
        }
        None
    }
}

/// Whether subject filter `filter` (with `*` and `>` wildcards) matches every subject that
/// `subject` (which may end in `>`) matches.
fn subject_covers(filter: &str, subject: &str) -> bool {
    let f: Vec<&str> = filter.split('.').collect();
    let s: Vec<&str> = subject.split('.').collect();
    for (i, token) in f.iter().enumerate() {
        match *token {
            ">" => return i < s.len(),
            "*" if i < s.len() && s[i] != ">" => {}
            t if i < s.len() && t == s[i] => {}
            _ => return false,
        }
    }
    f.len() == s.len()
}

/// Creates the stream, or checks the one that is there.
pub async fn ensure_stream(
    context: &jetstream::Context,
    wanted: &StreamWanted,
) -> Result<(), NatsError> {
    let failed = |message: String| NatsError::Stream {
        stream: wanted.name.clone(),
        message,
    };
    match context.get_stream(&wanted.name).await {
        Ok(mut existing) => {
            let info = existing.info().await.map_err(|e| failed(e.to_string()))?;
            if let Some((setting, found, want)) = wanted.mismatch(&info.config) {
                return Err(NatsError::Incompatible {
                    stream: wanted.name.clone(),
                    setting,
                    found,
                    wanted: want,
                });
            }
            Ok(())
        }
        Err(e)
            if matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref j)
                    if j.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            context
                .create_stream(wanted.config())
                .await
                .map(|_| tracing::info!(stream = %wanted.name, "NATS stream created"))
                .map_err(|e| failed(format!("cannot create it: {e}")))
        }
        Err(e) => Err(failed(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_cover_what_they_should() {
        assert!(subject_covers("spectrald.>", "spectrald.>"));
        assert!(subject_covers(">", "spectrald.>"));
        assert!(subject_covers(
            "spectrald.*.landmarks",
            "spectrald.kiosk.landmarks"
        ));
        assert!(!subject_covers("spectrald.*.landmarks", "spectrald.>"));
        assert!(!subject_covers("other.>", "spectrald.>"));
        assert!(!subject_covers("spectrald", "spectrald.>"));
    }

    #[test]
    fn a_stream_that_does_not_fit_is_named_by_its_setting() {
        let wanted = StreamWanted {
            name: "S".into(),
            subjects: vec!["spectrald.>".into()],
            replicas: 3,
            retention: Retention::Limits,
            max_age: Duration::ZERO,
            duplicate_window: Duration::from_secs(120),
        };
        let mut found = wanted.config();
        assert_eq!(wanted.mismatch(&found), None);
        found.num_replicas = 1;
        assert_eq!(wanted.mismatch(&found).map(|m| m.0), Some("replicas"));
        found.num_replicas = 3;
        found.subjects = vec!["other.>".into()];
        assert_eq!(wanted.mismatch(&found).map(|m| m.0), Some("subject_prefix"));
    }
}
