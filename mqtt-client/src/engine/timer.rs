//! The engine's timers: a closed enum and a table of deadlines.

use std::time::Instant;

/// Every timer the engine can arm. The driver never sees them one by one: it
/// sleeps until [`super::Engine::poll_timeout`], the earliest deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// CONNACK must arrive before this.
    ConnectTimeout,
    /// Nothing was sent for Keep Alive: send PINGREQ.
    KeepAlive,
    /// PINGRESP must arrive before this.
    PingResponse,
    /// The next connection attempt may start.
    Reconnect,
}

impl Timer {
    const ALL: [Timer; 4] = [
        Timer::ConnectTimeout,
        Timer::KeepAlive,
        Timer::PingResponse,
        Timer::Reconnect,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// One optional deadline per timer.
#[derive(Debug, Default, Clone)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; 4],
}

impl Timers {
    pub(crate) fn set(&mut self, timer: Timer, at: Instant) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = Some(at);
        }
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        if let Some(slot) = self.deadlines.get_mut(timer.index()) {
            *slot = None;
        }
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines.get(timer.index()).copied().flatten()
    }

    pub(crate) fn stop_all(&mut self) {
        self.deadlines = [None; 4];
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Removes and returns the timers whose deadline is at or before `now`, in
    /// the order of [`Timer`]'s declaration.
    pub(crate) fn expired(&mut self, now: Instant) -> impl Iterator<Item = Timer> {
        let mut fired = [None; 4];
        for (t, slot) in Timer::ALL.iter().zip(fired.iter_mut()) {
            if self.get(*t).is_some_and(|d| d <= now) {
                self.stop(*t);
                *slot = Some(*t);
            }
        }
        fired.into_iter().flatten()
    }
}
