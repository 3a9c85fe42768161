//! Latency percentiles (an HDR histogram), latency samples over time for the
//! plot, and a tracker of sequence numbers for lost and duplicate counts.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Samples kept for the plot at most: past it, every other one is dropped and
/// one in twice as many is kept from then on.
const MAX_SAMPLES: usize = 100_000;

/// Latencies in microseconds, from 1 µs to 1 hour at 3 significant digits.
#[derive(Debug)]
pub(crate) struct Latency {
    hist: Histogram<u64>,
    samples: Vec<(f32, f32)>,
    stride: u64,
    seen: u64,
}

/// The percentiles of a run, in microseconds.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub(crate) struct Percentiles {
    pub(crate) count: u64,
    pub(crate) mean: f64,
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) p999: u64,
    pub(crate) max: u64,
}

impl Latency {
    pub(crate) fn new() -> Result<Self, crate::exit::Failure> {
        let hist = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| crate::exit::Failure::failed(format!("histogram: {e}")))?;
        Ok(Self {
            hist,
            samples: Vec::new(),
            stride: 1,
            seen: 0,
        })
    }

    /// One latency of `us` microseconds, measured `at` into the run.
    pub(crate) fn record(&mut self, at: Duration, us: u64) {
        self.hist.saturating_record(us.max(1));
        if self.seen % self.stride == 0 {
            if self.samples.len() >= MAX_SAMPLES {
                let kept: Vec<_> = self.samples.iter().copied().step_by(2).collect();
                self.samples = kept;
                self.stride *= 2;
            }
            self.samples.push((at.as_secs_f32(), us as f32 / 1000.0));
        }
        self.seen += 1;
    }

    pub(crate) fn percentiles(&self) -> Percentiles {
        let h = &self.hist;
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }

    /// (seconds into the run, milliseconds) of the samples kept.
    pub(crate) fn samples(&self) -> &[(f32, f32)] {
        &self.samples
    }

    /// (quantile, milliseconds) along the distribution.
    pub(crate) fn distribution(&self) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        for q in [
            0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 0.99,
            0.9925, 0.995, 0.9975, 0.999, 0.99925, 0.9995, 0.99975, 0.9999, 0.99999, 1.0,
        ] {
            out.push((q, self.hist.value_at_quantile(q) as f64 / 1000.0));
        }
        out
    }
}

/// Sequence numbers seen per stream (a publisher, a device): counts what is
/// new and what is a duplicate.
#[derive(Debug, Default)]
pub(crate) struct SeqTracker {
    seen: Vec<Vec<u64>>,
    pub(crate) unique: u64,
    pub(crate) duplicates: u64,
}

impl SeqTracker {
    /// Records `seq` of `stream`; true when it is new.
    pub(crate) fn record(&mut self, stream: usize, seq: u64) -> bool {
        if self.seen.len() <= stream {
            self.seen.resize_with(stream + 1, Vec::new);
        }
        let Some(bits) = self.seen.get_mut(stream) else {
            return false;
        };
        let word = usize::try_from(seq / 64).unwrap_or(usize::MAX);
        if word == usize::MAX {
            return false;
        }
        if bits.len() <= word {
            bits.resize(word + 1, 0);
        }
        let Some(w) = bits.get_mut(word) else {
            return false;
        };
        let mask = 1u64 << (seq % 64);
        if *w & mask != 0 {
            self.duplicates += 1;
            false
        } else {
            *w |= mask;
            self.unique += 1;
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_new_and_duplicates() {
        let mut t = SeqTracker::default();
        assert!(t.record(0, 5));
        assert!(t.record(3, 5));
        assert!(!t.record(0, 5));
        assert!(t.record(0, 200));
        assert_eq!((t.unique, t.duplicates), (3, 1));
    }

    #[test]
    fn percentiles_and_samples() {
        let mut l = Latency::new().unwrap();
        for us in 1..=1000u64 {
            l.record(Duration::from_millis(us), us);
        }
        let p = l.percentiles();
        assert_eq!(p.count, 1000);
        assert!((499..=501).contains(&p.p50), "{p:?}");
        assert!((989..=991).contains(&p.p99), "{p:?}");
        assert_eq!(p.max, 1000);
        assert_eq!(l.samples().len(), 1000);
        for _ in 0..MAX_SAMPLES {
            l.record(Duration::ZERO, 1);
        }
        assert!(l.samples().len() <= MAX_SAMPLES);
    }
}
