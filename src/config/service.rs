//! Config of the daemon's network side: the HTTP API and the MQTT sink.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Environment variable that supplies (or overrides) `http.token`, so the secret can stay
/// out of the config file (systemd `EnvironmentFile=`).
pub const HTTP_TOKEN_ENV: &str = "SPECTRALD_HTTP_TOKEN";

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to serve on; unset = no HTTP server. Loopback unless a token is set.
    pub listen: Option<String>,
    /// Bearer token every API request must carry (`Authorization: Bearer …`). Required
    /// when `listen` is not a loopback address.
    pub token: Option<String>,
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request body accepted (the API takes no uploads).
    pub max_body_bytes: usize,
    /// A request (not an event stream) that takes longer is answered 408.
    pub request_timeout_ms: u64,
    /// `/readyz` counts a camera as ready while it is this young, even before its first
    /// frame (cameras take a while to start streaming).
    pub ready_grace_ms: u64,
    /// Event-stream clients at once; more get 503.
    pub max_event_streams: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: None,
            token: None,
            max_connections: 64,
            max_body_bytes: 64 * 1024,
            request_timeout_ms: 10_000,
            ready_grace_ms: 10_000,
            max_event_streams: 16,
        }
    }
}

impl HttpConfig {
    /// The token in force: the environment's, else the config's; empty means none.
    pub fn effective_token(&self) -> Option<String> {
        std::env::var(HTTP_TOKEN_ENV)
            .ok()
            .or_else(|| self.token.clone())
            .filter(|t| !t.is_empty())
    }

    pub fn listen_addr(&self) -> Option<Result<SocketAddr, String>> {
        self.listen.as_ref().map(|l| {
            l.parse::<SocketAddr>()
                .map_err(|e| format!("{l:?} is not an address like 127.0.0.1:8080 ({e})"))
        })
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
    pub when_full: MqttWhenFull,
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// Seconds between health messages (also sent on every state change).
    pub health_interval_s: u64,
    /// At shutdown, how long to wait for the broker to take what is buffered.
    pub shutdown_timeout_ms: u64,
}

/// What a full MQTT buffer does with the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MqttWhenFull {
    #[default]
    Block,
    DropOldest,
    DropNewest,
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
            when_full: MqttWhenFull::Block,
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

/// Checks both sections; (field, message) of the first problem.
pub fn validate(http: &HttpConfig, mqtt: &MqttConfig) -> Result<(), (String, String)> {
    if let Some(addr) = http.listen_addr() {
        let addr = addr.map_err(|m| ("http.listen".to_owned(), m))?;
        if !addr.ip().is_loopback() && http.effective_token().is_none() {
            return Err((
                "http.listen".into(),
                format!(
                    "{addr} is reachable from other machines: set http.token or {HTTP_TOKEN_ENV}, or listen on 127.0.0.1"
                ),
            ));
        }
    }
    if http.max_connections == 0 || http.max_event_streams == 0 {
        return Err((
            "http.max_connections".into(),
            "max_connections and max_event_streams must be at least 1".into(),
        ));
    }
    if mqtt.host.is_some() {
        let valid_prefix = !mqtt.topic_prefix.is_empty()
            && !mqtt.topic_prefix.contains(['#', '+'])
            && !mqtt.topic_prefix.ends_with('/');
        if !valid_prefix {
            return Err((
                "mqtt.topic_prefix".into(),
                format!(
                    "{:?}: needs a non-empty topic without wildcards (#, +) or a trailing /",
                    mqtt.topic_prefix
                ),
            ));
        }
        if mqtt.max_inflight == 0 {
            return Err(("mqtt.max_inflight".into(), "must be at least 1".into()));
        }
        if mqtt.buffer == 0 {
            return Err(("mqtt.buffer".into(), "must be at least 1".into()));
        }
        if mqtt.initial_backoff_ms == 0 || mqtt.max_backoff_ms < mqtt.initial_backoff_ms {
            return Err((
                "mqtt.initial_backoff_ms".into(),
                "need 0 < initial_backoff_ms <= max_backoff_ms".into(),
            ));
        }
        if mqtt.client_id.is_empty() {
            return Err(("mqtt.client_id".into(), "must not be empty".into()));
        }
        if let Some(tls) = &mqtt.tls
            && tls.client_cert_file.is_some() != tls.client_key_file.is_some()
        {
            return Err((
                "mqtt.tls".into(),
                "client_cert_file and client_key_file go together".into(),
            ));
        }
        if mqtt.username.is_none() && mqtt.effective_password().is_some() {
            return Err((
                "mqtt.password".into(),
                "a password needs mqtt.username".into(),
            ));
        }
    }
    Ok(())
}
