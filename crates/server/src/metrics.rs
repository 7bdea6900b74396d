//! Prometheus metrics, served in text format on the admin listener.

use std::sync::OnceLock;
use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::spare::SpareMetrics;

/// Labels of one request outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Function name.
    pub function: String,
    /// Deployed package version.
    pub version: String,
    /// HTTP status sent.
    pub status: u16,
}

/// Labels naming one function version.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FunctionLabels {
    /// Function name.
    pub function: String,
    /// Deployed package version.
    pub version: String,
}

/// Labels of a denial the host decided.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DenialLabels {
    /// Function name.
    pub function: String,
    /// What was denied (`outbound-http`, `outbound-limit`, ...).
    pub kind: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs to ~3.3 s.
    Histogram::new(exponential_buckets(0.00005, 2.0, 17))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by function, version and status.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency by function and version.
    pub latency: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    /// Time to instantiate a guest for a request.
    pub instantiation: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    /// Guest traps.
    pub traps: Family<FunctionLabels, Counter>,
    /// Requests stopped at their deadline.
    pub timeouts: Family<FunctionLabels, Counter>,
    /// Denials the host decided.
    pub denials: Family<DenialLabels, Counter>,
    /// Requests refused because the server was at capacity.
    pub shed: Counter,
    /// Requests being handled now.
    pub in_flight: Gauge<i64, AtomicI64>,
    /// Functions deployed now.
    pub functions: Gauge<i64, AtomicI64>,
    /// Spare instances waiting, and requests served by one.
    pub spares: SpareMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let requests = Family::default();
        let latency = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let instantiation = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let traps = Family::default();
        let timeouts = Family::default();
        let denials = Family::default();
        let shed = Counter::default();
        let in_flight = Gauge::default();
        let functions = Gauge::default();
        let spares = SpareMetrics::default();
        let mut registry = Registry::with_prefix("wasmzip");
        registry.register("requests", "Requests handled, by function, version and status", requests.clone());
        registry.register("request_duration_seconds", "Request latency, from routing to response headers", latency.clone());
        registry.register("instantiation_duration_seconds", "Time to instantiate a fresh guest for a request", instantiation.clone());
        registry.register("traps", "Guest traps", traps.clone());
        registry.register("timeouts", "Requests stopped at their deadline", timeouts.clone());
        registry.register("denials", "Denials the host decided", denials.clone());
        registry.register("shed", "Requests refused with 503 because the server was at capacity", shed.clone());
        registry.register("requests_in_flight", "Requests being handled now", in_flight.clone());
        registry.register("functions_deployed", "Functions deployed now", functions.clone());
        registry.register("spare_instances", "Instances made ahead of a request and waiting for one", spares.alive.clone());
        registry.register("spare_instances_used", "Requests served by an instance made ahead of them", spares.used.clone());
        Metrics { registry, requests, latency, instantiation, traps, timeouts, denials, shed, in_flight, functions, spares }
    }
}

/// One function version's metric handles, looked up once per deployed version rather than per request.
#[derive(Clone, Debug)]
pub struct FunctionMetrics {
    /// Its labels.
    pub labels: FunctionLabels,
    /// Request latency.
    pub latency: Histogram,
    /// Instantiation time.
    pub instantiation: Histogram,
    /// Traps.
    pub traps: Counter,
    /// Timeouts.
    pub timeouts: Counter,
    /// Its `200` responses (the status almost every request ends with), looked up at the first.
    ok: OnceLock<Counter>,
}

impl FunctionMetrics {
    /// Counts one response of this version with `status` in `requests`.
    pub fn count_response(&self, requests: &Family<RequestLabels, Counter>, status: u16) {
        let labels = |status| RequestLabels { function: self.labels.function.clone(), version: self.labels.version.clone(), status };
        if status == 200 {
            self.ok.get_or_init(|| requests.get_or_create(&labels(200)).clone()).inc();
        } else {
            requests.get_or_create(&labels(status)).inc();
        }
    }
}

impl Metrics {
    /// The handles of one function version.
    pub fn for_function(&self, function: &str, version: &str) -> FunctionMetrics {
        let labels = FunctionLabels { function: function.to_string(), version: version.to_string() };
        FunctionMetrics {
            latency: self.latency.get_or_create(&labels).clone(),
            instantiation: self.instantiation.get_or_create(&labels).clone(),
            traps: self.traps.get_or_create(&labels).clone(),
            timeouts: self.timeouts.get_or_create(&labels).clone(),
            ok: OnceLock::new(),
            labels,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_families_with_labels() {
        let m = Metrics::default();
        m.requests.get_or_create(&RequestLabels { function: "hello".into(), version: "1.0.0".into(), status: 200 }).inc();
        m.latency.get_or_create(&FunctionLabels { function: "hello".into(), version: "1.0.0".into() }).observe(0.002);
        m.functions.set(3);
        let text = m.render();
        assert!(text.contains(r#"wasmzip_requests_total{function="hello",version="1.0.0",status="200"} 1"#), "{text}");
        assert!(text.contains("wasmzip_request_duration_seconds_bucket"), "{text}");
        assert!(text.contains("wasmzip_functions_deployed 3"), "{text}");
    }
}
