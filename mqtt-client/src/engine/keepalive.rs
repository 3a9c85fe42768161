//! Keep-alive: PINGREQ when nothing was sent for Keep Alive, the PINGRESP
//! deadline, and its suspension while the driver does not read.

use std::time::{Duration, Instant};

use mqtt_codec::packet::Packet;

use super::{Engine, State, Timer};
use crate::error::ConnectionError;

impl<T> Engine<T> {
    // ----- timers --------------------------------------------------------------

    /// Handles every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let fired: Vec<Timer> = self.timers.expired(now).collect();
        for timer in fired {
            match timer {
                Timer::ConnectTimeout => {
                    self.end_connection(now, ConnectionError::ConnectTimeout, None);
                }
                Timer::PingResponse => {
                    self.end_connection(now, ConnectionError::KeepAliveTimeout, None);
                }
                Timer::KeepAlive => self.keep_alive_due(now),
                Timer::Reconnect => {}
            }
        }
    }

    fn keep_alive_due(&mut self, now: Instant) {
        if self.state != State::Connected {
            return;
        }
        let interval = Duration::from_secs(u64::from(self.keep_alive()));
        let due = self.last_tx.map_or(now, |t| t + interval);
        if due > now {
            self.timers.set(Timer::KeepAlive, due);
            return;
        }
        if !self.ping_outstanding {
            self.ping_outstanding = true;
            if self.reading_paused {
                self.ping_left = Some(self.opts.ping_timeout);
            } else {
                self.timers
                    .set(Timer::PingResponse, now + self.opts.ping_timeout);
            }
        }
        self.write(now, &Packet::PingReq);
    }

    /// The driver stopped (or resumed) reading the transport because the
    /// application is not taking messages. While paused, the PINGRESP deadline is
    /// suspended; on resume it starts again from `now`.
    pub fn set_reading_paused(&mut self, now: Instant, paused: bool) {
        if self.reading_paused == paused {
            return;
        }
        self.reading_paused = paused;
        if paused {
            // The time the PINGRESP had left is kept, not restarted: a server that
            // never answers is still found, after `ping_timeout` of reading time.
            self.ping_left = self
                .timers
                .get(Timer::PingResponse)
                .map(|at| at.saturating_duration_since(now));
            self.timers.stop(Timer::PingResponse);
        } else if let Some(left) = self.ping_left.take() {
            if self.ping_outstanding && self.state == State::Connected {
                self.timers.set(Timer::PingResponse, now + left);
            }
        }
    }
}
