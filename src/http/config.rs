//! `[http]`: where the daemon's HTTP API listens, its token and limits. Owned by the
//! HTTP layer; `config` only collects it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::invalid::Invalid;

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
    /// A connection that has not sent a whole request head this long after opening, or
    /// after its previous answer, is closed (slow-loris clients, idle keep-alive).
    pub header_timeout_ms: u64,
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
            header_timeout_ms: 5_000,
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

impl HttpConfig {
    /// Checks `[http]`: a parseable address, a token off loopback, limits of at least 1.
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(addr) = self.listen_addr() {
            let addr = addr.map_err(|m| Invalid::new("listen", m))?;
            if !addr.ip().is_loopback() && self.effective_token().is_none() {
                return Err(Invalid::new(
                    "listen",
                    format!(
                        "{addr} is reachable from other machines: set http.token or {HTTP_TOKEN_ENV}, or listen on 127.0.0.1"
                    ),
                ));
            }
        }
        if self.header_timeout_ms == 0 || self.request_timeout_ms == 0 {
            return Err(Invalid::new(
                "header_timeout_ms",
                "header_timeout_ms and request_timeout_ms must be at least 1",
            ));
        }
        if self.max_connections == 0 || self.max_event_streams == 0 {
            return Err(Invalid::new(
                "max_connections",
                "max_connections and max_event_streams must be at least 1",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_must_parse_and_limits_be_positive() {
        assert_eq!(HttpConfig::default().validate(), Ok(()));
        let bad = HttpConfig {
            listen: Some("localhost".into()),
            ..Default::default()
        };
        let e = bad.validate().unwrap_err();
        assert_eq!(e.field, "listen");
        assert!(e.message.contains("127.0.0.1:8080"), "{e}");
        let none = HttpConfig {
            max_event_streams: 0,
            ..Default::default()
        };
        assert_eq!(none.validate().unwrap_err().field, "max_connections");
    }

    #[test]
    fn beyond_loopback_needs_a_token() {
        let open = HttpConfig {
            listen: Some("0.0.0.0:8080".into()),
            ..Default::default()
        };
        if std::env::var(HTTP_TOKEN_ENV).is_err() {
            assert!(open.validate().unwrap_err().message.contains("http.token"));
        }
        let guarded = HttpConfig {
            token: Some("s3cret".into()),
            ..open
        };
        assert_eq!(guarded.validate(), Ok(()));
    }
}
