//! `[nats]`: the JetStream sink's server, stream, buffer and credentials. Owned by `nats`;
//! `config` only collects it. The offline `submit`/`worker`/`results` commands take the
//! server on their command line and the same credentials from the environment.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;
use crate::publish::WhenFull;

/// Environment variables that supply (or override) the secrets, so they can stay out of
/// the config file (systemd `EnvironmentFile=`).
pub const NATS_TOKEN_ENV: &str = "SPECTRALD_NATS_TOKEN";
pub const NATS_PASSWORD_ENV: &str = "SPECTRALD_NATS_PASSWORD";
pub const NATS_NKEY_SEED_ENV: &str = "SPECTRALD_NATS_NKEY_SEED";

/// What the stream keeps (JetStream retention policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Until max_age (or the server's limits): readers replay what they want.
    #[default]
    Limits,
    /// While a consumer is interested.
    Interest,
    /// Until one consumer acknowledges it.
    WorkQueue,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// PEM file of the CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate and key, for servers that require them.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsConfig {
    /// Server URL, or several comma-separated (a cluster); unset: no NATS sink.
    pub url: Option<String>,
    /// This rig's name in message ids and the health bucket (default: the host name).
    pub rig: Option<String>,
    /// Records go to `PREFIX.CAMERA.landmarks`.
    pub subject_prefix: String,
    /// The stream that keeps them (created when missing, checked when present).
    pub stream: String,
    pub replicas: usize,
    pub retention: Retention,
    /// How long the stream keeps a record; 0 = no age limit.
    pub max_age_s: u64,
    /// Window in which the server drops a resent record by its message id.
    pub duplicate_window_s: u64,
    /// Records held while the server is unreachable.
    pub buffer: usize,
    /// Full buffer: "block" (back-pressure reaches the pipeline: nothing is lost),
    /// "drop_oldest" or "drop_newest" (counted in nats_dropped).
    pub when_full: WhenFull,
    /// Records published and not yet acknowledged at once.
    pub max_inflight: usize,
    /// A publish not acknowledged this long is resent (its id keeps it single).
    pub ack_timeout_ms: u64,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// At shutdown, how long to wait for the server to take what is buffered.
    pub shutdown_timeout_ms: u64,
    /// Key-value bucket with each rig's last state (key = rig); "" = none.
    pub health_bucket: String,
    pub health_interval_s: u64,
    /// A rig's entry expires this long after its last update (a dead rig disappears).
    pub health_ttl_s: u64,
    /// Or SPECTRALD_NATS_TOKEN.
    pub token: Option<String>,
    pub username: Option<String>,
    /// Or SPECTRALD_NATS_PASSWORD.
    pub password: Option<String>,
    /// NKey seed ("SU…"), or SPECTRALD_NATS_NKEY_SEED.
    pub nkey_seed: Option<String>,
    pub tls: Option<NatsTls>,
}

impl Default for NatsConfig {
    fn default() -> Self {
        NatsConfig {
            url: None,
            rig: None,
            subject_prefix: "spectrald".into(),
            stream: "SPECTRALD".into(),
            replicas: 1,
            retention: Retention::Limits,
            max_age_s: 7 * 24 * 3600,
            duplicate_window_s: 120,
            buffer: 1000,
            when_full: WhenFull::Block,
            max_inflight: 1,
            ack_timeout_ms: 5_000,
            initial_backoff_ms: 250,
            max_backoff_ms: 10_000,
            shutdown_timeout_ms: 5_000,
            health_bucket: "spectrald_health".into(),
            health_interval_s: 10,
            health_ttl_s: 60,
            token: None,
            username: None,
            password: None,
            nkey_seed: None,
            tls: None,
        }
    }
}

fn env_or(name: &str, value: &Option<String>) -> Option<String> {
    std::env::var(name)
        .ok()
        .or_else(|| value.clone())
        .filter(|v| !v.is_empty())
}

