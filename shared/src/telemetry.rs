//! Logs and metrics for every process.
//!
//! Logs go through `tracing`: human-readable in dev, one JSON object per line in production.
//! Metrics go through the `metrics` facade into one process-wide Prometheus recorder, rendered by
//! each service's `/metrics`.

use std::{io::IsTerminal, sync::OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Installs the global tracing subscriber. Safe to call more than once (tests do): later calls
/// are ignored.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    // Colours only for a person at a terminal, never into log files.
    let ansi = std::io::stdout().is_terminal();
    let _already_set = match format {
        LogFormat::Pretty => registry
            .with(fmt::layer().compact().with_ansi(ansi))
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
}

/// Latency buckets in seconds, fine at the low end where the hot paths live.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder. A process has one global recorder, so the handle is
/// installed once and shared; several apps in one test binary all render the same registry.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .expect("the bucket list is not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (a test harness); then ours just renders
            // what it was given, which is still a valid, if empty, exposition.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
