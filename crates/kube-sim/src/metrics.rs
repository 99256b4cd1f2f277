//! Request accounting: `apiserver_request_total` in Prometheus text format on `/metrics`, with
//! kube-apiserver's label set and verb naming (`CleanVerb` in apiserver
//! `pkg/endpoints/metrics`, with the route verbs of `installer.go`): GET, LIST, WATCH, POST,
//! PUT, PATCH, APPLY (a PATCH with the apply content type), DELETE, DELETECOLLECTION. Plus an
//! in-process audit log of requests.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub verb: String,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    pub scope: String,
    pub code: u16,
}

/// One served request (audit log).
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub method: String,
    /// Path and query as sent.
    pub uri: String,
    pub user_agent: String,
    pub content_type: String,
    pub accept: String,
    pub code: u16,
}

#[derive(Debug, Default)]
pub struct Metrics {
    counts: Mutex<BTreeMap<Key, u64>>,
    log: Mutex<VecDeque<RequestRecord>>,
    /// Requests being served, watches excepted: a request is counted and logged only after its change is stored
    /// and sent to watchers, so a client can see a change whose request is not in the log yet.
    in_flight: Mutex<u64>,
    landed: tokio::sync::Notify,
}

/// A request being served; counted in [`Metrics::requests_in_flight`] until dropped (after it is logged, or when
/// the client went away).
pub struct InFlight<'m>(&'m Metrics);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut n = self.0.in_flight.lock().expect("in flight");
        *n -= 1;
        if *n == 0 {
            self.0.landed.notify_waiters();
        }
    }
}

impl Metrics {
    pub fn begin_request(&self) -> InFlight<'_> {
        *self.in_flight.lock().expect("in flight") += 1;
        InFlight(self)
    }

    /// Requests (watches excepted) being served now.
    pub fn requests_in_flight(&self) -> u64 {
        *self.in_flight.lock().expect("in flight")
    }

    /// Waits until no request (watches excepted) is being served: every change a client has seen so far is then in
    /// the counters and the request log.
    pub async fn requests_landed(&self) {
        loop {
            let landed = self.landed.notified();
            tokio::pin!(landed);
            landed.as_mut().enable();
            if self.requests_in_flight() == 0 {
                return;
            }
            landed.await;
        }
    }

    pub fn record(&self, key: Key) {
        *self.counts.lock().expect("metrics").entry(key).or_default() += 1;
    }

    pub fn log(&self, r: RequestRecord) {
        let mut l = self.log.lock().expect("log");
        if l.len() >= 100_000 {
            // A deque: dropping the oldest record must not shift 100,000 others on every request.
            l.pop_front();
        }
        l.push_back(r);
    }

    /// Requests counted for a metric verb (e.g. "LIST", "APPLY") and resource plural, all codes.
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.counts
            .lock()
            .expect("metrics")
            .iter()
            .filter(|(k, _)| k.verb == verb && (resource.is_empty() || k.resource == resource))
            .map(|(_, v)| *v)
            .sum()
    }

    /// Writes (POST, PUT, PATCH, APPLY, DELETE, DELETECOLLECTION) for a resource ("" = all).
    pub fn writes(&self, resource: &str) -> u64 {
        [
            "POST",
            "PUT",
            "PATCH",
            "APPLY",
            "DELETE",
            "DELETECOLLECTION",
        ]
        .iter()
        .map(|v| self.request_count(v, resource))
        .sum()
    }

    /// Reads (GET, LIST, WATCH) for a resource ("" = all resources).
    pub fn reads(&self, resource: &str) -> u64 {
        ["GET", "LIST", "WATCH"]
            .iter()
            .map(|v| self.request_count(v, resource))
            .sum()
    }

    pub fn snapshot(&self) -> BTreeMap<Key, u64> {
        self.counts.lock().expect("metrics").clone()
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        self.log.lock().expect("log").iter().cloned().collect()
    }

    /// How many logged requests satisfy `pred`, counted in place (polling [`Metrics::requests`] would copy
    /// the whole log each time).
    pub fn count_requests(&self, pred: impl FnMut(&&RequestRecord) -> bool) -> usize {
        self.log.lock().expect("log").iter().filter(pred).count()
    }

    pub fn reset(&self) {
        self.counts.lock().expect("metrics").clear();
        self.log.lock().expect("log").clear();
    }

    pub fn render(&self) -> String {
        let mut s = String::from(
            "# HELP apiserver_request_total [STABLE] Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n# TYPE apiserver_request_total counter\n",
        );
        for (k, v) in self.counts.lock().expect("metrics").iter() {
            s.push_str(&format!(
                "apiserver_request_total{{code=\"{}\",component=\"apiserver\",dry_run=\"\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {}\n",
                k.code, k.group, k.resource, k.scope, k.subresource, k.verb, k.version, v
            ));
        }
        s
    }
}
