//! A per-subgraph circuit breaker: closed → open after N consecutive failures → (after a
//! cool-down) half-open with one probe request → closed on success, open again on failure.
//!
//! Only consecutive failures count (no sliding ratio window): a subgraph that answers some
//! requests is degraded, not down, and failing fast for it would turn partial into total outage.
//! Every method takes `now` so tests drive the clock by hand.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::BreakerSettings;

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Requests flow; `failures` consecutive ones have failed so far.
    Closed { failures: u32 },
    /// Requests fail fast until `until`.
    Open { until: Instant },
    /// One probe went out at `since`; others fail fast until it reports (or, if it never
    /// reports because its caller went away, until another cool-down has passed).
    HalfOpen { since: Instant },
}

/// Where a breaker is, as monitoring reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CircuitState {
    /// Requests flow.
    Closed,
    /// A probe is out (or due): the subgraph is being tested.
    HalfOpen,
    /// Requests fail fast.
    Open,
}

impl CircuitState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub(crate) fn code(self) -> i64 {
        match self {
            CircuitState::Closed => 0,
            CircuitState::HalfOpen => 1,
            CircuitState::Open => 2,
        }
    }

    /// Plain words for the status view.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::HalfOpen => "half-open",
            CircuitState::Open => "open",
        }
    }
}

/// What the breaker says about a request about to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Send it.
    Allowed,
    /// Send it as the half-open probe: its outcome decides whether the circuit closes.
    Probe,
    /// Do not send it: the circuit is open.
    Rejected,
}

/// One subgraph's breaker. Cheap to consult: a mutex held for a few instructions.
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    service: String,
    settings: BreakerSettings,
    state: Mutex<State>,
}

