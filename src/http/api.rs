//! The route handlers.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use super::AppState;
use super::ReloadRequest;
use crate::frame::Spectrum;
use crate::publish::hub::Latest;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/app.js");

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'",
            ),
        ],
        PAGE,
    )
        .into_response()
}

pub async fn page_script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

pub async fn not_found() -> Response {
    text(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/v1/cameras, /api/v1/landmarks/stream, /metrics, /healthz, /readyz\n".into(),
    )
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let readiness = state.status.readiness(&state.events, &state.hub);
    let code = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(readiness)).into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    match super::metrics::render(&state.events) {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n".into(),
        ),
    }
}

#[derive(Serialize)]
struct StreamView {
    state: &'static str,
    reason: String,
    since_s: f64,
}

#[derive(Serialize)]
struct CameraView {
    id: String,
    ready: bool,
    detail: String,
    streams: std::collections::BTreeMap<String, StreamView>,
    published: u64,
    received: u64,
    dropped: std::collections::BTreeMap<String, u64>,
    fps: f64,
    last_sequence: Option<u64>,
    last_published_ms_ago: Option<u64>,
    /// The newest record, as published.
    last_record: Option<serde_json::Value>,
}

pub async fn cameras(State(state): State<AppState>) -> Response {
    let readiness = state.status.readiness(&state.events, &state.hub);
    let streams = state.events.stream_states();
    let mut out = Vec::new();
    for (id, ready) in readiness.cameras {
        let latest: Option<Latest> = state.hub.latest(&id);
        out.push(CameraView {
            streams: streams
                .iter()
                .filter(|((c, _), _)| *c == id)
                .map(|((_, spectrum), s)| {
                    (
                        spectrum.clone(),
                        StreamView {
                            state: s.state.as_str(),
                            reason: s.reason.clone(),
                            since_s: s.since.elapsed().as_secs_f64(),
                        },
                    )
                })
                .collect(),
            published: state.events.camera_total("pair_published", &id),
            received: state.events.camera_total("frame_received", &id),
            dropped: state.events.drops_by_reason(&id),
            fps: latest
                .as_ref()
                .map_or(0.0, |l| (l.fps * 10.0).round() / 10.0),
            last_sequence: latest.as_ref().map(|l| l.frame.sequence),
            last_published_ms_ago: latest.as_ref().map(|l| l.at.elapsed().as_millis() as u64),
            last_record: latest.and_then(|l| serde_json::from_str(&l.record).ok()),
            ready: ready.ready,
            detail: ready.detail,
            id,
        });
    }
    Json(out).into_response()
}

/// `visible.png`, `thermal.png` (the newest frame's image of that spectrum, thermal in the
/// iron palette, with its sequence in `X-Sequence`) or `snapshot.png` (both side by side,
/// boxes and landmarks drawn). Only names from the camera list resolve: nothing here
/// touches the file system, so no path can reach outside it.
pub async fn camera_image(
    State(state): State<AppState>,
    Path((id, file)): Path<(String, String)>,
) -> Response {
    let Some(latest) = state.hub.latest(&id) else {
        let known = state.status.camera_ids();
        return text(
            StatusCode::NOT_FOUND,
            if known.contains(&id) {
                format!("camera {id} has not published a frame yet\n")
            } else {
                format!("no camera {id:?}; cameras: {}\n", known.join(", "))
            },
        );
    };
    let view = match file.as_str() {
        "snapshot.png" => None,
        "visible.png" => Some(Spectrum::Visible),
        "thermal.png" => Some(Spectrum::Thermal),
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "use snapshot.png, visible.png or thermal.png\n".into(),
            );
        }
    };
    let sequence = latest.frame.sequence;
    // PNG encoding is CPU work: keep it off the async workers.
    let png = tokio::task::spawn_blocking(move || match view {
        None => crate::render::snapshot_png(&latest.frame),
        Some(spectrum) => crate::render::spectrum_png(&latest.frame, spectrum),
    })
    .await;
    match png {
        Ok(Some(bytes)) => (
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
                (
                    header::HeaderName::from_static("x-sequence"),
                    HeaderValue::from(sequence),
                ),
            ],
            Body::from(bytes),
        )
            .into_response(),
        Ok(None) => text(
            StatusCode::NOT_FOUND,
            format!("camera {id}'s latest frame has no such image\n"),
        ),
        Err(_) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "rendering failed\n".into(),
        ),
    }
}

#[derive(Deserialize)]
pub struct StreamQuery {
    camera: Option<String>,
}

/// Server-Sent Events, one `landmarks` event per record (id: CAMERA/SEQUENCE). A client
/// too slow to keep up gets a `lagged` event saying how many records it missed; the
/// pipeline never waits for it.
pub async fn landmark_stream(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
) -> Response {
    let Ok(permit) = state.event_streams.clone().try_acquire_owned() else {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open (http.max_event_streams)\n".into(),
        );
    };
    let mut shutdown = state.shutdown.clone();
    let ended = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let camera = query.camera;
    let events = BroadcastStream::new(state.hub.subscribe())
        .filter_map(move |item| {
            let camera = camera.clone();
            async move {
                match item {
                    Ok(p) if camera.as_deref().is_none_or(|c| c == &*p.camera) => Some(
                        Event::default()
                            .event("landmarks")
                            .id(format!("{}/{}", p.camera, p.sequence))
                            .data(&*p.line),
                    ),
                    Ok(_) => None,
                    Err(BroadcastStreamRecvError::Lagged(n)) => {
                        Some(Event::default().event("lagged").data(n.to_string()))
                    }
                }
            }
        })
        .map(move |event| {
            let _held = &permit;
            Ok::<_, Infallible>(event)
        })
        .take_until(ended);
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// Re-reads the config file, like SIGHUP; answers with what changed, or why the new
/// config was refused (the old one keeps running).
pub async fn reload(State(state): State<AppState>) -> Response {
    let Some(requests) = state.reload.clone() else {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "reload needs a config file (spectrald run --config FILE)\n".into(),
        );
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if requests.send(ReloadRequest { reply: Some(reply) }).is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n".into());
    }
    match tokio::time::timeout(Duration::from_secs(120), answer).await {
        Ok(Ok(Ok(summary))) => text(StatusCode::OK, format!("{summary}\n")),
        Ok(Ok(Err(why))) => text(StatusCode::UNPROCESSABLE_ENTITY, format!("{why}\n")),
        _ => text(
            StatusCode::GATEWAY_TIMEOUT,
            "the reload did not finish in 120 s; see the log\n".into(),
        ),
    }
}
