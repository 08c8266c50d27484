//! `[output]` and `[mqtt]`: where records are published. Owned by the sinks; `config`
//! only collects them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::outage::WhenFull;
use crate::invalid::Invalid;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    /// JSON lines destination: "-" for stdout, else a file appended to (rotation-safe).
    pub jsonl: String,
    /// A failing write (disk full) holds the pipeline until it succeeds; at shutdown it is
    /// retried this long before the records not yet written are given up (counted).
    pub shutdown_timeout_ms: u64,
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            jsonl: "-".into(),
            shutdown_timeout_ms: 5_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum Qos {
    #[serde(rename = "0")]
    AtMostOnce,
    #[default]
    #[serde(rename = "1")]
    AtLeastOnce,
    #[serde(rename = "2")]
    ExactlyOnce,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTls {
    /// PEM file of the CA that signed the broker's certificate.
    pub ca_file: PathBuf,
    /// PEM client certificate and key, for brokers that require client certificates.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    /// Broker host; unset = no MQTT sink.
    pub host: Option<String>,
    pub port: u16,
    pub client_id: String,
    /// Topics: PREFIX/CAMERA/landmarks, PREFIX/CAMERA/health, PREFIX/available.
    pub topic_prefix: String,
    /// "0", "1" or "2". Exactly-once delivery across broker restarts needs "2", a broker
    /// with persistence, and `clean_session = false`.
    pub qos: Qos,
    /// Retain each camera's latest landmarks message (health is always retained).
    pub retain: bool,
    /// Keep the session (and unacknowledged messages) on the broker across reconnects.
    pub clean_session: bool,
    pub username: Option<String>,
    /// Or the SPECTRALD_MQTT_PASSWORD environment variable.
    pub password: Option<String>,
    pub tls: Option<MqttTls>,
    pub keep_alive_s: u64,
    /// Messages sent but not yet acknowledged at once. Keep it below the broker's limit
    /// (mosquitto: max_inflight_messages, 20 by default): over it, a broker may refuse
    /// QoS 2 messages with "quota exceeded", which MQTT 3.1.1 cannot report back.
    pub max_inflight: u16,
    /// Messages held while the broker is unreachable.
    pub buffer: usize,
    /// Full buffer: "block" (back-pressure reaches the pipeline: nothing is lost),
    /// "drop_oldest" or "drop_newest" (counted in mqtt_dropped).
    pub when_full: WhenFull,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Seconds between health messages (also sent on every state change).
    pub health_interval_s: u64,
    /// At shutdown, how long to wait for the broker to take what is buffered.
    pub shutdown_timeout_ms: u64,
}

pub const MQTT_PASSWORD_ENV: &str = "SPECTRALD_MQTT_PASSWORD";

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            host: None,
            port: 1883,
            client_id: "spectrald".into(),
            topic_prefix: "spectrald".into(),
            qos: Qos::AtLeastOnce,
            retain: false,
            clean_session: true,
            username: None,
            password: None,
            tls: None,
            keep_alive_s: 30,
            max_inflight: 10,
            buffer: 1000,
            when_full: WhenFull::Block,
            initial_backoff_ms: 250,
            max_backoff_ms: 10_000,
            health_interval_s: 10,
            shutdown_timeout_ms: 5_000,
        }
    }
}

impl MqttConfig {
    pub fn effective_password(&self) -> Option<String> {
        std::env::var(MQTT_PASSWORD_ENV)
            .ok()
            .or_else(|| self.password.clone())
    }
}

impl MqttConfig {
    /// Checks `[mqtt]` (only when a broker is configured).
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.host.is_none() {
            return Ok(());
        }
        let valid_prefix = !self.topic_prefix.is_empty()
            && !self.topic_prefix.contains(['#', '+'])
            && !self.topic_prefix.ends_with('/');
        if !valid_prefix {
            return Err(Invalid::new(
                "topic_prefix",
                format!(
                    "{:?}: needs a non-empty topic without wildcards (#, +) or a trailing /",
                    self.topic_prefix
                ),
            ));
        }
        if self.max_inflight == 0 {
            return Err(Invalid::new("max_inflight", "must be at least 1"));
        }
        if self.buffer == 0 {
            return Err(Invalid::new("buffer", "must be at least 1"));
        }
        if self.initial_backoff_ms == 0 || self.max_backoff_ms < self.initial_backoff_ms {
            return Err(Invalid::new(
                "initial_backoff_ms",
                "need 0 < initial_backoff_ms <= max_backoff_ms",
            ));
        }
        if self.client_id.is_empty() {
            return Err(Invalid::new("client_id", "must not be empty"));
        }
        if let Some(tls) = &self.tls
            && tls.client_cert_file.is_some() != tls.client_key_file.is_some()
        {
            return Err(Invalid::new(
                "tls",
                "client_cert_file and client_key_file go together",
            ));
        }
        if self.username.is_none() && self.effective_password().is_some() {
            return Err(Invalid::new("password", "a password needs mqtt.username"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn broker() -> MqttConfig {
        MqttConfig {
            host: Some("127.0.0.1".into()),
            ..Default::default()
        }
    }

    #[test]
    fn nothing_is_checked_without_a_broker() {
        let off = MqttConfig {
            buffer: 0,
            ..Default::default()
        };
        assert_eq!(off.validate(), Ok(()));
        assert_eq!(broker().validate(), Ok(()));
    }

    #[test]
    fn broker_settings_are_checked_field_by_field() {
        let field = |c: MqttConfig| c.validate().unwrap_err().field;
        for prefix in ["", "a/#", "a/+/b", "a/"] {
            let c = MqttConfig {
                topic_prefix: prefix.into(),
                ..broker()
            };
            assert_eq!(field(c), "topic_prefix", "{prefix:?}");
        }
        assert_eq!(
            field(MqttConfig {
                buffer: 0,
                ..broker()
            }),
            "buffer"
        );
        assert_eq!(
            field(MqttConfig {
                max_inflight: 0,
                ..broker()
            }),
            "max_inflight"
        );
        assert_eq!(
            field(MqttConfig {
                initial_backoff_ms: 0,
                ..broker()
            }),
            "initial_backoff_ms"
        );
        assert_eq!(
            field(MqttConfig {
                client_id: String::new(),
                ..broker()
            }),
            "client_id"
        );
        let half_tls = MqttConfig {
            tls: Some(MqttTls {
                ca_file: "ca.pem".into(),
                client_cert_file: Some("c.pem".into()),
                client_key_file: None,
            }),
            ..broker()
        };
        assert_eq!(field(half_tls), "tls");
        let orphan_password = MqttConfig {
            password: Some("pw".into()),
            ..broker()
        };
        assert_eq!(field(orphan_password), "password");
    }
}
