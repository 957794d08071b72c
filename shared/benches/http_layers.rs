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
//! `BENCH_HTTP_PORT` (default 38080), `BENCH_HTTP_ONLY` (run only rows whose name, with its
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

/// How a row's server is built.
#[derive(Clone, Copy)]
enum Stack {
    /// hyper's HTTP/1 server and a `service_fn` answering a static body: the floor.
    Hyper,
    /// The ops router with these layers.
    Layered(Layers),
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
    let stacks: [(&str, Stack); 10] = [
        ("bare hyper", Stack::Hyper),
        ("axum, no layers", Stack::Layered(Layers::NONE)),
        ("+ metrics", only(|l| l.metrics = true)),
        ("+ body limits", only(|l| l.body_limit = true)),
        ("+ timeout", only(|l| l.timeout = true)),
        ("+ json_errors", only(|l| l.json_errors = true)),
        ("+ propagate request id", only(|l| l.propagate_request_id = true)),
        ("+ trace span", only(|l| l.trace = true)),
        ("+ set request id", only(|l| l.set_request_id = true)),
        ("full stack", Stack::Layered(Layers::ALL)),
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
    for round in 0..rounds {
        eprintln!("round {}/{rounds}", round + 1);
        for (row, samples) in rows.iter().zip(&mut samples) {
            samples.push(measure(&exe, row, addr, conns, secs, ticks));
        }
    }

    println!(
        "GET /healthz, wrk -t2 -c{conns} -d{secs}s, server CPU (user+sys) from /proc, \
         median of {rounds} rounds"
    );
    println!(
        "{:<34} {:>7} {:>10} {:>11} {:>8}",
        "stack", "logs", "req/s", "CPU µs/req", "× bare"
    );
    let bare_us = median(samples[0].iter().map(|s| s.1).collect());
    for (row, samples) in rows.iter().zip(samples) {
        let rate = median(samples.iter().map(|s| s.0).collect());
        let us = median(samples.iter().map(|s| s.1).collect());
        let logs = match row.logs {
            None => "off",
            Some(LogFormat::Pretty) => "pretty",
            Some(LogFormat::Json) => "json",
        };
        println!(
            "{:<34} {:>7} {:>10.0} {:>11.1} {:>8.2}",
            row.name,
            logs,
            rate,
            us,
            us / bare_us
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

/// Runs wrk; returns (requests completed, requests per second). Panics on non-2xx answers:
/// a row that errors measures the error path, not the stack.
fn wrk(url: &str, conns: u32, secs: u64, request_id_header: bool) -> (u64, f64) {
    let mut command = Command::new("wrk");
    command.args([
        "-t2",
        &format!("-c{conns}"),
        &format!("-d{secs}s"),
        url,
    ]);
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
            Stack::Layered(layers) => {
                let config = HttpConfig {
                    addr,
                    body_limit_bytes: 1024 * 1024,
                    request_timeout: Duration::from_secs(15),
                    trust_forwarded_for: false,
                };
                // Prometheus scrapes; without it the histogram samples pile up unsummarised.
                let metrics = shared::telemetry::metrics_handle();
                tokio::spawn(async move {
                    let mut every = tokio::time::interval(Duration::from_secs(5));
                    loop {
                        every.tick().await;
                        let _ = metrics.render();
                    }
                });
                let router: Router = apply_layers(ops_router(Readiness::new()), &config, layers);
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
