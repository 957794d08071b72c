//! What each layer of `shared::http` costs per request, in the server's CPU time.
//!
//! Every row serves `GET /healthz` (the real `ops_router`) from a child process (this binary
//! run again with `HTTP_LAYERS_CHILD=<row>`), drives it with `wrk` from outside, and reads the
//! child's CPU time (`/proc/<pid>/stat`, user + system, all threads) before and after: so the
//! figure is the server's own cost, not the load generator's. Rows: bare hyper, axum with no
//! layers, each layer alone on top of axum, the full stack, the hot-route stack; then the same
//! with the real tracing subscriber (`shared::telemetry::init_tracing`) at `RUST_LOG=info`, as
//! the services run. Each row is also given as a ratio to bare hyper.
//!
//! `cargo bench -p shared --features http --bench http_layers`
//!
//! Env: `BENCH_HTTP_SECS` (measured seconds per row, default 5), `BENCH_HTTP_CONNS` (wrk
//! connections, default 50), `BENCH_HTTP_ROUNDS` (default 3; the median is printed),
//! `BENCH_HTTP_PORT` (default 38080), `BENCH_HTTP_WRK=0` (the in-process figures only),
//! `BENCH_HTTP_ONLY` (run only rows whose name, with its
//! log format in brackets, contains this text, e.g. `[pretty]`).

