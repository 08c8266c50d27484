//! MQTT sink (rumqttc): `PREFIX/CAMERA/landmarks` (the record JSON), `PREFIX/CAMERA/health`
//! (retained), `PREFIX/available` (retained `online`; the last will says `offline`).
//!
//! ```text
//! publish() ─► outage buffer (bounded, when_full) ─► forwarder ─► rumqttc ─► broker
//!                                                 connection thread: reconnect, backoff, health
//! ```
//! While the broker is away nothing leaves the buffer, so it fills; `block` then holds up
//! the pipeline (nothing lost), `drop_oldest`/`drop_newest` drop and count.
//!
//! rumqttc keeps unacknowledged messages across a reconnect only when the broker resumes
//! the session; on a fresh session it discards them. The connection thread therefore takes
//! them out after every connection error and puts them back, in order, after the next
//! CONNACK, so a broker restart loses nothing. Exactly-once (no duplicate after a restart)
//! additionally needs QoS 2 and a broker that keeps the session (persistence,
//! `clean_session = false`): then the broker recognises a resent message by its packet id.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rumqttc::{
    Client, Connection, ConnectionError, Event, Incoming, LastWill, MqttOptions, Outgoing, QoS,
    Request, TlsConfiguration, Transport,
};

use super::outage::{OutageBuffer, Pending, WhenFull};
use super::{MqttConfig, Qos};
use super::{Outgoing as Message, Sink, SinkError};
use crate::backoff::{Backoff, sleep_unless};
use crate::telemetry::{Events, StreamState};

/// Requests rumqttc queues between the forwarder and its event loop; the real buffer is
/// ours (it has the `when_full` policy and is counted).
const CLIENT_CHANNEL: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum MqttError {
    #[error(transparent)]
    Tls(#[from] super::mqtt_tls::TlsSetupError),
    #[error("cannot start the MQTT thread: {0}")]
    Thread(std::io::Error),
}

/// What the operator can do about a connection error, when the error says.
fn fix_for(message: &str) -> &'static str {
    if message.contains("certificate verify failed") {
        "; the broker's certificate is not signed by mqtt.tls.ca_file, has expired, or does not name mqtt.host"
    } else if message.contains("NotAuthorized") || message.contains("BadUserNamePassword") {
        // Before "refused": the broker refuses a connection with a bad password, too.
        "; check mqtt.username and the password (mqtt.password or SPECTRALD_MQTT_PASSWORD)"
    } else if message.contains("os error 111") {
        "; is the broker running on mqtt.host:mqtt.port?"
    } else {
        ""
    }
}

