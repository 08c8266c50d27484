//! The HTTP layer both servers stand on (the daemon's API, `http`, and `serve-offline`,
//! `offline::service`): a listener that caps connections, a deadline for each request head
//! (slow or idle clients cannot hold the capped slots), the bearer-token check, request
//! limits (body size, time), `nosniff`, and a server on its own thread and tokio runtime
//! that stops gracefully.
//!
//! The pipeline never waits for it: CPU work stays on plain threads, and a handler that
//! computes (an offline upload) runs on tokio's blocking pool.

mod auth;
mod listener;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;

pub use auth::{BearerAuth, bearer_ok, require_bearer, unauthorized};

/// How much one client may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Connections served at once; more wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Largest request body accepted (413 above it).
    pub max_body_bytes: usize,
    /// A request that takes longer is answered 408 (long-lived event streams excepted).
    pub request_timeout: Duration,
    /// A connection that has not sent a whole request head this long after it opened, or
    /// after its previous answer, is closed: a client trickling headers (slow loris) or
    /// idling on keep-alive gives its slot back.
    pub header_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{setting} {addr}: {source}; pick a free port or stop what is using it")]
    Bind {
        setting: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP thread: {0}")]
    Runtime(std::io::Error),
}

/// `{"error": message}` with a status: the JSON error answer of the APIs that speak JSON.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": message.into()})),
    )
        .into_response()
}

/// A running server; [`WebServer::stop`] (or dropping it) ends it.
pub struct WebServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl WebServer {
    /// Binds `addr` (failing here, naming `setting`, when it cannot), then serves the
    /// router `app` builds on a thread named `name`. `app` gets a receiver that turns true
    /// at stop, so long-lived answers (event streams) can end.
    pub fn start(
        name: &'static str,
        setting: &'static str,
        addr: SocketAddr,
        limits: Limits,
        app: impl FnOnce(watch::Receiver<bool>) -> Router,
    ) -> Result<WebServer, WebError> {
        let bind_error = |source| WebError::Bind {
            setting,
            addr,
            source,
        };
        let std_listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        std_listener.set_nonblocking(true).map_err(bind_error)?;
        let local = std_listener.local_addr().map_err(bind_error)?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let app = with_limits(app(shutdown_rx.clone()), &limits);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(WebError::Runtime)?;
        let max_connections = limits.max_connections;
        let header_timeout = limits.header_timeout;
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => listener::LimitedListener::new(l, max_connections),
                        Err(e) => {
                            tracing::error!("HTTP listener on {local}: {e}");
                            return;
                        }
                    };
                    serve(listener, app, shutdown_rx, header_timeout).await;
                });
                // Connections still open after the graceful phase are cut here.
                runtime.shutdown_timeout(Duration::from_secs(2));
            })
            .map_err(WebError::Runtime)?;
        Ok(WebServer {
            addr: local,
            shutdown: shutdown_tx,
            thread: Some(thread),
        })
    }

    /// Ends long-lived answers, finishes in-flight requests, and stops.
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

impl Drop for WebServer {
    fn drop(&mut self) {
        self.stop_in_place();
    }
}

/// Serves `app` on `listener` until `stop` turns true, then lets open requests finish.
///
/// Written out instead of `axum::serve`, which gives hyper no timer, so hyper's header-read
/// deadline never fires and a client that trickles its headers keeps its slot forever.
async fn serve(
    mut listener: listener::LimitedListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    header_timeout: Duration,
) {
    use axum::serve::Listener;
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use tower::ServiceExt;

    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    loop {
        tokio::select! {
            (io, _) = listener.accept() => {
                let service = hyper_util::service::TowerToHyperService::new(
                    app.clone()
                        .map_request(|r: axum::extract::Request<hyper::body::Incoming>| {
                            r.map(axum::body::Body::new)
                        }),
                );
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(io), service)
                    .into_owned();
                let connection = graceful.watch(connection);
                tokio::spawn(async move {
                    // A client that goes away or times out ends its connection: not an error.
                    let _ = connection.await;
                });
            }
            _ = stop.wait_for(|s| *s) => break,
        }
    }
    // Open requests finish; what is still open after that is cut by the runtime's shutdown.
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// The limits and headers every route of every server gets.
fn with_limits(app: Router, limits: &Limits) -> Router {
    app.layer(tower_http::limit::RequestBodyLimitLayer::new(
        limits.max_body_bytes,
    ))
    .layer(TimeoutLayer::with_status_code(
        StatusCode::REQUEST_TIMEOUT,
        limits.request_timeout,
    ))
    .layer(SetResponseHeaderLayer::overriding(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
}
