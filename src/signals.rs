//! Signals, handled the same way by every long-running command (`run`, `replay`,
//! `record`, `offline …`, `serve-offline`).
//!
//! The first SIGINT or SIGTERM asks for a graceful stop: sources stop, queues drain,
//! outputs flush, a batch command finishes the file it is on. A second one exits at once
//! (status 130), for when the graceful stop is not wanted. SIGXFSZ (a write past the file
//! size limit) is handled, so the write fails with EFBIG and the output holds its records
//! as on a full disk, instead of the kernel killing the process. SIGHUP is a reload
//! request, for the commands that can reload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGXFSZ};
use signal_hook::iterator::Signals;

/// Exit status after a second stop signal (128 + SIGINT, what shells report for Ctrl-C).
pub const EXIT_ON_SECOND_SIGNAL: i32 = 130;

#[derive(Debug, thiserror::Error)]
#[error("cannot install the signal handlers: {0}")]
pub struct SignalError(#[from] std::io::Error);

/// A stop request: set by the first SIGINT/SIGTERM (or by [`Shutdown::request`]).
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    flag: Arc<AtomicBool>,
    woken: Arc<(Mutex<bool>, Condvar)>,
}

impl Shutdown {
    /// Installs the handlers: stop on the first SIGINT/SIGTERM, exit on the second.
    pub fn on_signals() -> Result<Shutdown, SignalError> {
        let shutdown = Shutdown::default();
        // Registered with a flag nobody reads: the default action (terminate) is replaced.
        signal_hook::flag::register(SIGXFSZ, Arc::new(AtomicBool::new(false)))?;
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let on_signal = shutdown.clone();
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || {
                for _ in signals.forever() {
                    if on_signal.requested() {
                        std::process::exit(EXIT_ON_SECOND_SIGNAL);
                    }
                    on_signal.request();
                }
            })?;
        Ok(shutdown)
    }

    /// Asks for the stop (what a signal does); wakes [`Shutdown::wait`].
    pub fn request(&self) {
        self.flag.store(true, Ordering::Relaxed);
        let (lock, woken) = &*self.woken;
        *lock.lock().unwrap_or_else(|p| p.into_inner()) = true;
        woken.notify_all();
    }

    pub fn requested(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// The flag itself, for loops that check it between units of work.
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Blocks until a stop is requested.
    pub fn wait(&self) {
        let (lock, woken) = &*self.woken;
        let mut done = lock.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            done = woken.wait(done).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A flag that SIGHUP sets; the daemon's control loop swaps it back to false.
pub fn reload_requests() -> Result<Arc<AtomicBool>, SignalError> {
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(SIGHUP, reload.clone())?;
    Ok(reload)
}

#[cfg(test)]
mod tests {
    use super::Shutdown;
    use std::time::Duration;

    #[test]
    fn wait_returns_once_a_stop_is_requested() {
        let shutdown = Shutdown::default();
        let waiter = {
            let shutdown = shutdown.clone();
            std::thread::spawn(move || shutdown.wait())
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(!shutdown.requested());
        shutdown.request();
        waiter.join().expect("waiter ends");
        assert!(shutdown.requested());
        assert!(shutdown.flag().load(std::sync::atomic::Ordering::Relaxed));
    }
}