fn qos(q: Qos) -> QoS {
    match q {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

/// Counters shared by the sink, the forwarder and the connection thread.
#[derive(Default)]
struct Progress {
    connected: AtomicBool,
    /// Landmark messages handed to rumqttc, and those the broker confirmed.
    forwarded: AtomicU64,
    confirmed: AtomicU64,
}

pub struct MqttSink {
    name: String,
    prefix: String,
    control_qos: QoS,
    buffer: Arc<OutageBuffer>,
    progress: Arc<Progress>,
    when_full: WhenFull,
    shutdown_timeout: Duration,
    stop: Arc<AtomicBool>,
    events: Arc<Events>,
    client: Client,
    threads: Vec<JoinHandle<()>>,
    done: Arc<AtomicBool>,
}

fn options(config: &MqttConfig, host: &str) -> Result<MqttOptions, MqttError> {
    let mut options = MqttOptions::new(&config.client_id, host, config.port);
    options
        .set_keep_alive(Duration::from_secs(config.keep_alive_s.max(5)))
        .set_clean_session(config.clean_session)
        .set_inflight(config.max_inflight)
        .set_last_will(LastWill::new(
            format!("{}/available", config.topic_prefix),
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &config.username {
        options.set_credentials(user, config.effective_password().unwrap_or_default());
    }
    if let Some(tls) = &config.tls {
        let connector = super::mqtt_tls::connector(tls)?;
        options.set_transport(Transport::Tls(TlsConfiguration::NativeConnector(connector)));
    }
    Ok(options)
}

impl MqttSink {
    /// Starts the connection; returns at once (the broker may come later).
    pub fn start(
        config: &MqttConfig,
        events: Arc<Events>,
        stop: Arc<AtomicBool>,
    ) -> Result<Option<MqttSink>, MqttError> {
        let Some(host) = config.host.clone() else {
            return Ok(None);
        };
        let (client, connection) = Client::new(options(config, &host)?, CLIENT_CHANNEL);
        let buffer = Arc::new(OutageBuffer::new(config.buffer));
        let progress = Arc::new(Progress::default());
        let done = Arc::new(AtomicBool::new(false));
        let name = format!("mqtt:{host}:{}", config.port);
        let link = Link {
            config: config.clone(),
            client: client.clone(),
            events: events.clone(),
            progress: progress.clone(),
            done: done.clone(),
            name: name.clone(),
        };
        let connection_thread = std::thread::Builder::new()
            .name("mqtt-connection".into())
            .spawn(move || link.run(connection))
            .map_err(MqttError::Thread)?;
        let forwarder = {
            let (buffer, client, progress) = (buffer.clone(), client.clone(), progress.clone());
            let (topic_prefix, qos, retain) =
                (config.topic_prefix.clone(), qos(config.qos), config.retain);
            std::thread::Builder::new()
                .name("mqtt-forward".into())
                .spawn(move || forward(&buffer, &client, &progress, &topic_prefix, qos, retain))
                .map_err(MqttError::Thread)?
        };
        tracing::info!(broker = %name, "MQTT sink started");
        Ok(Some(MqttSink {
            name,
            prefix: config.topic_prefix.clone(),
            control_qos: control_qos(config.qos),
            buffer,
            progress,
            when_full: config.when_full,
            shutdown_timeout: Duration::from_millis(config.shutdown_timeout_ms),
            stop,
            events,
            client,
            threads: vec![connection_thread, forwarder],
            done,
        }))
    }

    fn outstanding(&self) -> u64 {
        self.progress
            .forwarded
            .load(Ordering::Relaxed)
            .saturating_sub(self.progress.confirmed.load(Ordering::Relaxed))
    }
}

/// Moves messages from the buffer into rumqttc, in order; blocks while rumqttc's channel
/// is full (the broker is away or slow).
fn forward(
    buffer: &OutageBuffer,
    client: &Client,
    progress: &Progress,
    prefix: &str,
    qos: QoS,
    retain: bool,
) {
    while let Some(message) = buffer.pop() {
        let topic = format!("{prefix}/{}/landmarks", message.camera);
        // Counted before the (possibly long) wait, so a flush never overlooks it.
        progress.forwarded.fetch_add(1, Ordering::Relaxed);
        if client.publish(topic, qos, retain, message.payload).is_err() {
            // The event loop is gone (shutdown): nothing more can be sent.
            return;
        }
    }
}

impl Sink for MqttSink {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn publish(&mut self, message: &Message<'_>) -> Result<(), SinkError> {
        let events = &self.events;
        self.buffer.push(
            Pending::of(message),
            self.when_full,
            &self.stop,
            self.shutdown_timeout,
            |p, reason| events.mqtt_dropped(&p.camera, reason),
        );
        Ok(())
    }

    /// Waits (up to shutdown_timeout) until the broker confirmed everything published.
    fn flush(&mut self) -> Result<(), SinkError> {
        self.buffer
            .wait_drained(|| self.outstanding(), self.shutdown_timeout);
        Ok(())
    }
}

impl Drop for MqttSink {
    fn drop(&mut self) {
        let _ = Sink::flush(self);
        let lost = self.buffer.drain();
        for message in &lost {
            self.events.mqtt_dropped(&message.camera, "shutdown");
        }
        let unconfirmed = self.outstanding();
        if !lost.is_empty() || unconfirmed > 0 {
            tracing::warn!(
                sink = %self.name,
                buffered = lost.len(),
                unconfirmed,
                "MQTT broker did not take everything before shutdown"
            );
        }
        self.buffer.close();
        // Say goodbye properly: final health, retained offline, then DISCONNECT (no last
        // will needed).
        publish_health(&self.client, &self.events, &self.prefix, self.control_qos);
        let _ = self.client.try_publish(
            format!("{}/available", self.prefix),
            QoS::AtLeastOnce,
            true,
            "offline",
        );
        std::thread::sleep(Duration::from_millis(50));
        let _ = self.client.try_disconnect();
        self.done.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        tracing::info!(sink = %self.name, "MQTT sink closed");
    }
}

/// Health and `online` go out at a QoS the landmarks do not use, so the broker's
/// acknowledgements can be attributed without looking at topics.
fn control_qos(landmarks: Qos) -> QoS {
    match landmarks {
        Qos::AtMostOnce => QoS::AtLeastOnce,
        _ => QoS::AtMostOnce,
    }
}

/// The order in which packet ids went out. rumqttc returns unacknowledged messages in
/// packet-id order, which is not sending order once ids wrap around (at max_inflight), and
/// QoS 2 releases are listed after all publishes: resending in that order reorders
/// messages. Sorting by when each id was last sent restores the original order.
#[derive(Default)]
struct SendOrder {
    next: u64,
    by_pkid: std::collections::HashMap<u16, u64>,
}

impl SendOrder {
    fn record(&mut self, pkid: u16) {
        if pkid != 0 {
            self.by_pkid.insert(pkid, self.next);
            self.next += 1;
        }
    }

    /// Stable: requests never sent (still pkid 0) keep their order, after the sent ones.
    fn sort(&self, held: &mut VecDeque<Request>) {
        let key = |r: &Request| {
            let pkid = match r {
                Request::Publish(p) => p.pkid,
                Request::PubRel(r) => r.pkid,
                _ => 0,
            };
            self.by_pkid
                .get(&pkid)
                .copied()
                .filter(|_| pkid != 0)
                .unwrap_or(u64::MAX)
        };
        held.make_contiguous().sort_by_key(key);
    }
}

/// The connection thread's state.
struct Link {
    config: MqttConfig,
    client: Client,
    events: Arc<Events>,
    progress: Arc<Progress>,
    done: Arc<AtomicBool>,
    name: String,
}

impl Link {
    fn control_qos(&self) -> QoS {
        control_qos(self.config.qos)
    }

    fn run(self, mut connection: Connection) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.config.initial_backoff_ms),
            Duration::from_millis(self.config.max_backoff_ms),
        );
        let mut held: VecDeque<Request> = VecDeque::new();
        // Packet id → when it was last sent, to put held messages back in sending order.
        let mut sent: SendOrder = SendOrder::default();
        let mut last_error = String::new();
        let mut last_health = Instant::now();
        let mut last_states: Vec<StreamState> = Vec::new();
        let health_every = Duration::from_secs(self.config.health_interval_s.max(1));
        while !self.done.load(Ordering::Relaxed) {
            let event = connection.recv_timeout(Duration::from_millis(200)).ok();
            match event {
                None => {}
                Some(Ok(Event::Incoming(Incoming::ConnAck(ack)))) => {
                    self.on_connected(&mut connection, &mut held, ack.session_present);
                    backoff.reset();
                    last_error.clear();
                    self.publish_health();
                    last_health = Instant::now();
                }
                Some(Ok(event)) => {
                    if let Event::Outgoing(Outgoing::Publish(pkid)) = event {
                        sent.record(pkid);
                    }
                    self.count_confirmation(&event);
                }
                Some(Err(e)) => {
                    self.on_error(&mut connection, &mut held, &e, &mut last_error);
                    sent.sort(&mut held);
                    if self.done.load(Ordering::Relaxed) {
                        break;
                    }
                    sleep_unless(&self.done, backoff.next_delay());
                }
            }
            if self.progress.connected.load(Ordering::Relaxed) {
                let states: Vec<StreamState> = self
                    .events
                    .stream_states()
                    .values()
                    .map(|s| s.state)
                    .collect();
                if last_health.elapsed() >= health_every || states != last_states {
                    self.publish_health();
                    last_health = Instant::now();
                    last_states = states;
                }
            }
        }
    }

    fn count_confirmation(&self, event: &Event) {
        let confirmed = matches!(
            (self.config.qos, event),
            (Qos::AtMostOnce, Event::Outgoing(Outgoing::Publish(0)))
                | (Qos::AtLeastOnce, Event::Incoming(Incoming::PubAck(_)))
                | (Qos::ExactlyOnce, Event::Incoming(Incoming::PubComp(_)))
        );
        if confirmed {
            self.progress.confirmed.fetch_add(1, Ordering::Relaxed);
            self.events.mqtt_delivered("");
        }
    }

    fn on_connected(
        &self,
        connection: &mut Connection,
        held: &mut VecDeque<Request>,
        resumed: bool,
    ) {
        self.progress.connected.store(true, Ordering::Relaxed);
        self.events.mqtt_connection("connected");
        let mut lost = 0;
        let mut requeue: Vec<Request> = Vec::new();
        for request in held.drain(..) {
            match request {
                Request::Publish(mut p) if !resumed => {
                    // A new session knows none of our packet ids: send as new messages.
                    p.pkid = 0;
                    p.dup = false;
                    requeue.push(Request::Publish(p));
                }
                Request::PubRel(_) if !resumed => {
                    // The broker forgot the message it had acknowledged receiving (it
                    // restarted without persistence); it cannot be sent again from here.
                    lost += 1;
                }
                other => requeue.push(other),
            }
        }
        if lost > 0 {
            self.progress.confirmed.fetch_add(lost, Ordering::Relaxed);
            for _ in 0..lost {
                self.events.mqtt_dropped("", "broker_lost_session");
            }
            tracing::warn!(broker = %self.name, lost, "the broker restarted without the session; QoS 2 messages it had half-received are lost (enable broker persistence and clean_session = false)");
        }
        let resent = requeue.len();
        for request in requeue.into_iter().rev() {
            connection.eventloop.pending.push_front(request);
        }
        tracing::info!(broker = %self.name, resumed_session = resumed, resent, "MQTT connected");
        let _ = self.client.try_publish(
            format!("{}/available", self.config.topic_prefix),
            self.control_qos(),
            true,
            "online",
        );
    }

    fn on_error(
        &self,
        connection: &mut Connection,
        held: &mut VecDeque<Request>,
        error: &ConnectionError,
        last_error: &mut String,
    ) {
        // Everything rumqttc would resend only to a resumed session: keep it ourselves.
        held.extend(
            connection
                .eventloop
                .pending
                .drain(..)
                .filter(|r| matches!(r, Request::Publish(_) | Request::PubRel(_))),
        );
        if self.progress.connected.swap(false, Ordering::Relaxed) {
            self.events.mqtt_connection("lost");
        } else {
            self.events.mqtt_connection("failed");
        }
        let message = error.to_string();
        if *last_error != message {
            let hint = fix_for(&message);
            tracing::warn!(broker = %self.name, held = held.len(), "MQTT broker unreachable: {message}{hint}; retrying with backoff");
            *last_error = message;
        }
    }

    fn publish_health(&self) {
        publish_health(
            &self.client,
            &self.events,
            &self.config.topic_prefix,
            self.control_qos(),
        );
    }
}

/// Retained per-camera health: stream states and counters.
fn publish_health(client: &Client, events: &Events, prefix: &str, qos: QoS) {
    for (camera, health) in crate::telemetry::camera_health(events) {
        let _ = client.try_publish(
            format!("{prefix}/{camera}/health"),
            qos,
            true,
            health.to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::{PubRel, Publish};

    fn publish(pkid: u16, payload: &str) -> Request {
        let mut p = Publish::new("t", QoS::ExactlyOnce, payload.as_bytes().to_vec());
        p.pkid = pkid;
        Request::Publish(p)
    }

    fn label(r: &Request) -> String {
        match r {
            Request::Publish(p) => String::from_utf8_lossy(&p.payload).into_owned(),
            Request::PubRel(r) => format!("rel{}", r.pkid),
            _ => "?".into(),
        }
    }

    #[test]
    fn held_messages_go_back_in_sending_order_across_packet_id_wraparound() {
        let mut order = SendOrder::default();
        // Ids wrap at max_inflight: message 20 went out as pkid 10, 21 as 1, 22 as 2.
        for pkid in [9, 10, 1, 2] {
            order.record(pkid);
        }
        // What rumqttc hands back: publishes by packet id, then the releases.
        let mut held: VecDeque<Request> = VecDeque::from(vec![
            publish(1, "m21"),
            publish(2, "m22"),
            publish(10, "m20"),
            Request::PubRel(PubRel { pkid: 9 }),
            publish(0, "m23-never-sent"),
            publish(0, "m24-never-sent"),
        ]);
        order.sort(&mut held);
        let labels: Vec<String> = held.iter().map(label).collect();
        assert_eq!(
            labels,
            [
                "rel9",
                "m20",
                "m21",
                "m22",
                "m23-never-sent",
                "m24-never-sent"
            ]
        );
    }
}
