//! When to fetch a remote JWKS: at start, on a period, sooner while no key
//! is loaded, and on a token with an unknown `kid` (rate-limited, so a client
//! minting random `kid`s cannot turn the filter into a JWKS flood). A failed
//! fetch keeps the keys already loaded.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshSchedule {
    period_ms: u64,
    min_interval_ms: u64,
    last_attempt_ms: Option<u64>,
    last_success_ms: Option<u64>,
    in_flight: bool,
}

impl RefreshSchedule {
    pub fn new(period_ms: u64, min_interval_ms: u64) -> Self {
        Self {
            period_ms,
            min_interval_ms,
            last_attempt_ms: None,
            last_success_ms: None,
            in_flight: false,
        }
    }

    fn since_attempt(&self, now_ms: u64) -> Option<u64> {
        self.last_attempt_ms.map(|t| now_ms.saturating_sub(t))
    }

    /// A periodic tick: fetch now? (First fetch, the period elapsed, or no
    /// keys yet and the minimum interval passed since the last attempt.)
    pub fn due(&self, now_ms: u64, have_keys: bool) -> bool {
        if self.in_flight {
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
        !self.in_flight
            && self
                .since_attempt(now_ms)
                .is_none_or(|s| s >= self.min_interval_ms)
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

    pub fn in_flight(&self) -> bool {
        self.in_flight
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
        assert!(!s.may_fetch_for_unknown_key(20_000), "in flight");
    }
}
