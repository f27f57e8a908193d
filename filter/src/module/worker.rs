//! What one Envoy worker thread keeps for one filter configuration: the
//! parsed configuration, its verification keys and JWKS fetch, metric
//! labels and series. Envoy builds a configuration once on the main thread
//! and runs its filters on every worker; the core's state is per thread
//! (`Rc`, `RefCell`), as the wasm shell's is per VM, so each worker parses
//! its own copy the first time it serves the configuration.
//!
//! Must not: be shared across threads, or keep a filter pointer past the
//! hook it was handed in (waiters are kept as their schedulers).

use super::host::{self, Filter, Scheduler};
use super::ModuleConfig;
use crate::config::FilterConfig;
use crate::shell::keys::Keys;
use crate::telemetry::{self, Labels, MetricKind, Sample, ToolLabels};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Weak};

/// The event a waiting filter's scheduler is woken with: the fetch is over.
pub const KEYS_READY: u64 = 1;
/// The event that tells waiting filters the fetch ended with the request
/// that sent it: one of them sends it again, all wait for that one.
pub const KEYS_RETRY: u64 = 3;

/// A series as recorded: its metric (index in [`telemetry::METRICS`]) and
/// label values; `None` for a name no metric declares.
type Series = Option<(usize, Vec<String>)>;

/// A worker, with its configuration's id and liveness.
type Entry = (u64, Weak<ModuleConfig>, Rc<Worker>);

pub struct Worker {
    pub config: Rc<FilterConfig>,
    pub labels: RefCell<Labels>,
    pub keys: Keys,
    /// Each metric of [`telemetry::METRICS`], as Envoy numbered it.
    metric_ids: Vec<Option<usize>>,
    /// Series recorded so far, with their metric and label values.
    series: RefCell<HashMap<Rc<str>, Series>>,
    /// The JWKS fetch in flight: (callout id, the filter that sent it).
    jwks: Cell<Option<(u64, u64)>>,
    /// The counters known at load still need their zero (an Envoy that
    /// cannot give it at configuration time): the first stream gives it.
    zero_pending: Cell<bool>,
    /// Filters waiting for the JWKS fetch, as the schedulers that wake them.
    waiters: RefCell<Vec<Scheduler>>,
}

thread_local! {
    /// This thread's workers, by configuration id (with the configuration's
    /// liveness, to forget those Envoy destroyed).
    static WORKERS: RefCell<Vec<Entry>> =
        const { RefCell::new(Vec::new()) };
}

impl Worker {
    /// This thread's worker for `module`, made on first use.
    pub fn for_config(module: &Arc<ModuleConfig>) -> Option<Rc<Worker>> {
        WORKERS.with(|workers| {
            let mut workers = workers.try_borrow_mut().ok()?;
            workers.retain(|(_, alive, _)| alive.strong_count() > 0);
            if let Some((_, _, w)) = workers.iter().find(|(id, _, _)| *id == module.id) {
                return Some(w.clone());
            }
            let config = FilterConfig::from_json(&module.json).ok()?;
            let worker = Rc::new(Worker::new(config, module.metric_ids.clone()));
            worker.zero_pending.set(!module.zeroed_at_load);
            workers.push((module.id, Arc::downgrade(module), worker.clone()));
            Some(worker)
        })
    }

    fn new(config: FilterConfig, metric_ids: Vec<Option<usize>>) -> Self {
        let labels = Labels::new(
            ToolLabels::new(&config.metrics.tool_labels, config.metrics.max_tool_labels),
            ToolLabels::new(&[], config.metrics.max_tenant_labels),
        );
        Self {
            keys: Keys::new(&config),
            config: Rc::new(config),
            labels: RefCell::new(labels),
            metric_ids,
            series: RefCell::new(HashMap::new()),
            jwks: Cell::new(None),
            zero_pending: Cell::new(false),
            waiters: RefCell::new(Vec::new()),
        }
    }

    /// Gives the counters known at load their zero through this worker's
    /// first stream, where Envoy could not at configuration time.
    pub fn zero_at_load(&self, filter: Filter) {
        if self.zero_pending.replace(false) {
            self.record(filter, &super::config::zeros_at_load(&self.config));
        }
    }

