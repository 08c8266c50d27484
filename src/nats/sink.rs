//! The `nats` sink: each record published with JetStream to `PREFIX.CAMERA.landmarks`,
//! acknowledged by the stream, with a `Nats-Msg-Id` of rig, camera, boot id and sequence.
//!
//! ```text
//! publish() ─► outage buffer (bounded, when_full) ─► forwarder thread ─► JetStream ─► ack
//!                                     resend from the first unacknowledged, after backoff
//! ```
//! At-least-once on the wire, exactly once in the stream: a resend carries the same id, and
//! the server drops it within the stream's duplicate window. With `max_inflight = 1` (the
//! default) each record is acknowledged before the next leaves, so the stream holds them
//! in order even across failures; a wider window is faster, and a failure inside it can
//! store a later record before an earlier one's resend (never twice).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, message::PublishMessage};
use tokio::runtime::Runtime;

use super::config::NatsConfig;
use super::connect::{Credentials, connect};
use super::stream::{StreamWanted, ensure_stream};
use super::{NatsError, health};
use crate::backoff::{Backoff, sleep_unless};
use crate::publish::outage::{OutageBuffer, Pending, WhenFull};
use crate::publish::{Outgoing, Sink, SinkError};
use crate::telemetry::Events;

/// How long `start` waits for the server before letting the sink start without it.
const FIRST_CONTACT: Duration = Duration::from_secs(3);
/// How long a stopping sink tries to mark its rig offline in the health bucket.
const GOODBYE: Duration = Duration::from_secs(2);

pub struct NatsSink {
    name: String,
    buffer: Arc<OutageBuffer>,
    when_full: WhenFull,
    stop: Arc<AtomicBool>,
    shutdown_timeout: Duration,
    events: Arc<Events>,
    /// Records taken from the buffer and not yet acknowledged (or given up).
    unconfirmed: Arc<AtomicU64>,
    /// Set at drop: the forwarder gives up on what is left after the shutdown timeout.
    closing: Arc<AtomicBool>,
    runtime: Arc<Runtime>,
    forwarder: Option<JoinHandle<()>>,
    health_stop: tokio::sync::watch::Sender<bool>,
    health: Option<HealthSettings>,
}

struct HealthSettings {
    context: jetstream::Context,
    bucket: String,
    ttl: Duration,
    replicas: usize,
    rig: String,
    boot: String,
}