/// A NATS subject token: letters, digits, '-' and '_' (no '.', '*', '>' or spaces).
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The server URL(s) as logs and errors show them: any `user:password@` is hidden.
pub fn shown_url(url: &str) -> String {
    url.split(',')
        .map(|part| {
            let part = part.trim();
            match (part.find("://"), part.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}<hidden>@{}", &part[..scheme + 3], &part[at + 1..])
                }
                (None, Some(at)) => format!("<hidden>@{}", &part[at + 1..]),
                _ => part.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl NatsConfig {
    pub fn effective_token(&self) -> Option<String> {
        env_or(NATS_TOKEN_ENV, &self.token)
    }

    pub fn effective_password(&self) -> Option<String> {
        env_or(NATS_PASSWORD_ENV, &self.password)
    }

    pub fn effective_nkey_seed(&self) -> Option<String> {
        env_or(NATS_NKEY_SEED_ENV, &self.nkey_seed)
    }

    /// The rig name in force: the config's, else the host name, else "rig".
    pub fn rig_name(&self) -> String {
        self.rig.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| {
                    h.trim()
                        .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
                })
                .filter(|h| is_token(h))
                .unwrap_or_else(|| "rig".into())
        })
    }

    /// Checks `[nats]`: names that are valid subject tokens, limits of at least 1,
    /// credentials that go together.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.url.as_deref().is_some_and(|u| u.trim().is_empty()) {
            return Err(Invalid::new("url", "empty; unset it for no NATS sink"));
        }
        for (field, value) in [
            ("subject_prefix", self.subject_prefix.as_str()),
            ("stream", self.stream.as_str()),
        ] {
            if !is_token(value) {
                return Err(Invalid::new(
                    field,
                    format!("{value:?}: use letters, digits, '-' and '_' only"),
                ));
            }
        }
        if let Some(rig) = &self.rig
            && !is_token(rig)
        {
            return Err(Invalid::new(
                "rig",
                format!("{rig:?}: use letters, digits, '-' and '_' only"),
            ));
        }
        if !self.health_bucket.is_empty() && !is_token(&self.health_bucket) {
            return Err(Invalid::new(
                "health_bucket",
                format!(
                    "{:?}: use letters, digits, '-' and '_' only",
                    self.health_bucket
                ),
            ));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(Invalid::new("replicas", "JetStream keeps 1 to 5 replicas"));
        }
        for (field, value) in [
            ("buffer", self.buffer as u64),
            ("max_inflight", self.max_inflight as u64),
            ("ack_timeout_ms", self.ack_timeout_ms),
            ("duplicate_window_s", self.duplicate_window_s),
            ("initial_backoff_ms", self.initial_backoff_ms),
            ("health_interval_s", self.health_interval_s),
        ] {
            if value == 0 {
                return Err(Invalid::new(field, "must be at least 1"));
            }
        }
        if self.max_backoff_ms < self.initial_backoff_ms {
            return Err(Invalid::new(
                "max_backoff_ms",
                "must be at least initial_backoff_ms",
            ));
        }
        if self.health_ttl_s <= self.health_interval_s && !self.health_bucket.is_empty() {
            return Err(Invalid::new(
                "health_ttl_s",
                "must be longer than health_interval_s, or a live rig's entry expires",
            ));
        }
        if self.max_age_s != 0 && self.max_age_s < self.duplicate_window_s {
            return Err(Invalid::new(
                "duplicate_window_s",
                "must not be longer than max_age_s (JetStream refuses it)",
            ));
        }
        if self.password.is_some() && self.username.is_none() {
            return Err(Invalid::new("password", "a password needs nats.username"));
        }
        if let Some(tls) = &self.tls
            && tls.client_cert_file.is_some() != tls.client_key_file.is_some()
        {
            return Err(Invalid::new(
                "tls",
                "client_cert_file and client_key_file go together",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_limits_and_credentials_are_checked() {
        assert_eq!(NatsConfig::default().validate(), Ok(()));
        let field = |c: NatsConfig| c.validate().unwrap_err().field;
        assert_eq!(
            field(NatsConfig {
                subject_prefix: "a.b".into(),
                ..Default::default()
            }),
            "subject_prefix"
        );
        assert_eq!(
            field(NatsConfig {
                replicas: 7,
                ..Default::default()
            }),
            "replicas"
        );
        assert_eq!(
            field(NatsConfig {
                password: Some("p".into()),
                ..Default::default()
            }),
            "password"
        );
        assert_eq!(
            field(NatsConfig {
                health_ttl_s: 5,
                ..Default::default()
            }),
            "health_ttl_s"
        );
        assert!(is_token("kiosk-1") && !is_token("a b") && !is_token("a>"));
        assert_eq!(
            shown_url("nats://u:secret@a:4222, b:4222,tok@c"),
            "nats://<hidden>@a:4222,b:4222,<hidden>@c"
        );
    }
}
