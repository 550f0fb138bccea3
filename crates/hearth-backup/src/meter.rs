//! Metering what a backup reads: a hook called with every block read from the guest's data
//! (for progress), and a token bucket that throttles reading to a bandwidth limit (vzdump's
//! `bwlimit`).

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Called with the number of bytes just read from the guest's disks or tree. It may sleep to
/// throttle the reader.
pub type ReadHook<'a> = &'a (dyn Fn(u64) + Sync);

/// A hook that does nothing.
pub fn no_hook() -> ReadHook<'static> {
    &|_| {}
}

/// A token bucket: `rate` bytes per second, with at most one second's worth saved up. It starts
/// empty, so reading `n` bytes takes at least `n / rate` seconds from the first take.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    /// A bucket for `bytes_per_sec` (at least 1).
    pub fn new(bytes_per_sec: u64) -> TokenBucket {
        let rate = bytes_per_sec.max(1);
        TokenBucket { rate, burst: rate as f64, tokens: 0.0, last: None }
    }

    /// A bucket for a limit in KiB/s, as vzdump's `bwlimit`.
    pub fn kib_per_sec(kib: u64) -> TokenBucket {
        TokenBucket::new(kib.saturating_mul(1024))
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes `n` bytes at `now`; answers how long the caller must wait before going on. The
    /// caller is expected to wait that long: the debt is already booked.
    pub fn take(&mut self, n: u64, now: Instant) -> Duration {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate as f64).min(self.burst);
        }
        self.last = Some(now);
        self.tokens -= n as f64;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate as f64) }
    }
}

/// Passes a reader through, calling a hook with every read's length.
pub struct HookReader<'a, R> {
    pub inner: R,
    pub hook: ReadHook<'a>,
}

impl<R> std::fmt::Debug for HookReader<'_, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookReader").finish_non_exhaustive()
    }
}

impl<R: Read> Read for HookReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            (self.hook)(n as u64);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KIB: u64 = 1024;

    #[test]
    fn starts_empty_so_reading_takes_size_over_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::kib_per_sec(100);
        assert_eq!(bucket.rate(), 100 * KIB);
        // 400 KiB read at once at 100 KiB/s: 4 s.
        assert_eq!(bucket.take(400 * KIB, t0), Duration::from_secs(4));
        // Having waited, the next 100 KiB cost one more second.
        assert_eq!(bucket.take(100 * KIB, t0 + Duration::from_secs(4)), Duration::from_secs(1));
    }

    #[test]
    fn many_small_reads_add_up_to_size_over_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000);
        let mut now = t0;
        for _ in 0..50 {
            now += bucket.take(100, now);
        }
        // 5000 bytes at 1000 B/s: 5 s in all.
        assert_eq!(now - t0, Duration::from_secs(5));
    }

    #[test]
    fn idle_time_is_saved_up_to_one_second() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000);
        assert_eq!(bucket.take(0, t0), Duration::ZERO);
        // Ten idle seconds save only one second's worth.
        assert_eq!(bucket.take(1000, t0 + Duration::from_secs(10)), Duration::ZERO);
        assert_eq!(bucket.take(500, t0 + Duration::from_secs(10)), Duration::from_millis(500));
    }

    #[test]
    fn reads_within_the_rate_do_not_wait() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000);
        bucket.take(0, t0);
        assert_eq!(bucket.take(250, t0 + Duration::from_millis(500)), Duration::ZERO);
        assert_eq!(bucket.take(250, t0 + Duration::from_millis(750)), Duration::ZERO);
    }

    #[test]
    fn hook_reader_reports_every_read() {
        let seen = std::sync::Mutex::new(0u64);
        let hook = |n: u64| *seen.lock().unwrap() += n;
        let mut r = HookReader { inner: &[7u8; 3000][..], hook: &hook };
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(*seen.lock().unwrap(), 3000);
    }
}