impl CircuitBreaker {
    /// A closed breaker for `service` (the name is for logs).
    pub(crate) fn new(service: &str, settings: BreakerSettings) -> Self {
        Self {
            service: service.to_owned(),
            settings,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a request may go out now.
    pub(crate) fn admit(&self, now: Instant) -> Admission {
        if !self.settings.enabled {
            return Admission::Allowed;
        }
        let mut state = self.state.lock().expect("breaker lock poisoned");
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if now < until => Admission::Rejected,
            State::HalfOpen { since } if now < since + self.settings.cool_down => {
                Admission::Rejected
            }
            State::Open { .. } | State::HalfOpen { .. } => {
                *state = State::HalfOpen { since: now };
                tracing::info!(service = %self.service, "circuit half-open: sending one probe request");
                Admission::Probe
            }
        }
    }

    /// Where the breaker is at `now` (an open circuit whose cool-down has passed counts as
    /// half-open: the next request will be the probe).
    pub(crate) fn state(&self, now: Instant) -> CircuitState {
        match *self.state.lock().expect("breaker lock poisoned") {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if now < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Reports how a request that was let through ended.
    #[cfg(test)]
    pub(crate) fn record(&self, success: bool, now: Instant) {
        self.record_many(success, 1, now)
    }

    /// Reports how a request ended that `requests` client requests were waiting for (collapsed
    /// onto one fetch): a failure counts once per waiting request.
    pub(crate) fn record_many(&self, success: bool, requests: usize, now: Instant) {
        if !self.settings.enabled {
            return;
        }
        let requests = u32::try_from(requests.max(1)).unwrap_or(u32::MAX);
        let mut state = self.state.lock().expect("breaker lock poisoned");
        match (*state, success) {
            (State::Closed { failures }, true) => {
                if failures != 0 {
                    *state = State::Closed { failures: 0 };
                }
            }
            (State::Closed { failures }, false) => {
                let failures = failures.saturating_add(requests);
                if failures >= self.settings.failure_threshold.max(1) {
                    *state = State::Open {
                        until: now + self.settings.cool_down,
                    };
                    tracing::warn!(
                        service = %self.service,
                        failures,
                        cool_down_ms = self.settings.cool_down.as_millis() as u64,
                        "circuit opened: requests to this subgraph fail fast until a probe succeeds"
                    );
                } else {
                    *state = State::Closed { failures };
                }
            }
            (State::HalfOpen { .. } | State::Open { .. }, true) => {
                // A probe (or a request sent just before the circuit opened) got through.
                *state = State::Closed { failures: 0 };
                tracing::warn!(service = %self.service, "circuit closed: subgraph is answering again");
            }
            (State::HalfOpen { .. }, false) => {
                *state = State::Open {
                    until: now + self.settings.cool_down,
                };
                tracing::warn!(service = %self.service, "circuit re-opened: probe request failed");
            }
            // A straggler from before the circuit opened: the open period already counts it.
            (State::Open { .. }, false) => {}
        }
    }

    /// Whether the circuit is currently open or half-open (for tests and diagnostics).
    #[cfg(test)]
    fn is_open(&self) -> bool {
        !matches!(
            *self.state.lock().expect("breaker lock poisoned"),
            State::Closed { .. }
        )
    }
}

/// Why a request was not sent while the circuit is open (for the client's error message).
pub(crate) fn describe_open(settings: &BreakerSettings) -> String {
    format!(
        "circuit open after {} consecutive failures; retrying within {} ms",
        settings.failure_threshold.max(1),
        settings.cool_down.as_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn breaker(threshold: u32, cool_down_ms: u64) -> CircuitBreaker {
        CircuitBreaker::new(
            "test",
            BreakerSettings {
                enabled: true,
                failure_threshold: threshold,
                cool_down: Duration::from_millis(cool_down_ms),
            },
        )
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3, 1000);
        let t = Instant::now();
        b.record(false, t);
        b.record(false, t);
        b.record(true, t); // a success resets the count
        b.record(false, t);
        b.record(false, t);
        assert_eq!(b.admit(t), Admission::Allowed);
        assert!(!b.is_open());
        b.record(false, t);
        assert!(b.is_open());
        assert_eq!(b.admit(t), Admission::Rejected);
        assert_eq!(b.admit(t + Duration::from_millis(999)), Admission::Rejected);
    }

    #[test]
    fn one_probe_after_cool_down_and_success_closes() {
        let b = breaker(1, 1000);
        let t = Instant::now();
        b.record(false, t);
        let later = t + Duration::from_millis(1000);
        assert_eq!(b.admit(later), Admission::Probe);
        // While the probe is out, everyone else still fails fast.
        assert_eq!(b.admit(later), Admission::Rejected);
        assert_eq!(
            b.admit(later + Duration::from_millis(10)),
            Admission::Rejected
        );
        b.record(true, later + Duration::from_millis(20));
        assert!(!b.is_open());
        assert_eq!(
            b.admit(later + Duration::from_millis(21)),
            Admission::Allowed
        );
    }

    #[test]
    fn failed_probe_reopens_for_another_cool_down() {
        let b = breaker(2, 500);
        let t = Instant::now();
        b.record(false, t);
        b.record(false, t);
        let probe_at = t + Duration::from_millis(500);
        assert_eq!(b.admit(probe_at), Admission::Probe);
        let failed_at = probe_at + Duration::from_millis(100);
        b.record(false, failed_at);
        assert_eq!(
            b.admit(failed_at + Duration::from_millis(499)),
            Admission::Rejected
        );
        assert_eq!(
            b.admit(failed_at + Duration::from_millis(500)),
            Admission::Probe
        );
    }

    #[test]
    fn a_probe_that_never_reports_does_not_wedge_the_breaker() {
        let b = breaker(1, 200);
        let t = Instant::now();
        b.record(false, t);
        let probe_at = t + Duration::from_millis(200);
        assert_eq!(b.admit(probe_at), Admission::Probe);
        // The probe's caller went away; after another cool-down a new probe is allowed.
        assert_eq!(
            b.admit(probe_at + Duration::from_millis(199)),
            Admission::Rejected
        );
        assert_eq!(
            b.admit(probe_at + Duration::from_millis(200)),
            Admission::Probe
        );
    }

    #[test]
    fn stragglers_do_not_extend_or_break_an_open_circuit() {
        let b = breaker(1, 1000);
        let t = Instant::now();
        b.record(false, t);
        b.record(false, t + Duration::from_millis(900)); // ignored: already open
        assert_eq!(b.admit(t + Duration::from_millis(1000)), Admission::Probe);
    }

    #[test]
    fn a_failure_many_requests_waited_for_counts_for_each() {
        let b = breaker(5, 1000);
        let t = Instant::now();
        b.record_many(false, 3, t);
        assert!(!b.is_open());
        b.record_many(false, 2, t);
        assert!(b.is_open(), "five waiting requests failed");
        let b = breaker(5, 1000);
        b.record_many(false, 40, t);
        assert!(
            b.is_open(),
            "one collapsed fetch that forty requests waited for"
        );
        // A success shared by many still just closes / resets.
        let b = breaker(2, 1000);
        b.record_many(false, 1, t);
        b.record_many(true, 10, t);
        b.record_many(false, 1, t);
        assert!(!b.is_open());
    }

    #[test]
    fn disabled_breaker_always_allows() {
        let b = CircuitBreaker::new(
            "off",
            BreakerSettings {
                enabled: false,
                failure_threshold: 1,
                cool_down: Duration::from_secs(60),
            },
        );
        let t = Instant::now();
        for _ in 0..10 {
            b.record(false, t);
        }
        assert_eq!(b.admit(t), Admission::Allowed);
        assert!(!b.is_open());
    }
}
