//! systemd integration: `READY=1` once models are loaded and sources started, `RELOADING=1`
//! around a reload, `STOPPING=1` at shutdown, `STATUS=` with the counters, and watchdog
//! pings that stop when a pipeline stage is wedged (see `pipeline::Heartbeat`).
//! Outside systemd (no `NOTIFY_SOCKET`) every call does nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::telemetry::Events;

fn send(states: &[NotifyState]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    // MONOTONIC_USEC lets newer systemd (Type=notify-reload) match the reload; older
    // versions ignore it.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn status_line(events: &Events) -> String {
    format!(
        "frames in {}, published {}, dropped {}",
        events.total("frame_received", None),
        events.total("pair_published", None),
        events.total("frame_dropped", None)
    )
}

/// Pings the watchdog at half its interval while no stage is stuck on one frame for
/// longer than `stuck`; logs the wedged stage once when it stops pinging.
pub struct Watchdog {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn start(events: Arc<Events>, stuck: Duration) -> Watchdog {
        let done = Arc::new(AtomicBool::new(false));
        let interval = sd_notify::watchdog_enabled().map(|d| d / 2);
        let thread = interval.and_then(|every| {
            let done = done.clone();
            std::thread::Builder::new()
                .name("watchdog".into())
                .spawn(move || {
                    let mut wedged_logged = false;
                    let mut next = Instant::now();
                    while !done.load(Ordering::Relaxed) {
                        if Instant::now() >= next {
                            next = Instant::now() + every;
                            match events.heartbeat().wedged(stuck) {
                                None => {
                                    wedged_logged = false;
                                    send(&[
                                        NotifyState::Watchdog,
                                        NotifyState::Status(&status_line(&events)),
                                    ]);
                                }
                                Some((stage, busy)) if !wedged_logged => {
                                    wedged_logged = true;
                                    tracing::error!(
                                        stage = stage.as_str(),
                                        busy_s = busy.as_secs_f64(),
                                        "stage stuck on one frame; withholding watchdog pings so systemd restarts the service"
                                    );
                                }
                                Some(_) => {}
                            }
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                })
                .ok()
        });
        if let Some(every) = interval {
            tracing::info!(
                ping_every_ms = every.as_millis() as u64,
                "systemd watchdog enabled"
            );
        }
        Watchdog { done, thread }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