/// Whether the client is connected within `limit`.
async fn connected_within(client: &async_nats::Client, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if client.connection_state() == async_nats::connection::State::Connected {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A random id for this run of the daemon: sequences restart at 0 after a restart, and
/// must not be taken for resends of the previous run's records.
fn boot_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

impl NatsSink {
    /// Connects (without waiting for an unreachable server) and checks the stream when the
    /// server answers within a few seconds: a stream that exists with settings that do not
    /// fit is an error here, naming the setting. Returns `None` without `nats.url`.
    pub fn start(
        config: &NatsConfig,
        events: Arc<Events>,
        stop: Arc<AtomicBool>,
    ) -> Result<Option<NatsSink>, NatsError> {
        let Some(url) = config.url.clone() else {
            return Ok(None);
        };
        let runtime = Arc::new(super::runtime("nats")?);
        let rig = config.rig_name();
        let boot = boot_id();
        let client = runtime.block_on(connect(
            &url,
            &Credentials::of(config),
            &format!("spectrald {rig}"),
            Some(events.clone()),
            false,
        ))?;
        // The JetStream context spawns on the current runtime.
        let _inside = runtime.enter();
        let reachable = runtime.block_on(connected_within(&client, FIRST_CONTACT));
        let mut context = jetstream::new(client.clone());
        context.set_timeout(Duration::from_millis(config.ack_timeout_ms));
        let wanted = StreamWanted {
            name: config.stream.clone(),
            subjects: vec![format!("{}.>", config.subject_prefix)],
            replicas: config.replicas,
            retention: config.retention,
            max_age: Duration::from_secs(config.max_age_s),
            duplicate_window: Duration::from_secs(config.duplicate_window_s),
        };
        let stream_ready = if reachable {
            match runtime.block_on(ensure_stream(&context, &wanted)) {
                Ok(()) => true,
                Err(e @ NatsError::Incompatible { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!("{e}; records wait in the buffer and the check is retried");
                    false
                }
            }
        } else {
            tracing::warn!(
                server = %super::config::shown_url(&url),
                "NATS server not reachable yet; records wait in the buffer (nats.when_full) and go out once it is"
            );
            // The client's own retries only say "IO error": one plain attempt tells why.
            let (probe_url, credentials) = (url.clone(), Credentials::of(config));
            runtime.spawn(async move {
                if let Err(e) =
                    connect(&probe_url, &credentials, "spectrald probe", None, true).await
                {
                    tracing::error!("{e}; retrying in the background");
                }
            });
            false
        };
        let name = format!("nats:{}", super::config::shown_url(&url));
        let buffer = Arc::new(OutageBuffer::new(config.buffer));
        let unconfirmed = Arc::new(AtomicU64::new(0));
        let closing = Arc::new(AtomicBool::new(false));
        let forwarder = Forwarder {
            client,
            buffer: buffer.clone(),
            context: context.clone(),
            runtime: runtime.clone(),
            wanted,
            stream_ready,
            prefix: config.subject_prefix.clone(),
            id_prefix: format!("{rig}.{boot}"),
            window: config.max_inflight.max(1),
            backoff: Backoff::new(
                Duration::from_millis(config.initial_backoff_ms),
                Duration::from_millis(config.max_backoff_ms),
            ),
            events: events.clone(),
            unconfirmed: unconfirmed.clone(),
            closing: closing.clone(),
            last_error: String::new(),
        };
        let forwarder = std::thread::Builder::new()
            .name("nats-forward".into())
            .spawn(move || forwarder.run())
            .map_err(NatsError::Thread)?;
        let (health_stop, stop_rx) = tokio::sync::watch::channel(false);
        let health = (!config.health_bucket.is_empty()).then(|| HealthSettings {
            context: context.clone(),
            bucket: config.health_bucket.clone(),
            ttl: Duration::from_secs(config.health_ttl_s),
            replicas: config.replicas,
            rig: rig.clone(),
            boot: boot.clone(),
        });
        if let Some(h) = &health {
            runtime.spawn(health::report(
                h.context.clone(),
                (h.bucket.clone(), h.ttl, h.replicas),
                h.rig.clone(),
                h.boot.clone(),
                Duration::from_secs(config.health_interval_s),
                events.clone(),
                stop_rx,
            ));
        }
        tracing::info!(sink = %name, rig = %rig, stream = %config.stream, "NATS sink started");
        Ok(Some(NatsSink {
            name,
            buffer,
            when_full: config.when_full,
            stop,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
            events,
            unconfirmed,
            closing,
            runtime,
            forwarder: Some(forwarder),
            health_stop,
            health,
        }))
    }
}

impl Sink for NatsSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn publish(&mut self, message: &Outgoing<'_>) -> Result<(), SinkError> {
        let events = &self.events;
        self.buffer.push(
            Pending::of(message),
            self.when_full,
            &self.stop,
            self.shutdown_timeout,
            |p, reason| events.nats_dropped(&p.camera, reason),
        );
        Ok(())
    }

    /// Waits (up to the shutdown timeout) until the stream acknowledged everything.
    fn flush(&mut self) -> Result<(), SinkError> {
        let unconfirmed = &self.unconfirmed;
        self.buffer.wait_drained(
            || unconfirmed.load(Ordering::Relaxed),
            self.shutdown_timeout,
        );
        Ok(())
    }
}

impl Drop for NatsSink {
    fn drop(&mut self) {
        let _ = Sink::flush(self);
        self.closing.store(true, Ordering::Relaxed);
        self.buffer.close();
        if let Some(thread) = self.forwarder.take() {
            let _ = thread.join();
        }
        let _ = self.health_stop.send(true);
        if let Some(h) = &self.health
            && h.context.client().connection_state() == async_nats::connection::State::Connected
        {
            // Say goodbye: the fleet view shows a clean stop, not an expiry.
            let state = health::rig_state(&h.rig, &h.boot, "offline", &self.events);
            let said = self.runtime.block_on(async {
                tokio::time::timeout(GOODBYE, async {
                    let store = health::bucket(&h.context, &h.bucket, h.ttl, h.replicas).await?;
                    health::put(&store, &h.rig, &state).await
                })
                .await
                .map_err(|_| "timed out".to_owned())?
            });
            if let Err(e) = said {
                tracing::warn!("NATS health bucket: could not say offline: {e}");
            }
        }
    }
}

/// Moves records from the buffer into the stream, in order, until every one is
/// acknowledged or given up.
struct Forwarder {
    client: async_nats::Client,
    buffer: Arc<OutageBuffer>,
    context: jetstream::Context,
    runtime: Arc<Runtime>,
    wanted: StreamWanted,
    stream_ready: bool,
    prefix: String,
    /// `rig.boot`; a record's id adds `.camera.sequence`.
    id_prefix: String,
    window: usize,
    backoff: Backoff,
    events: Arc<Events>,
    unconfirmed: Arc<AtomicU64>,
    closing: Arc<AtomicBool>,
    last_error: String,
}

impl Forwarder {
    fn run(mut self) {
        while let Some(first) = self.buffer.pop() {
            let mut batch = vec![first];
            batch.extend(self.buffer.take_ready(self.window - 1));
            self.unconfirmed
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            self.deliver(batch);
        }
    }

    /// Sends `batch` until the stream has acknowledged all of it, or gives it up (the
    /// stream refuses our settings, or shutdown outlasted the timeout) and counts it.
    fn deliver(&mut self, mut batch: Vec<Pending>) {
        while !batch.is_empty() {
            // `closing` is set once the sink's flush has waited its shutdown timeout: what
            // is still here will not get through in time.
            if self.closing.load(Ordering::Relaxed) {
                self.give_up(&mut batch, "shutdown");
                return;
            }
            let result = if self.stream_ready {
                self.runtime.block_on(self.send(&batch))
            } else {
                match self
                    .runtime
                    .block_on(ensure_stream(&self.context, &self.wanted))
                {
                    Ok(()) => {
                        self.stream_ready = true;
                        tracing::info!(stream = %self.wanted.name, "NATS stream ready");
                        continue;
                    }
                    Err(e @ NatsError::Incompatible { .. }) => {
                        // Not ours to change: say so, and drop (counted) rather than hold the
                        // pipeline forever; the check is retried with the next records.
                        self.report(&e.to_string(), tracing::Level::ERROR);
                        self.give_up(&mut batch, "stream_refused");
                        self.pause();
                        return;
                    }
                    Err(e) => {
                        self.report(&format!("{e}; retrying"), tracing::Level::WARN);
                        self.pause();
                        continue;
                    }
                }
            };
            match result {
                Ok(()) => {
                    self.confirmed(&mut batch, usize::MAX);
                    self.backoff.reset();
                    self.last_error.clear();
                }
                Err((acked, message)) => {
                    self.confirmed(&mut batch, acked);
                    let why = if self.client.connection_state()
                        == async_nats::connection::State::Connected
                    {
                        format!(
                            "NATS publish to stream {} failed: {message}; resending",
                            self.wanted.name
                        )
                    } else {
                        "NATS server unreachable; records wait in the buffer and are resent".into()
                    };
                    self.report(&why, tracing::Level::WARN);
                    self.pause();
                }
            }
        }
    }

    /// Publishes the batch in order, then awaits the acks in order: `Err((n, why))` when
    /// only the first `n` were acknowledged.
    async fn send(&self, batch: &[Pending]) -> Result<(), (usize, String)> {
        let mut acks = Vec::with_capacity(batch.len());
        let mut failure = None;
        for p in batch {
            let subject = format!("{}.{}.landmarks", self.prefix, p.camera);
            let id = format!("{}.{}.{}", self.id_prefix, p.camera, p.sequence);
            let message = PublishMessage::build()
                .payload(bytes::Bytes::from(p.payload.clone()))
                .message_id(id);
            match self.context.send_publish(subject, message).await {
                Ok(ack) => {
                    self.events.nats_published();
                    acks.push(ack);
                }
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        // Everything sent before a failed send is acknowledged (or not) here, in order.
        let sent = acks.len();
        for (i, ack) in acks.into_iter().enumerate() {
            if let Err(e) = ack.await {
                return Err((i, e.to_string()));
            }
            self.events.nats_acked();
        }
        match failure {
            Some(e) => Err((sent, e)),
            None => Ok(()),
        }
    }

    /// Removes the first `n` (all, for `usize::MAX`) records: acknowledged.
    fn confirmed(&self, batch: &mut Vec<Pending>, n: usize) {
        let n = n.min(batch.len());
        batch.drain(..n);
        self.unconfirmed.fetch_sub(n as u64, Ordering::Relaxed);
    }

    fn give_up(&self, batch: &mut Vec<Pending>, reason: &'static str) {
        for p in batch.drain(..) {
            self.events.nats_dropped(&p.camera, reason);
            self.unconfirmed.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Logs `message` once until a different one comes (a long outage is one line).
    fn report(&mut self, message: &str, level: tracing::Level) {
        if self.last_error != message {
            if level == tracing::Level::ERROR {
                tracing::error!("{message}");
            } else {
                tracing::warn!("{message}");
            }
            self.last_error = message.to_owned();
        }
    }

    fn pause(&mut self) {
        let delay = self.backoff.next_delay();
        // Shutdown shortens the wait, so the timeout above is checked in time.
        sleep_unless(&self.closing, delay);
    }
}