    /// Records samples through a filter, within `metrics.max_series` (past
    /// it a new series folds into its metric's `_other` one).
    pub fn record(&self, filter: Filter, samples: &[Sample]) {
        let Ok(mut series) = self.series.try_borrow_mut() else {
            return;
        };
        let max = self.config.metrics.max_series;
        for sample in samples {
            let name: Rc<str> = if series.len() < max || series.contains_key(&sample.name) {
                sample.name.clone()
            } else {
                telemetry::folded_series(&sample.name).into()
            };
            let target = series
                .entry(name.clone())
                .or_insert_with(|| super::config::resolve(&name))
                .clone();
            let Some((metric, values)) = target else {
                continue;
            };
            let Some(id) = self.metric_ids.get(metric).copied().flatten() else {
                continue;
            };
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            let recorded = match sample.kind {
                MetricKind::Counter => filter.increment_counter(id, &values, sample.value),
                MetricKind::Histogram => filter.record_histogram(id, &values, sample.value),
            };
            if let Err(e) = recorded {
                host::log(
                    super::abi::LOG_WARN,
                    &format!("mcp_filter: cannot record metric {name}: status {}", e.0),
                );
            }
        }
    }

    /// Whether a JWKS fetch is in flight.
    pub fn fetching(&self) -> bool {
        self.jwks.get().is_some()
    }

    /// Whether `filter_id` sent the JWKS fetch in flight.
    pub fn fetched_by(&self, filter_id: u64) -> bool {
        self.jwks.get().is_some_and(|(_, by)| by == filter_id)
    }

    /// Whether `callout`, answered to `filter_id`, is the JWKS fetch. Envoy
    /// numbers callouts per filter, so another stream's relayed call or
    /// gathered listing may carry the fetch's number: its answer (whatever a
    /// backend wrote) must not be read as the keys.
    pub fn is_jwks_call(&self, filter_id: u64, callout: u64) -> bool {
        self.jwks
            .get()
            .is_some_and(|(id, by)| id == callout && by == filter_id)
    }

    /// Sends the JWKS request through `filter` (its answer comes to that
    /// filter's callout hook). False if there is none to send or it could
    /// not be sent.
    pub fn start_fetch(&self, filter: Filter, filter_id: u64, now_ms: u64) -> bool {
        let Some(request) = self.keys.start_fetch(now_ms) else {
            return false;
        };
        match filter.callout(&request.cluster, &request.headers, &[], request.timeout_ms) {
            Ok(id) => {
                self.jwks.set(Some((id, filter_id)));
                true
            }
            Err(e) => {
                host::log(
                    super::abi::LOG_WARN,
                    &format!(
                        "mcp_filter: cannot fetch the JWKS from cluster `{}`: status {}",
                        request.cluster, e.0
                    ),
                );
                self.keys.fetch_failed();
                false
            }
        }
    }

    /// Refreshes loaded keys when the schedule says so (the period): the
    /// dynamic-module ABI has no HTTP-filter timer, so the refresh rides on
    /// a request, through its filter, without making it wait. A request
    /// that ends first abandons it ([`Self::fetch_abandoned`]); the schedule
    /// retries with a later request. With no key loaded yet, fetches are
    /// sent only by requests that need keys, which wait for the answer.
    pub fn refresh_if_due(&self, filter: Filter, filter_id: u64, now_ms: u64) {
        if self.keys.remote()
            && self.keys.loaded()
            && !self.fetching()
            && self.keys.fetch_due(now_ms)
        {
            self.start_fetch(filter, filter_id, now_ms);
        }
    }

    /// Adds a filter to those woken when the fetch is over.
    pub fn wait(&self, scheduler: Scheduler) -> bool {
        match self.waiters.try_borrow_mut() {
            Ok(mut waiters) => {
                waiters.push(scheduler);
                true
            }
            Err(_) => false,
        }
    }

    /// The JWKS answer arrived (`status` `None`: the call failed).
    pub fn jwks_answered(&self, status: Option<&str>, body: &[u8], now_ms: u64) {
        self.jwks.set(None);
        let (level, line) = match self.keys.fetched(status, body, now_ms) {
            Ok(line) => (super::abi::LOG_INFO, line),
            Err(line) => (super::abi::LOG_WARN, line),
        };
        host::log(level, &format!("mcp_filter: {line}"));
        self.wake_waiters();
    }

    /// The filter that sent the fetch is gone (Envoy cancels its calls):
    /// requests still waiting are told to send it again (the first of them
    /// to run does, the others wait for it), so a client that disconnects
    /// cannot leave the others without keys.
    pub fn fetch_abandoned(&self) {
        self.jwks.set(None);
        self.keys.fetch_failed();
        let waiters = match self.waiters.try_borrow_mut() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => Vec::new(),
        };
        for scheduler in waiters {
            scheduler.wake(KEYS_RETRY);
        }
        host::log(
            super::abi::LOG_INFO,
            "mcp_filter: JWKS fetch ended with the request that sent it; keeping the keys \
             already loaded (sent again by a request still waiting, or a later one)",
        );
    }

    fn wake_waiters(&self) {
        let waiters = match self.waiters.try_borrow_mut() {
            Ok(mut w) => std::mem::take(&mut *w),
            Err(_) => return,
        };
        for scheduler in waiters {
            scheduler.wake(KEYS_READY);
        }
    }
}
