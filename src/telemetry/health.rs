//! Each camera's health as one JSON object: its streams' states and its counters. The MQTT
//! sink publishes it (retained, per camera), the NATS sink puts it in the health bucket.

use std::collections::BTreeMap;

use super::Events;

/// camera → {camera, streams: {spectrum: {state, reason}}, received, published, dropped}.
pub fn camera_health(events: &Events) -> BTreeMap<String, serde_json::Value> {
    let states = events.stream_states();
    let snapshot = events.snapshot();
    let mut cameras: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for (name, camera, _) in snapshot.keys() {
        if *name == "frame_received" && !camera.is_empty() {
            cameras.entry(camera.clone()).or_default();
        }
    }
    for (camera, _) in states.keys() {
        cameras.entry(camera.clone()).or_default();
    }
    for (camera, health) in cameras.iter_mut() {
        let streams: BTreeMap<&str, serde_json::Value> = states
            .iter()
            .filter(|((c, _), _)| c == camera)
            .map(|((_, spectrum), s)| {
                (
                    spectrum.as_str(),
                    serde_json::json!({"state": s.state.as_str(), "reason": s.reason}),
                )
            })
            .collect();
        *health = serde_json::json!({
            "camera": camera,
            "streams": streams,
            "received": events.camera_total("frame_received", camera),
            "published": events.camera_total("pair_published", camera),
            "dropped": events.drops_by_reason(camera),
        });
    }
    cameras
}