use std::{
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use axum::{Router, body::Body, http::Response};
use shared::{
    config::{HttpConfig, LogFormat},
    http::{Layers, Readiness, Server, apply_layers, ops_router},
};

/// The mimalloc allocator, as in every service binary: the allocator is part of the cost.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CHILD_ENV: &str = "HTTP_LAYERS_CHILD";
const ADDR_ENV: &str = "HTTP_LAYERS_ADDR";
const INPROC_ENV: &str = "HTTP_LAYERS_INPROC";
/// Requests per in-process measurement (after as many to warm up).
const INPROC_REQUESTS: u32 = 100_000;

/// How a row's server is built.
#[derive(Clone, Copy)]
enum Stack {
    /// hyper's HTTP/1 server and a `service_fn` answering a static body: the floor.
    Hyper,
    /// The ops router with these layers.
    Layered(Layers),
    /// The ops router in the stack as it was before `shared::http::layers`: one tower-http
    /// layer (or `from_fn` middleware) per concern, kept here as the reference to beat.
    Before { trace_only: bool },
}

#[derive(Clone, Copy)]
struct Row {
    name: &'static str,
    stack: Stack,
    /// The tracing subscriber the services install, or none.
    logs: Option<LogFormat>,
    /// wrk sends `X-Request-Id`, as the gateway does.
    request_id_header: bool,
}

fn only(layer: fn(&mut Layers)) -> Stack {
    let mut layers = Layers::NONE;
    layer(&mut layers);
    Stack::Layered(layers)
}

fn rows() -> Vec<Row> {
    let stacks: [(&str, Stack); 13] = [
        ("bare hyper", Stack::Hyper),
        ("axum, no layers", Stack::Layered(Layers::NONE)),
        ("+ metrics", only(|l| l.metrics = true)),
        ("+ body limits", only(|l| l.body_limit = true)),
        ("+ timeout", only(|l| l.timeout = true)),
        ("+ json_errors", only(|l| l.json_errors = true)),
        (
            "+ propagate request id",
            only(|l| l.propagate_request_id = true),
        ),
        ("+ trace span", only(|l| l.trace = true)),
        ("+ set request id", only(|l| l.set_request_id = true)),
        ("full stack", Stack::Layered(Layers::ALL)),
        ("hot stack", Stack::Layered(Layers::HOT)),
        ("before: + TraceLayer", Stack::Before { trace_only: true }),
        ("before: full stack", Stack::Before { trace_only: false }),
    ];
    let mut rows = Vec::new();
    for logs in [None, Some(LogFormat::Pretty)] {
        for (name, stack) in stacks {
            rows.push(Row {
                name,
                stack,
                logs,
                request_id_header: false,
            });
        }
    }
    for (name, stack) in [
        ("full stack, id from gateway", Stack::Layered(Layers::ALL)),
        ("hot stack, id from gateway", Stack::Layered(Layers::HOT)),
        (
            "before: full, id from gateway",
            Stack::Before { trace_only: false },
        ),
    ] {
        rows.push(Row {
            name,
            stack,
            logs: Some(LogFormat::Pretty),
            request_id_header: true,
        });
    }
    for (name, stack) in [
        ("full stack, json logs", Stack::Layered(Layers::ALL)),
        ("hot stack, json logs", Stack::Layered(Layers::HOT)),
        (
            "before: full, json logs",
            Stack::Before { trace_only: false },
        ),
    ] {
        rows.push(Row {
            name,
            stack,
            logs: Some(LogFormat::Json),
            request_id_header: false,
        });
    }
    rows
}

fn row_key(row: &Row) -> String {
    let logs = match row.logs {
        None => "none",
        Some(LogFormat::Pretty) => "pretty",
        Some(LogFormat::Json) => "json",
    };
    format!("{} [{logs}]", row.name)
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if let Ok(key) = std::env::var(CHILD_ENV) {
        serve(&key);
        return;
    }
    let secs: u64 = env_or("BENCH_HTTP_SECS", 5);
    let conns: u32 = env_or("BENCH_HTTP_CONNS", 50);
    let port: u16 = env_or("BENCH_HTTP_PORT", 38080);
    let filter = std::env::var("BENCH_HTTP_ONLY").unwrap_or_default();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let ticks = clock_ticks_per_second();
    let exe = std::env::current_exe().expect("the bench knows its own path");

    let rounds: usize = env_or("BENCH_HTTP_ROUNDS", 3);
    let rows: Vec<Row> = rows()
        .into_iter()
        .enumerate()
        // The first row (bare hyper) is the reference for every ratio: always run.
        .filter(|(i, row)| *i == 0 || row_key(row).contains(&filter))
        .map(|(_, row)| row)
        .collect();

    // Rows are interleaved round by round and the median kept, so that other work on the
    // machine (a compile) weighs on every row alike rather than on whichever ran during it.
    let mut samples: Vec<Vec<(f64, f64)>> = vec![Vec::new(); rows.len()];
    let over_the_wire = env_or("BENCH_HTTP_WRK", 1) != 0;
    for round in (0..rounds).filter(|_| over_the_wire) {
        eprintln!("round {}/{rounds}", round + 1);
        for (row, samples) in rows.iter().zip(&mut samples) {
            samples.push(measure(&exe, row, addr, conns, secs, ticks));
        }
    }

    // The same stacks called in process, without sockets or hyper: the layers' own cost,
    // free of most of the noise of a loaded machine (thread CPU time, best of the rounds).
    let mut inproc: Vec<f64> = vec![f64::INFINITY; rows.len()];
    for _ in 0..rounds {
        for (row, best) in rows.iter().zip(&mut inproc) {
            if let Some(ns) = measure_in_process(&exe, row) {
                *best = best.min(ns);
            }
        }
    }

    println!(
        "GET /healthz, wrk -t2 -c{conns} -d{secs}s, server CPU (user+sys) from /proc, \
         median of {rounds} rounds; in process: router.call() CPU per request, best of {rounds}"
    );
    println!(
        "{:<30} {:>7} {:>8} {:>11} {:>7} {:>15}",
        "stack", "logs", "req/s", "CPU µs/req", "× bare", "in process µs"
    );
    if !over_the_wire {
        for samples in &mut samples {
            samples.push((f64::NAN, f64::NAN));
        }
    }
    let bare_us = median(samples[0].iter().map(|s| s.1).collect());
    for ((row, samples), inproc) in rows.iter().zip(samples).zip(inproc) {
        let rate = median(samples.iter().map(|s| s.0).collect());
        let us = median(samples.iter().map(|s| s.1).collect());
        let logs = match row.logs {
            None => "off",
            Some(LogFormat::Pretty) => "pretty",
            Some(LogFormat::Json) => "json",
        };
        let inproc = if inproc.is_finite() {
            format!("{:.2}", inproc / 1000.0)
        } else {
            "-".to_string()
        };
        println!(
            "{:<30} {:>7} {:>8.0} {:>11.1} {:>7.2} {:>15}",
            row.name,
            logs,
            rate,
            us,
            us / bare_us,
            inproc
        );
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One row once: (requests per second, server CPU µs per request).
fn measure(
    exe: &std::path::Path,
    row: &Row,
    addr: SocketAddr,
    conns: u32,
    secs: u64,
    ticks: f64,
) -> (f64, f64) {
    let mut child = Command::new(exe)
        .env(CHILD_ENV, row_key(row))
        .env(ADDR_ENV, addr.to_string())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawns the server");
    wait_for(addr);
    let url = format!("http://{addr}/healthz");
    // One warm-up second: connections open, caches and the allocator settle.
    let _ = wrk(&url, conns, 1, row.request_id_header);
    let before = cpu_seconds(child.id(), ticks);
    let (requests, rate) = wrk(&url, conns, secs, row.request_id_header);
    let after = cpu_seconds(child.id(), ticks);
    let _ = child.kill();
    let _ = child.wait();
    // The port must be free before the next row binds it.
    std::thread::sleep(Duration::from_millis(100));
    #[allow(clippy::cast_precision_loss)]
    let us = (after - before) * 1e6 / requests.max(1) as f64;
    (rate, us)
}

/// One row in process: the child's CPU nanoseconds per `router.call()`, or `None` for the
/// bare hyper row (there is no router to call).
fn measure_in_process(exe: &std::path::Path, row: &Row) -> Option<f64> {
    let output = Command::new(exe)
        .env(CHILD_ENV, row_key(row))
        .env(INPROC_ENV, "1")
        .env("RUST_LOG", "info")
        .stderr(Stdio::inherit())
        .output()
        .expect("runs the in-process child");
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// Runs wrk; returns (requests completed, requests per second). Panics on non-2xx answers:
/// a row that errors measures the error path, not the stack.
fn wrk(url: &str, conns: u32, secs: u64, request_id_header: bool) -> (u64, f64) {
    let mut command = Command::new("wrk");
    command.args(["-t2", &format!("-c{conns}"), &format!("-d{secs}s"), url]);
    if request_id_header {
        command.args(["-H", "X-Request-Id: 6f1c0a52-5b8e-4c1e-9d8e-3f2a1b0c9d7e"]);
    }
    let output = command.output().expect("runs wrk (is it installed?)");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !text.contains("Non-2xx"),
        "the server answered errors:\n{text}"
    );
    let requests = text
        .lines()
        .find(|line| line.contains("requests in"))
        .and_then(|line| line.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("wrk printed no request count:\n{text}"));
    let rate = text
        .lines()
        .find(|line| line.starts_with("Requests/sec:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    (requests, rate)
}

fn wait_for(addr: SocketAddr) {
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the server did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8_lossy(&out.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU of the whole process (threads included, exited ones too), in seconds.
fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reads /proc stat");
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let rest = &stat[stat.rfind(')').expect("stat has the name in parentheses") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the line (utime, stime) are 11 and 12 after the name.
    let utime: f64 = fields[11].parse().expect("utime");
    let stime: f64 = fields[12].parse().expect("stime");
    (utime + stime) / ticks
}

/// The child: one row's server, until the parent kills it.
fn serve(key: &str) {
    let row = rows()
        .into_iter()
        .find(|row| row_key(row) == key)
        .expect("the parent names a row");
    if std::env::var_os(INPROC_ENV).is_some() {
        if !matches!(row.stack, Stack::Hyper) {
            if let Some(format) = row.logs {
                shared::telemetry::init_tracing(format);
            }
            println!("{}", call_in_process(row.stack, row.request_id_header));
        }
        return;
    }
    let addr: SocketAddr = std::env::var(ADDR_ENV)
        .expect("the parent gives the address")
        .parse()
        .expect("a socket address");
    if let Some(format) = row.logs {
        shared::telemetry::init_tracing(format);
    }
    // The services' runtime: `#[tokio::main]`, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("builds the runtime");
    runtime.block_on(async move {
        match row.stack {
            Stack::Hyper => serve_hyper(addr).await,
            stack => {
                let config = bench_config(addr);
                // Prometheus scrapes; without it the histogram samples pile up unsummarised.
                let metrics = shared::telemetry::metrics_handle();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        let _ = metrics.render();
                    }
                });
                let router = build_router(stack, &config);
                let server = Server::bind(addr, router).await.expect("binds");
                server
                    .run_until(std::future::pending())
                    .await
                    .expect("serves");
            }
        }
    });
}

async fn serve_hyper(addr: SocketAddr) {
    use hyper::{server::conn::http1, service::service_fn};
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind(addr).await.expect("binds");
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let service = service_fn(|_request| async {
                Ok::<_, std::convert::Infallible>(
                    Response::builder()
                        .header("content-type", "application/json")
                        .body(Body::from(r#"{"status":"ok"}"#))
                        .expect("a static response is valid"),
                )
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn bench_config(addr: SocketAddr) -> HttpConfig {
    HttpConfig {
        addr,
        body_limit_bytes: 1024 * 1024,
        request_timeout: Duration::from_secs(15),
        trust_forwarded_for: false,
    }
}

/// CPU nanoseconds per request through the router's own `call`, on one thread.
fn call_in_process(stack: Stack, request_id_header: bool) -> f64 {
    use tower::Service;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("builds the runtime");
    runtime.block_on(async move {
        let config = bench_config(SocketAddr::from(([127, 0, 0, 1], 0)));
        // As `Server` does (through `into_make_service`): handlers become routes once, here,
        // not on every call.
        let mut router = build_router(stack, &config).with_state(());
        let mut one = async || {
            let mut request = axum::http::Request::builder().uri("/healthz");
            if request_id_header {
                request = request.header("x-request-id", "6f1c0a52-5b8e-4c1e-9d8e-3f2a1b0c9d7e");
            }
            let request = request.body(Body::empty()).expect("a valid request");
            let response = router.call(request).await.expect("infallible");
            assert!(response.status().is_success());
            axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .expect("reads the body");
        };
        for _ in 0..INPROC_REQUESTS {
            one().await;
        }
        let started = thread_cpu_ns();
        for _ in 0..INPROC_REQUESTS {
            one().await;
        }
        #[allow(clippy::cast_precision_loss)]
        let per_request = (thread_cpu_ns() - started) as f64 / f64::from(INPROC_REQUESTS);
        per_request
    })
}

/// This thread's time on a CPU, in nanoseconds (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .expect("reads schedstat")
        .split_whitespace()
        .next()
        .and_then(|ns| ns.parse().ok())
        .expect("schedstat starts with the CPU time in ns")
}

fn build_router(stack: Stack, config: &HttpConfig) -> Router {
    let ops = ops_router(Readiness::new());
    match stack {
        Stack::Hyper => unreachable!("the hyper row has no router"),
        Stack::Layered(layers) => apply_layers(ops, config, layers),
        Stack::Before { trace_only } => before::apply(ops, config, trace_only),
    }
}

/// The common layers as they were (commit 9e658fa), for the "before" rows.
mod before {
    use std::time::Instant;

    use axum::{
        Router,
        body::Body,
        extract::{MatchedPath, Request},
        http::StatusCode,
        middleware::{self, Next},
        response::Response,
    };
    use shared::{
        config::HttpConfig,
        http::{REQUEST_ID, json_errors},
    };
    use tower_http::{
        limit::RequestBodyLimitLayer,
        request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
        timeout::TimeoutLayer,
        trace::TraceLayer,
    };

    pub fn apply(router: Router, config: &HttpConfig, trace_only: bool) -> Router {
        let trace = TraceLayer::new_for_http().make_span_with(|request: &Request<Body>| {
            let request_id = request
                .extensions()
                .get::<RequestId>()
                .and_then(|id| id.header_value().to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = %request_id,
            )
        });
        if trace_only {
            return router.layer(trace);
        }
        router
            .route_layer(middleware::from_fn(track_metrics))
            .layer(axum::extract::DefaultBodyLimit::max(
                config.body_limit_bytes,
            ))
            .layer(RequestBodyLimitLayer::new(config.body_limit_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                config.request_timeout,
            ))
            .layer(middleware::from_fn(json_errors))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID))
            .layer(trace)
            .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
    }

    async fn track_metrics(request: Request, next: Next) -> Response {
        let started = Instant::now();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
        let method = request.method().to_string();
        let response = next.run(request).await;
        let status = response.status().as_u16().to_string();
        let labels = [("route", route), ("method", method), ("status", status)];
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
        response
    }
}
