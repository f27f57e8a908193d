//! When to fetch a remote JWKS: at start, on a period, sooner while no key
//! is loaded, and on a token with an unknown `kid` (rate-limited, so a client
//! minting random `kid`s cannot turn the filter into a JWKS flood). A failed
//! fetch keeps the keys already loaded.
//!
//! Fail closed, and never stuck: a fetch whose answer never comes back (lost
//! with the context that waited for it, or never delivered) stops counting
//! as in flight once its deadline passed, so one lost fetch cannot stop the
//! worker from ever fetching keys again. The shell fetches from the root
//! context, so a request that dies cannot take the fetch with it; the
//! deadline is the second line.

/// Time past a fetch's own timeout after which it is presumed lost.
const LOST_AFTER_MS: u64 = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSchedule {
    period_ms: u64,
    min_interval_ms: u64,
    /// How long the host waits for a fetch's answer.
    timeout_ms: u64,
    last_attempt_ms: Option<u64>,
    last_success_ms: Option<u64>,
    in_flight: bool,
}

impl RefreshSchedule {
    pub fn new(period_ms: u64, min_interval_ms: u64) -> Self {
        Self {
            period_ms,
            min_interval_ms,
            timeout_ms: 0,
            last_attempt_ms: None,
            last_success_ms: None,
            in_flight: false,
        }
    }

    /// The fetch timeout the host enforces (a fetch unanswered well past it
    /// is presumed lost).
    pub fn with_timeout(mut self, timeout_ms: u64) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    /// A fetch started and not answered, and not presumed lost at `now_ms`.
    fn pending(&self, now_ms: u64) -> bool {
        self.in_flight
            && self
                .since_attempt(now_ms)
                .is_some_and(|since| since < self.timeout_ms.saturating_add(LOST_AFTER_MS))
    }

    fn since_attempt(&self, now_ms: u64) -> Option<u64> {
        self.last_attempt_ms.map(|t| now_ms.saturating_sub(t))
    }

    /// A periodic tick: fetch now? (First fetch, the period elapsed, or no
    /// keys yet and the minimum interval passed since the last attempt.)
    pub fn due(&self, now_ms: u64, have_keys: bool) -> bool {
        if self.pending(now_ms) {
            return false;
        }
        match (self.last_success_ms, self.since_attempt(now_ms)) {
            (_, None) => true,
            (None, Some(since)) => since >= self.min_interval_ms,
            (Some(ok), Some(since)) => {
                (now_ms.saturating_sub(ok) >= self.period_ms || !have_keys)
                    && since >= self.min_interval_ms
            }
        }
    }

    /// A token names a key we do not have: fetch now, unless one is in
    /// flight or the last attempt was too recent.
    pub fn may_fetch_for_unknown_key(&self, now_ms: u64) -> bool {
        !self.pending(now_ms)
            && self
                .since_attempt(now_ms)
                .is_none_or(|s| s >= self.min_interval_ms)
    }

    /// A token names a key we do not have: is a fetch worth waiting for?
    /// One in flight, or one that may start now.
    pub fn may_wait_for_keys(&self, now_ms: u64) -> bool {
        self.pending(now_ms) || self.may_fetch_for_unknown_key(now_ms)
    }

    pub fn started(&mut self, now_ms: u64) {
        self.in_flight = true;
        self.last_attempt_ms = Some(now_ms);
    }

    pub fn succeeded(&mut self, now_ms: u64) {
        self.in_flight = false;
        self.last_success_ms = Some(now_ms);
    }

    pub fn failed(&mut self) {
        self.in_flight = false;
    }

    pub fn in_flight(&self, now_ms: u64) -> bool {
        self.pending(now_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fetch_is_due_at_once_then_on_the_period() {
        let mut s = RefreshSchedule::new(60_000, 5_000);
        assert!(s.due(0, false));
        s.started(0);
        assert!(!s.due(1, false), "one fetch at a time");
        s.succeeded(10);
        assert!(!s.due(30_000, true));
        assert!(s.due(60_010, true));
    }

    #[test]
    fn without_keys_a_failed_fetch_is_retried_after_the_minimum_interval() {
        let mut s = RefreshSchedule::new(60_000, 5_000);
        s.started(0);
        s.failed();
        assert!(!s.due(4_999, false));
        assert!(s.due(5_000, false));
    }

    #[test]
    fn unknown_key_fetches_are_rate_limited() {
        let mut s = RefreshSchedule::new(60_000, 5_000);
        s.started(0);
        s.succeeded(1);
        assert!(!s.may_fetch_for_unknown_key(4_000));
        assert!(s.may_fetch_for_unknown_key(5_000));
        s.started(5_000);
        assert!(!s.may_fetch_for_unknown_key(9_000), "in flight");
    }

    #[test]
    fn a_fetch_never_answered_stops_blocking_fetches_after_its_deadline() {
        let mut s = RefreshSchedule::new(60_000, 1_000).with_timeout(2_000);
        s.started(0);
        s.succeeded(10);
        // A fetch is started, and its answer is lost with its context.
        s.started(1_000);
        assert!(!s.due(2_000, true));
        assert!(!s.may_fetch_for_unknown_key(2_000));
        assert!(s.may_wait_for_keys(2_000), "in flight: worth waiting for");
        // Past its timeout and the margin, it no longer counts.
        let lost = 1_000 + 2_000 + LOST_AFTER_MS;
        assert!(s.in_flight(lost - 1));
        assert!(s.may_fetch_for_unknown_key(lost));
        assert!(!s.in_flight(lost));
        // ...and with no keys the periodic tick retries too.
        assert!(s.due(lost, false));
    }
}
