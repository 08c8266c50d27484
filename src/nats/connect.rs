//! Connecting: credentials (token, user/password, nkey seed; from config or environment),
//! TLS with a CA and optional client certificate, and connection events counted and
//! logged. The client keeps reconnecting on its own; secrets are never logged.

use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event};

use super::NatsError;
use super::config::{NATS_NKEY_SEED_ENV, NATS_PASSWORD_ENV, NATS_TOKEN_ENV, NatsConfig, NatsTls};
use crate::telemetry::Events;

/// Who we are to the server.
#[derive(Clone, Default)]
pub struct Credentials {
    pub token: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub nkey_seed: Option<String>,
    pub tls: Option<NatsTls>,
}

impl std::fmt::Debug for Credentials {
    /// Says which credentials are set, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("token", &self.token.as_ref().map(|_| "<hidden>"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("nkey_seed", &self.nkey_seed.as_ref().map(|_| "<hidden>"))
            .field("tls", &self.tls)
            .finish()
    }
}

impl Credentials {
    pub fn of(config: &NatsConfig) -> Credentials {
        Credentials {
            token: config.effective_token(),
            username: config.username.clone(),
            password: config.effective_password(),
            nkey_seed: config.effective_nkey_seed(),
            tls: config.tls.clone(),
        }
    }

    /// For the command-line tools: `SPECTRALD_NATS_TOKEN`, `SPECTRALD_NATS_USER` +
    /// `SPECTRALD_NATS_PASSWORD`, `SPECTRALD_NATS_NKEY_SEED`, `SPECTRALD_NATS_CA`.
    pub fn from_env() -> Credentials {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Credentials {
            token: var(NATS_TOKEN_ENV),
            username: var("SPECTRALD_NATS_USER"),
            password: var(NATS_PASSWORD_ENV),
            nkey_seed: var(NATS_NKEY_SEED_ENV),
            tls: var("SPECTRALD_NATS_CA").map(|ca| NatsTls {
                ca_file: ca.into(),
                client_cert_file: None,
                client_key_file: None,
            }),
        }
    }
}

/// Connects to `url` (comma-separated for a cluster). With `wait = false` the call returns
/// at once and the client keeps trying in the background (a daemon must start without its
/// server); with `wait = true` an unreachable server is an error (a command-line tool).
pub async fn connect(
    url: &str,
    credentials: &Credentials,
    name: &str,
    events: Option<Arc<Events>>,
    wait: bool,
) -> Result<Client, NatsError> {
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(Duration::from_secs(5))
        // Every record is one request/ack: the client's default 10 s is the ack timeout's job.
        .request_timeout(Some(Duration::from_secs(10)))
        .max_reconnects(None);
    if !wait {
        options = options.retry_on_initial_connect();
    }
    if let Some(token) = &credentials.token {
        options = options.token(token.clone());
    }
    if let Some(user) = &credentials.username {
        options = options.user_and_password(
            user.clone(),
            credentials.password.clone().unwrap_or_default(),
        );
    }
    if let Some(seed) = &credentials.nkey_seed {
        options = options.nkey(seed.clone());
    }
    if let Some(tls) = &credentials.tls {
        for path in [
            Some(&tls.ca_file),
            tls.client_cert_file.as_ref(),
            tls.client_key_file.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if !path.exists() {
                return Err(NatsError::TlsFile {
                    path: path.display().to_string(),
                });
            }
        }
        options = options
            .require_tls(true)
            .add_root_certificates(tls.ca_file.clone());
        if let (Some(cert), Some(key)) = (&tls.client_cert_file, &tls.client_key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }
    let where_to = super::config::shown_url(url);
    let reconnected = std::sync::atomic::AtomicBool::new(false);
    let reconnected = Arc::new(reconnected);
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    options = options.event_callback(move |event| {
        let (events, where_to, reconnected, refused) = (
            events.clone(),
            where_to.clone(),
            reconnected.clone(),
            refused.clone(),
        );
        async move {
            use std::sync::atomic::Ordering;
            match event {
                Event::Connected => {
                    refused.store(false, Ordering::Relaxed);
                    if reconnected.swap(true, Ordering::Relaxed)
                        && let Some(events) = &events
                    {
                        events.nats_reconnect();
                    }
                    // A daemon's reconnects matter to its operator; a command's do not.
                    if events.is_some() {
                        tracing::info!(server = %where_to, "NATS connected");
                    } else {
                        tracing::debug!(server = %where_to, "NATS connected");
                    }
                }
                Event::Disconnected => {
                    tracing::warn!(server = %where_to, "NATS server unreachable; reconnecting in the background")
                }
                // Refused credentials: said once, with what to check (never their values).
                Event::ClientError(e)
                    if e.to_string().contains("authorization")
                        && !refused.swap(true, Ordering::Relaxed) =>
                {
                    tracing::error!(
                        server = %where_to,
                        "NATS server refused our credentials ({e}); check nats.username with SPECTRALD_NATS_PASSWORD, nats.token / SPECTRALD_NATS_TOKEN or the nkey seed; retrying"
                    )
                }
                // Every failed attempt of a reconnect loop: the lines above say it once.
                Event::ClientError(e) => tracing::debug!(server = %where_to, "NATS: {e}"),
                other => tracing::warn!(server = %where_to, "NATS: {other}"),
            }
        }
    });
    options
        .connect(url.split(',').map(str::trim).collect::<Vec<_>>())
        .await
        .map_err(|e| NatsError::Connect {
            url: super::config::shown_url(url),
            message: e.to_string(),
            hint: hint(e.kind(), &e.to_string()),
        })
}

/// What to check for each way a first connection fails (a certificate the client does
/// not trust comes back as an I/O error, so the message is read too).
fn hint(kind: async_nats::ConnectErrorKind, message: &str) -> &'static str {
    use async_nats::ConnectErrorKind as K;
    let certificate = message.to_ascii_lowercase().contains("certificate");
    match kind {
        K::Tls | K::Io if certificate => {
            "check nats.tls.ca_file (the CA that signed the server's certificate) and that the URL names the host in the certificate"
        }
        K::AuthorizationViolation | K::Authentication => {
            "check nats.username with SPECTRALD_NATS_PASSWORD, nats.token / SPECTRALD_NATS_TOKEN or the nkey seed"
        }
        K::Dns => "check the host name in the URL",
        _ => "is nats-server running and reachable there?",
    }
}
