//! Each rig's last state in a JetStream key-value bucket (key = rig name): "online" with its
//! cameras' stream states and counters every `health_interval_s`, "offline" at a clean stop.
//! Entries expire `health_ttl_s` after their last update, so a rig that died without a word
//! drops out; a fleet view is `nats kv watch spectrald_health`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, kv};

use crate::telemetry::{Events, camera_health};

/// The bucket (created when missing, with the TTL as its max age).
pub async fn bucket(
    context: &jetstream::Context,
    name: &str,
    ttl: Duration,
    replicas: usize,
) -> Result<kv::Store, String> {
    match context.get_key_value(name).await {
        Ok(store) => Ok(store),
        Err(_) => context
            .create_key_value(kv::Config {
                bucket: name.to_owned(),
                description: "spectrald rigs: last state of each (key = rig)".into(),
                history: 1,
                max_age: ttl,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("health bucket {name}: {e}")),
    }
}

/// The rig's state as stored: `{rig, boot, state, at_ms, cameras}`.
pub fn rig_state(rig: &str, boot: &str, state: &str, events: &Events) -> serde_json::Value {
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    serde_json::json!({
        "rig": rig,
        "boot": boot,
        "state": state,
        "at_ms": at_ms,
        "cameras": camera_health(events),
    })
}

/// Puts the rig's state; a failure is logged once per kind and retried at the next tick.
pub async fn put(store: &kv::Store, rig: &str, value: &serde_json::Value) -> Result<(), String> {
    store
        .put(rig, value.to_string().into())
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Reports "online" every `interval` until `stop` turns true.
pub async fn report(
    context: jetstream::Context,
    settings: (String, Duration, usize),
    rig: String,
    boot: String,
    interval: Duration,
    events: Arc<Events>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let (name, ttl, replicas) = settings;
    let mut store = None;
    let mut last_error = String::new();
    loop {
        if store.is_none() {
            match bucket(&context, &name, ttl, replicas).await {
                Ok(s) => store = Some(s),
                Err(e) if e != last_error => {
                    tracing::warn!("NATS {e}; retrying");
                    last_error = e;
                }
                Err(_) => {}
            }
        }
        if let Some(s) = &store {
            let value = rig_state(&rig, &boot, "online", &events);
            match put(s, &rig, &value).await {
                Ok(()) => last_error.clear(),
                Err(e) if e != last_error => {
                    tracing::warn!("NATS health bucket {name}: {e}; retrying");
                    last_error = e;
                }
                Err(_) => {}
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
