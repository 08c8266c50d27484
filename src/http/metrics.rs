//! `GET /metrics`: the named events, histograms and gauges in the Prometheus/OpenMetrics
//! text format (prometheus-client does the encoding). Counters live in `Events` as plain
//! numbers; a registry is built from a snapshot at each scrape, so the hot path never
//! touches Prometheus types except the histograms.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::telemetry::{EVENT_LABELS, Events, Labels, StreamState};

const STATES: [StreamState; 6] = [
    StreamState::Starting,
    StreamState::Streaming,
    StreamState::Stalled,
    StreamState::Reconnecting,
    StreamState::Failed,
    StreamState::Ended,
];

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub fn render(events: &Events) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("spectrald");
    let snapshot = events.snapshot();
    for (event, camera_name, label_name) in EVENT_LABELS {
        let samples: Vec<(Labels, u64)> = snapshot
            .iter()
            .filter(|((name, _, _), _)| name == event)
            .map(|((_, camera, label), value)| {
                let camera_label = if camera.is_empty() { "" } else { *camera_name };
                let pairs = [
                    (camera_label, camera.as_str()),
                    (*label_name, label.as_str()),
                ];
                (labels(&pairs), *value)
            })
            .collect();
        let help = format!("Count of {event} events");
        match samples.as_slice() {
            [] => {}
            // Without labels: a plain counter (no empty `{}` in the text).
            [(l, value)] if l.is_empty() => {
                let counter = Counter::<u64>::default();
                counter.inc_by(*value);
                registry.register(*event, help, counter);
            }
            _ => {
                let family = Family::<Labels, Counter>::default();
                for (l, value) in &samples {
                    family.get_or_create(l).inc_by(*value);
                }
                registry.register(*event, help, family);
            }
        }
    }
    registry.register(
        "stage_latency_ms",
        "Per-stage latency of published frames, milliseconds",
        events.latency_histograms(),
    );
    registry.register(
        "inference_batch_size",
        "Images per inference call",
        events.batch_histograms(),
    );
    registry.register(
        "faces_per_image",
        "Faces found per published image",
        events.faces_histograms(),
    );
    let depth = Family::<Labels, Gauge>::default();
    for (queue, n) in events.queue_depths() {
        depth
            .get_or_create(&labels(&[("queue", &queue)]))
            .set(n as i64);
    }
    registry.register(
        "queue_depth",
        "Frames waiting in each stage's input queue",
        depth,
    );
    let state = Family::<Labels, Gauge>::default();
    for ((camera, spectrum), status) in events.stream_states() {
        for s in STATES {
            state
                .get_or_create(&labels(&[
                    ("camera", &camera),
                    ("spectrum", &spectrum),
                    ("state", s.as_str()),
                ]))
                .set((status.state == s) as i64);
        }
    }
    registry.register(
        "stream_state",
        "1 for the state each camera stream is in now",
        state,
    );
    let models = Family::<Labels, Gauge>::default();
    for (role, id) in events.models() {
        models
            .get_or_create(&labels(&[
                ("role", role),
                ("name", &id.name),
                ("sha256", &id.sha256),
            ]))
            .set(1);
    }
    registry.register("model_info", "The model versions in use", models);
    if let Some(heap) = crate::telemetry::heap_stats() {
        let gauge = |bytes: u64| {
            let g = Gauge::<i64>::default();
            g.set(i64::try_from(bytes).unwrap_or(i64::MAX));
            g
        };
        registry.register(
            "heap_allocated_bytes",
            "Bytes the C allocator has handed out and not had back (a leak grows this)",
            gauge(heap.allocated),
        );
        registry.register(
            "heap_free_held_bytes",
            "Bytes freed but kept by the C allocator in its arenas (fragmentation grows this)",
            gauge(heap.free_held),
        );
    }
    let mut text = String::new();
    encode(&mut text, &registry)?;
    Ok(text)
}
