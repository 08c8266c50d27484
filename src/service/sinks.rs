//! Which sinks a config asks for, each under a key made of its settings: a reload keeps
//! the sinks whose key is unchanged and builds only the new ones.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::config::Config;
use crate::nats::{NatsError, NatsSink};
use crate::pipeline::KeyedSink;
use crate::publish::SinkError;
use crate::publish::hub::{Hub, HubSink};
use crate::publish::jsonl::JsonlSink;
use crate::publish::mqtt::{MqttError, MqttSink};
use crate::telemetry::Events;

#[derive(Debug, thiserror::Error)]
pub enum SinkBuildError {
    #[error(transparent)]
    Jsonl(#[from] SinkError),
    #[error(transparent)]
    Mqtt(#[from] MqttError),
    #[error(transparent)]
    Nats(#[from] NatsError),
}

/// The keys of the sinks running now.
#[derive(Debug, Default, Clone)]
pub struct Running {
    pub keys: Vec<String>,
}

pub struct Built {
    /// Newly built sinks, to hand to the pipeline.
    pub added: Vec<KeyedSink>,
    /// Keys of running sinks the new config keeps.
    pub keep: Vec<String>,
    /// Every key after the change.
    pub running: Running,
}

enum Wanted {
    Hub,
    Jsonl(String),
    Mqtt,
    Nats,
}

fn wanted(config: &Config) -> Vec<(String, Wanted)> {
    let mut out = Vec::new();
    if config.http.listen.is_some() {
        out.push(("http".to_owned(), Wanted::Hub));
    }
    out.push((
        format!("jsonl:{}", config.output.jsonl),
        Wanted::Jsonl(config.output.jsonl.clone()),
    ));
    if config.mqtt.host.is_some() {
        // The whole section is the key: any changed setting means a new connection.
        let key = serde_json::to_string(&config.mqtt).unwrap_or_default();
        out.push((format!("mqtt:{key}"), Wanted::Mqtt));
    }
    if config.nats.url.is_some() {
        let key = serde_json::to_string(&config.nats).unwrap_or_default();
        out.push((format!("nats:{key}"), Wanted::Nats));
    }
    out
}

pub fn build(
    config: &Config,
    hub: &Arc<Hub>,
    events: &Arc<Events>,
    stop: &Arc<AtomicBool>,
    running: &Running,
) -> Result<Built, SinkBuildError> {
    let mut added: Vec<KeyedSink> = Vec::new();
    let mut keep = Vec::new();
    let mut keys = Vec::new();
    for (key, what) in wanted(config) {
        keys.push(key.clone());
        if running.keys.contains(&key) {
            keep.push(key);
            continue;
        }
        match what {
            Wanted::Hub => added.push((key, Box::new(HubSink(hub.clone())))),
            Wanted::Jsonl(target) => added.push((
                key,
                Box::new(JsonlSink::open(
                    &target,
                    events.clone(),
                    stop.clone(),
                    Duration::from_millis(config.output.shutdown_timeout_ms),
                )?),
            )),
            Wanted::Mqtt => {
                if let Some(sink) = MqttSink::start(&config.mqtt, events.clone(), stop.clone())? {
                    added.push((key, Box::new(sink)));
                }
            }
            Wanted::Nats => {
                if let Some(sink) = NatsSink::start(&config.nats, events.clone(), stop.clone())? {
                    added.push((key, Box::new(sink)));
                }
            }
        }
    }
    Ok(Built {
        added,
        keep,
        running: Running { keys },
    })
}
