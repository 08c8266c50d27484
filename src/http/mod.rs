//! The HTTP API on tokio + axum: health, readiness, Prometheus metrics, the camera list,
//! the landmark event stream, snapshots, reload, and the live page.
//!
//! It runs on its own small tokio runtime in one thread; the pipeline never waits for it.
//! Routes that show data need the bearer token when one is configured; `/healthz`,
//! `/readyz` and the page's static files do not (the page asks for the token and sends it).

mod api;
mod auth;
pub(crate) use auth::{bearer_ok, unauthorized};
mod listener;
mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{get, post};
use tokio::sync::{Semaphore, watch};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::HttpConfig;
use crate::publish::hub::Hub;
use crate::service::{ReloadRequest, Status};
use crate::telemetry::Events;

pub use metrics::render as render_metrics;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("http.listen {addr}: {source}; pick a free port or stop what is using it")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("http.listen: {0}")]
    Address(String),
    #[error("cannot start the HTTP thread: {0}")]
    Runtime(std::io::Error),
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    pub events: Arc<Events>,
    pub status: Arc<Status>,
    /// Where `POST /api/v1/reload` sends its request; `None`: reload not offered.
    pub reload: Option<crossbeam_channel::Sender<ReloadRequest>>,
    pub token: Option<Arc<str>>,
    pub event_streams: Arc<Semaphore>,
    /// Becomes true at shutdown: open event streams end.
    pub shutdown: watch::Receiver<bool>,
}

pub struct HttpServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

fn router(state: AppState, config: &HttpConfig) -> Router {
    let api = Router::new()
        .route("/metrics", get(api::metrics))
        .route("/api/v1/cameras", get(api::cameras))
        .route("/api/v1/cameras/{id}/{file}", get(api::camera_image))
        .route("/api/v1/landmarks/stream", get(api::landmark_stream))
        .route("/api/v1/reload", post(api::reload))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ));
    Router::new()
        .route("/", get(api::page))
        .route("/app.js", get(api::page_script))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .merge(api)
        .fallback(api::not_found)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            config.max_body_bytes,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(config.request_timeout_ms),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .with_state(state)
}

impl HttpServer {
    /// Binds (failing here, with the address, when it cannot) and starts serving.
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
        let std_listener =
            std::net::TcpListener::bind(addr).map_err(|source| HttpError::Bind { addr, source })?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| HttpError::Bind { addr, source })?;
        let local = std_listener
            .local_addr()
            .map_err(|source| HttpError::Bind { addr, source })?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let state = AppState {
            hub,
            events,
            status,
            reload,
            token: config.effective_token().map(Into::into),
            event_streams: Arc::new(Semaphore::new(config.max_event_streams)),
            shutdown: shutdown_rx.clone(),
        };
        let app = router(state, config);
        let max_connections = config.max_connections;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("http")
            .enable_all()
            .build()
            .map_err(HttpError::Runtime)?;
        let thread = std::thread::Builder::new()
            .name("http".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => listener::LimitedListener::new(l, max_connections),
                        Err(e) => {
                            tracing::error!("HTTP listener on {local}: {e}");
                            return;
                        }
                    };
                    let mut stop = shutdown_rx;
                    let served = axum::serve(listener, app).with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    });
                    if let Err(e) = served.await {
                        tracing::error!("HTTP server on {local} stopped: {e}");
                    }
                });
                // Connections still open after the graceful phase are cut here.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(HttpError::Runtime)?;
        tracing::info!(address = %local, "HTTP API listening (live page at http://{local}/)");
        Ok(Some(HttpServer {
            addr: local,
            shutdown: shutdown_tx,
            thread: Some(thread),
        }))
    }

    /// Ends open event streams, finishes in-flight requests, and stops.
    pub fn stop(mut self) {
        self.stop_in_place();
    }

    fn stop_in_place(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the HTTP thread panicked");
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_in_place();
    }
}
