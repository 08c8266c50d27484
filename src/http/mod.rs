//! The HTTP API on tokio + axum: health, readiness, Prometheus metrics, the camera list,
//! the landmark event stream, snapshots, reload, and the live page.
//!
//! It runs on its own small tokio runtime in one thread; the pipeline never waits for it.
//! Routes that show data need the bearer token when one is configured; `/healthz`,
//! `/readyz` and the page's static files do not (the page asks for the token and sends it).
//! The listener, token check and limits are the shared [`crate::web`] layer.

mod api;
mod config;
mod metrics;
mod readiness;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use tokio::sync::{Semaphore, watch};

pub use config::{HTTP_TOKEN_ENV, HttpConfig};
pub use metrics::render as render_metrics;
pub use readiness::{CameraReadiness, Readiness, Status};

use crate::publish::hub::Hub;
use crate::telemetry::Events;
use crate::web::{self, BearerAuth, Limits, WebError, WebServer};

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error(transparent)]
    Web(#[from] WebError),
    #[error("http.listen: {0}")]
    Address(String),
}

/// A reload asked for over HTTP (`POST /api/v1/reload`); the daemon's control loop
/// applies it and the reply says what changed or why it was refused.
pub struct ReloadRequest {
    pub reply: Option<tokio::sync::oneshot::Sender<Result<String, String>>>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub events: Arc<Events>,
    pub status: Arc<Status>,
    /// Where `POST /api/v1/reload` sends its request; `None`: reload not offered.
    pub reload: Option<crossbeam_channel::Sender<ReloadRequest>>,
    pub event_streams: Arc<Semaphore>,
    /// Becomes true at shutdown: open event streams end.
    pub shutdown: watch::Receiver<bool>,
}

fn router(state: AppState, auth: BearerAuth) -> Router {
    let api = Router::new()
        .route("/metrics", get(api::metrics))
        .route("/api/v1/cameras", get(api::cameras))
        .route("/api/v1/cameras/{id}/{file}", get(api::camera_image))
        .route("/api/v1/landmarks/stream", get(api::landmark_stream))
        .route("/api/v1/reload", post(api::reload))
        .route_layer(axum::middleware::from_fn_with_state(
            auth,
            web::require_bearer,
        ));
    Router::new()
        .route("/", get(api::page))
        .route("/app.js", get(api::page_script))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .merge(api)
        .fallback(api::not_found)
        .with_state(state)
}

/// The daemon's HTTP API.
pub struct HttpServer {
    server: WebServer,
}

impl HttpServer {
    /// Binds (failing here, with the address, when it cannot) and starts serving; `None`
    /// when `http.listen` is unset.
    pub fn start(
        config: &HttpConfig,
        hub: Arc<Hub>,
        events: Arc<Events>,
        status: Arc<Status>,
        reload: Option<crossbeam_channel::Sender<ReloadRequest>>,
    ) -> Result<Option<HttpServer>, HttpError> {
        let Some(addr) = config.listen_addr() else {
            return Ok(None);
        };
        let addr = addr.map_err(HttpError::Address)?;
        let limits = Limits {
            max_connections: config.max_connections,
            max_body_bytes: config.max_body_bytes,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
            header_timeout: Duration::from_millis(config.header_timeout_ms),
        };
        let refused = events.clone();
        let auth = BearerAuth::new(config.effective_token().as_deref(), move || {
            refused.http_unauthorized()
        });
        let max_event_streams = config.max_event_streams;
        let server = WebServer::start("http", "http.listen", addr, limits, |shutdown| {
            let state = AppState {
                hub,
                events,
                status,
                reload,
                event_streams: Arc::new(Semaphore::new(max_event_streams)),
                shutdown,
            };
            router(state, auth)
        })?;
        let local = server.addr;
        tracing::info!(address = %local, "HTTP API listening (live page at http://{local}/)");
        Ok(Some(HttpServer { server }))
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.server.addr
    }

    /// Ends open event streams, finishes in-flight requests, and stops.
    pub fn stop(self) {
        self.server.stop();
    }
}
