//! A token bucket bounding the bytes per second a store spends on snapshot transfer, shared
//! by every send and receive of the store (`snap_max_bytes_per_sec`).

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct RateLimiter {
    bytes_per_sec: f64,
    /// Bytes that may pass at once after an idle period: 100 ms worth.
    burst: f64,
    state: Mutex<Bucket>,
}

struct Bucket {
    /// May go negative: a caller that overdraws waits until it is repaid.
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// `bytes_per_sec == 0` means unlimited.
    pub fn new(bytes_per_sec: u64) -> Self {
        let rate = bytes_per_sec as f64;
        RateLimiter {
            bytes_per_sec: rate,
            burst: rate / 10.0,
            state: Mutex::new(Bucket { tokens: rate / 10.0, refilled_at: Instant::now() }),
        }
    }

    /// Takes `bytes` from the bucket and returns how long the caller must wait before using
    /// them (zero when there were enough).
    pub fn reserve(&self, bytes: u64) -> Duration {
        if self.bytes_per_sec <= 0.0 {
            return Duration::ZERO;
        }
        let Ok(mut b) = self.state.lock() else { return Duration::ZERO };
        let now = Instant::now();
        let earned = now.duration_since(b.refilled_at).as_secs_f64() * self.bytes_per_sec;
        b.tokens = (b.tokens + earned).min(self.burst);
        b.refilled_at = now;
        b.tokens -= bytes as f64;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / self.bytes_per_sec)
        }
    }

    /// `reserve`, then sleep the thread for as long as it says.
    pub fn consume_blocking(&self, bytes: u64) {
        let wait = self.reserve(bytes);
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_beyond_the_burst_owe_time_in_proportion() {
        let limiter = RateLimiter::new(1_000_000);
        // The first 100 ms worth passes at once; each further MB owes about one second.
        assert_eq!(limiter.reserve(100_000), Duration::ZERO);
        let owed = limiter.reserve(1_000_000);
        assert!(owed > Duration::from_millis(900) && owed <= Duration::from_secs(1), "{owed:?}");
        let owed = limiter.reserve(1_000_000);
        assert!(owed > Duration::from_millis(1900), "debts add up: {owed:?}");
        assert_eq!(RateLimiter::new(0).reserve(u64::MAX), Duration::ZERO, "0 = unlimited");
    }
}
