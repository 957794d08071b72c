//! The layers around every request of every service: a request id (the gateway's, or one made
//! here) echoed in `X-Request-Id` and carried by one tracing span per request, per-route
//! metrics, the body limit (413), the timeout (408), and the contract's JSON body on every
//! error a layer or the router makes on its own.
//!
//! Built to cost little per request, because the waiting room answers tens of thousands of
//! status reads a second on two cores (`shared/benches/http_layers.rs` prices each part):
//!
//! - one service for everything but the metrics (which need the matched route, so sit inside
//!   the router): two boxed services and futures per request instead of one per layer (axum
//!   boxes each `Router::layer`, and `from_fn` boxes again);
//! - metric handles resolved once per route, method and status and then reused, instead of
//!   formatting three label strings and hashing them in the registry on every request;
//! - a request id made only when the gateway sent none, from a counter (a version-8 UUID, not
//!   a random one: it needs to be unique, not unguessable, and `getrandom` is a system call);
//! - no request body wrapper for requests without a body.
//!
//! Never change the series names and labels (`http_requests_total{route,method,status}`,
//! `http_request_duration_seconds{route,method,status}`): dashboards and tests read them. Cached
//! handles belong to the recorder installed when they were made, so the recorder must be in place
//! before the first request ([`super::ops_router`] installs it when the router is built).

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    extract::{MatchedPath, Request},
    http::{HeaderValue, Method, StatusCode, header},
    response::Response,
};
use http_body::{Frame, SizeHint};
use tower::{Layer, Service};
use tracing::Instrument;

use super::{REQUEST_ID, json_error_body};
use crate::config::HttpConfig;

/// Which of the common layers to apply. Services use [`Layers::ALL`] (through
/// [`super::apply_common_layers`]) or [`Layers::HOT`] (through [`super::apply_hot_layers`]); the
/// layer benchmark turns them on one at a time to price each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layers {
    /// `http_requests_total` and `http_request_duration_seconds` per route, method, status.
    pub metrics: bool,
    /// 413 for a body over the limit (declared or streamed).
    pub body_limit: bool,
    /// 408 for a request that takes longer than the configured timeout.
    pub timeout: bool,
    /// The contract's JSON body on error responses that have none.
    pub json_errors: bool,
    /// The request's `X-Request-Id` echoed on the response.
    pub propagate_request_id: bool,
    /// One `request` span (method, path, request id) around the request, so that every log
    /// line written while serving it names the request.
    pub trace: bool,
    /// An `X-Request-Id` made for a request that arrives without one.
    pub set_request_id: bool,
}

impl Layers {
    pub const NONE: Self = Self {
        metrics: false,
        body_limit: false,
        timeout: false,
        json_errors: false,
        propagate_request_id: false,
        trace: false,
        set_request_id: false,
    };

    pub const ALL: Self = Self {
        metrics: true,
        body_limit: true,
        timeout: true,
        json_errors: true,
        propagate_request_id: true,
        trace: true,
        set_request_id: true,
    };

    /// For routes that answer from memory and take no body (a status read, `/healthz`): all
    /// but the timeout, whose timer (armed and disarmed on every request) buys nothing when
    /// the handler cannot wait on anything. Request ids, spans, metrics, JSON errors and the
    /// body limit stay. The timer is the cheapest part (about 0.1–0.3 µs of 2–2.7 µs for the
    /// whole stack in the bench), so this is for routes that must not wait at all, not a
    /// general saving: a route that awaits Redis or Postgres keeps [`Layers::ALL`].
    pub const HOT: Self = Self {
        timeout: false,
        ..Self::ALL
    };
}

/// Wraps `router` in the layers `layers` selects. Call it last, after all routes are added.
pub fn apply_layers<S>(mut router: Router<S>, config: &HttpConfig, layers: Layers) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    if layers.metrics {
        // Per-route metrics need the matched route, which exists only inside the router.
        router = router.route_layer(RouteMetricsLayer);
    }
    if (Layers {
        metrics: false,
        ..layers
    }) == Layers::NONE
    {
        return router;
    }
    let common = CommonLayer {
        layers,
        body_limit: config.body_limit_bytes,
        timeout: config.request_timeout,
    };
    if layers.body_limit {
        // The extractors' own limit (`Json`, `Bytes`), inside the one boxed stack.
        router.layer(tower::ServiceBuilder::new().layer(common).layer(
            axum::extract::DefaultBodyLimit::max(config.body_limit_bytes),
        ))
    } else {
        router.layer(common)
    }
}

// ---------------------------------------------------------------------------------------------
// Request ids, span, body limit, timeout, JSON errors: one service.

#[derive(Debug, Clone, Copy)]
struct CommonLayer {
    layers: Layers,
    body_limit: usize,
    timeout: Duration,
}

impl<S> Layer<S> for CommonLayer {
    type Service = Common<S>;

    fn layer(&self, inner: S) -> Common<S> {
        Common {
            inner,
            settings: *self,
        }
    }
}

#[derive(Debug, Clone)]
struct Common<S> {
    inner: S,
    settings: CommonLayer,
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> Service<Request> for Common<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> BoxFuture {
        let layers = self.settings.layers;
        let mut request_id = request.headers().get(REQUEST_ID).cloned();
        if layers.set_request_id && request_id.is_none() {
            let made = new_request_id();
            // Into the request too: handlers pass it on (RabbitMQ headers).
            request.headers_mut().insert(REQUEST_ID, made.clone());
            request_id = Some(made);
        }
        let span = if layers.trace {
            let id = request_id
                .as_ref()
                .and_then(|id| id.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                request_id = %id,
            )
        } else {
            tracing::Span::none()
        };
        let echo = if layers.propagate_request_id {
            request_id
        } else {
            None
        };

        if layers.body_limit {
            let declared = request
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.parse::<u64>().ok());
            let limit = self.settings.body_limit;
            if declared.is_some_and(|length| length > limit as u64) {
                let response = finish(empty(StatusCode::PAYLOAD_TOO_LARGE), layers, echo, None);
                return Box::pin(std::future::ready(Ok(response)));
            }
            // A streamed (chunked) body is cut off at the limit while it is read; a request
            // without a body needs no wrapper (and its allocation).
            if !request.body().is_end_stream() {
                request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
            }
        }

        // The router's services are always ready (axum's contract), and `poll_ready` was
        // just called on this one: no clone of the inner service per request.
        let inner = self.inner.call(request);
        let timeout = layers.timeout.then_some(self.settings.timeout);
        let started = layers.trace.then(Instant::now);
        Box::pin(
            async move {
                let response = match timeout {
                    Some(limit) => match tokio::time::timeout(limit, inner).await {
                        Ok(response) => response?,
                        Err(_) => empty(StatusCode::REQUEST_TIMEOUT),
                    },
                    None => inner.await?,
                };
                let response = finish(response, layers, echo, started);
                // A body of known length is already in memory: only a stream needs the span.
                if layers.trace && response.body().size_hint().exact().is_none() {
                    // Inside the instrumented future, the current span is the request's.
                    let span = tracing::Span::current();
                    return Ok(response.map(|inner| Body::new(SpanBody { inner, span })));
                }
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// What happens to every response on its way out: the JSON body, the echoed id, the log.
fn finish(
    response: Response,
    layers: Layers,
    request_id: Option<HeaderValue>,
    started: Option<Instant>,
) -> Response {
    let status = response.status();
    if let Some(started) = started {
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        if status.is_server_error() {
            // As tower-http's TraceLayer did: a 5xx is logged once, here, in the request span.
            tracing::error!(status = status.as_u16(), latency_ms, "response failed");
        } else {
            tracing::debug!(
                status = status.as_u16(),
                latency_ms,
                "finished processing request"
            );
        }
    }
    let mut response = if layers.json_errors {
        json_error_body(response)
    } else {
        response
    };
    if let Some(id) = request_id {
        // A handler that set its own id keeps it.
        response.headers_mut().entry(REQUEST_ID).or_insert(id);
    }
    response
}

/// A bodiless answer; [`finish`] gives it the contract's JSON body.
fn empty(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// A streamed response body (a push stream) polled inside the request's span, so that what is
/// logged while streaming names the request, as it did inside the body of a request handler.
struct SpanBody {
    inner: Body,
    span: tracing::Span,
}

impl HttpBody for SpanBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let _entered = this.span.enter();
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A new request id: a UUID (version 8, "custom"), unique in this process by a counter and
/// across processes by a random start drawn once; it reads like the gateway's and the old
/// random ones. Not a secret: nothing may trust a request id.
fn new_request_id() -> HeaderValue {
    static START: OnceLock<(u64, u64)> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (high, low) = *START.get_or_init(|| {
        let (high, low) = uuid::Uuid::new_v4().as_u64_pair();
        // Version 8 in bits 48..52 of the first half.
        ((high & !0xf000) | 0x8000, low)
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The RFC variant (`10`) in the top two bits of the second half; the counter runs below.
    let low = (low.wrapping_add(n) & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let id = uuid::Uuid::from_u64_pair(high, low);
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let text = id.hyphenated().encode_lower(&mut text);
    HeaderValue::from_str(text).expect("hex digits and hyphens are a valid header value")
}

// ---------------------------------------------------------------------------------------------
// Per-route metrics.

/// Makes one [`RouteMetrics`] per route endpoint, each with its own cache of metric handles.
#[derive(Debug, Clone, Copy)]
struct RouteMetricsLayer;

impl<S> Layer<S> for RouteMetricsLayer {
    type Service = RouteMetrics<S>;

    fn layer(&self, inner: S) -> RouteMetrics<S> {
        RouteMetrics {
            inner,
            cache: Arc::new(RouteCache::default()),
        }
    }
}

#[derive(Clone)]
struct RouteMetrics<S> {
    inner: S,
    cache: Arc<RouteCache>,
}

/// How many (method, status) pairs one endpoint keeps handles for; an endpoint answers a few
/// (200, 404, 422 ...). Past that, a pair goes through the registry each time: slower, still
/// counted.
const SLOTS: usize = 16;

/// The metric handles of one endpoint. Filled on first use, lock-free to read: each slot is a
/// `OnceLock`, so a request that finds its pair pays one atomic load per slot it looks at.
#[derive(Default)]
struct RouteCache {
    /// The route the endpoint serves. One endpoint serves one route; the check keeps the
    /// labels right even if that ever changed.
    route: OnceLock<Box<str>>,
    slots: [OnceLock<Handles>; SLOTS],
}

struct Handles {
    method: Method,
    status: u16,
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

impl Handles {
    fn new(route: &str, method: &Method, status: u16) -> Self {
        let labels = labels(route, method, status);
        Self {
            method: method.clone(),
            status,
            requests: metrics::counter!("http_requests_total", &labels),
            duration: metrics::histogram!("http_request_duration_seconds", &labels),
        }
    }
}

fn labels(route: &str, method: &Method, status: u16) -> [(&'static str, String); 3] {
    [
        ("route", route.to_owned()),
        ("method", method.as_str().to_owned()),
        ("status", status.to_string()),
    ]
}

/// Only the standard methods get cached handles: the set of pairs must stay small, and any
/// client can send a method of its own.
fn is_standard(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(method)
}

impl RouteCache {
    fn record(&self, route: &str, method: &Method, status: u16, seconds: f64) {
        if let Some(handles) = self.handles(route, method, status) {
            handles.requests.increment(1);
            handles.duration.record(seconds);
            return;
        }
        let labels = labels(route, method, status);
        metrics::counter!("http_requests_total", &labels).increment(1);
        metrics::histogram!("http_request_duration_seconds", &labels).record(seconds);
    }

    fn handles(&self, route: &str, method: &Method, status: u16) -> Option<&Handles> {
        if &**self.route.get_or_init(|| route.into()) != route || !is_standard(method) {
            return None;
        }
        for slot in &self.slots {
            let handles = match slot.get() {
                Some(handles) => handles,
                None => {
                    // Two requests may race for an empty slot: the loser's handles point at
                    // the same series and are dropped; it then reads what the winner stored.
                    let _ = slot.set(Handles::new(route, method, status));
                    slot.get().expect("the slot was just filled")
                }
            };
            if handles.status == status && handles.method == method {
                return Some(handles);
            }
        }
        None
    }
}

impl<S> Service<Request> for RouteMetrics<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> BoxFuture {
        let started = Instant::now();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let method = request.method().clone();
        let cache = Arc::clone(&self.cache);
        let inner = self.inner.call(request);
        Box::pin(async move {
            let response = inner.await?;
            let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
            cache.record(
                route,
                &method,
                response.status().as_u16(),
                started.elapsed().as_secs_f64(),
            );
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::{
        Router,
        body::Body,
        http::{Request, StatusCode},
        routing::{get, post},
    };
    use tower::ServiceExt;

    use super::*;
    use crate::config::HttpConfig;

    fn config() -> HttpConfig {
        HttpConfig {
            addr: "127.0.0.1:0".parse().expect("an address"),
            body_limit_bytes: 1024,
            request_timeout: Duration::from_millis(100),
            trust_forwarded_for: false,
        }
    }

    fn app(layers: Layers) -> Router {
        let router = Router::new()
            .route("/layers-test/ok", get(|| async { "ok" }))
            .route(
                "/layers-test/log",
                get(|| async {
                    tracing::warn!("inside the handler");
                    "logged"
                }),
            )
            .route(
                "/layers-test/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/layers-test/echo",
                post(|body: axum::body::Bytes| async move { body }),
            )
            .route(
                "/layers-test/boom",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            )
            // Only the metrics test calls these: the registry is global to the test binary.
            .route("/layers-test/counted", get(|| async { "ok" }))
            .route(
                "/layers-test/counted-boom",
                get(|| async { StatusCode::INTERNAL_SERVER_ERROR }),
            );
        // As `Server` serves it: handlers turned into routes once.
        apply_layers(router, &config(), layers).with_state(())
    }

    fn get_request(path: &str) -> Request<Body> {
        Request::get(path).body(Body::empty()).expect("a request")
    }

    async fn json_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body");
        serde_json::from_slice(&bytes).expect("a JSON body")
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_fresh_uuid_and_a_given_one_is_kept() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..3 {
            let response = app(Layers::ALL)
                .oneshot(get_request("/layers-test/ok"))
                .await
                .expect("infallible");
            let id = response.headers()[REQUEST_ID].to_str().expect("ascii");
            let uuid = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(uuid.get_version_num(), 8, "{id}");
            assert!(seen.insert(id.to_owned()), "ids repeat: {id}");
        }
        for layers in [Layers::ALL, Layers::HOT] {
            let given = Request::get("/layers-test/nowhere")
                .header(REQUEST_ID, "gateway-abc-123")
                .body(Body::empty())
                .expect("a request");
            let response = app(layers).oneshot(given).await.expect("infallible");
            assert_eq!(response.status(), StatusCode::NOT_FOUND);
            assert_eq!(response.headers()[REQUEST_ID], "gateway-abc-123");
            assert_eq!(json_of(response).await["error"], "not_found");
        }
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_413_with_the_contract_body_declared_or_streamed() {
        let declared = Request::post("/layers-test/echo")
            .header(header::CONTENT_LENGTH, "2048")
            .body(Body::from(vec![b'x'; 2048]))
            .expect("a request");
        let response = app(Layers::HOT)
            .oneshot(declared)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(response.headers().contains_key(REQUEST_ID));
        assert_eq!(json_of(response).await["error"], "payload_too_large");

        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..4).map(|_| Ok(vec![b'y'; 512])).collect();
        let streamed = Request::post("/layers-test/echo")
            .body(Body::from_stream(futures_util::stream::iter(chunks)))
            .expect("a request");
        let response = app(Layers::ALL)
            .oneshot(streamed)
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(json_of(response).await["error"], "payload_too_large");

        let small = Request::post("/layers-test/echo")
            .body(Body::from("small"))
            .expect("a request");
        let response = app(Layers::ALL).oneshot(small).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_slow_request_is_408_with_the_contract_body_unless_the_timeout_is_off() {
        let response = app(Layers::ALL)
            .oneshot(get_request("/layers-test/slow"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
        assert!(response.headers().contains_key(REQUEST_ID));
        assert_eq!(json_of(response).await["error"], "timeout");

        // The hot stack has no timer: the same route is still running after the limit.
        let hot = tokio::time::timeout(
            Duration::from_millis(300),
            app(Layers::HOT).oneshot(get_request("/layers-test/slow")),
        )
        .await;
        assert!(hot.is_err(), "the hot stack timed the request out");
    }

    #[tokio::test]
    async fn a_server_error_without_a_body_gets_the_contract_body() {
        let response = app(Layers::ALL)
            .oneshot(get_request("/layers-test/boom"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(json_of(response).await["error"], "internal");
    }

    #[tokio::test]
    async fn every_request_is_counted_under_its_route_method_and_status() {
        let metrics = crate::telemetry::metrics_handle();
        let app = app(Layers::HOT);
        for _ in 0..3 {
            let response = app
                .clone()
                .oneshot(get_request("/layers-test/counted"))
                .await
                .expect("infallible");
            assert_eq!(response.status(), StatusCode::OK);
        }
        let response = app
            .clone()
            .oneshot(get_request("/layers-test/counted-boom"))
            .await
            .expect("infallible");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);

        let text = metrics.render();
        let count = |route: &str, status: &str| -> Option<String> {
            text.lines()
                .find(|line| {
                    line.starts_with("http_requests_total{")
                        && line.contains(&format!(r#"route="{route}""#))
                        && line.contains(r#"method="GET""#)
                        && line.contains(&format!(r#"status="{status}""#))
                })
                .and_then(|line| line.split_whitespace().last())
                .map(str::to_owned)
        };
        assert_eq!(
            count("/layers-test/counted", "200").as_deref(),
            Some("3"),
            "{text}"
        );
        assert_eq!(
            count("/layers-test/counted-boom", "500").as_deref(),
            Some("1"),
            "{text}"
        );
        assert!(
            text.lines().any(
                |line| line.starts_with("http_request_duration_seconds_bucket{")
                    && line.contains(r#"route="/layers-test/counted""#)
            ),
            "{text}"
        );
    }

    /// Collects what the fmt layer writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_log_line_written_while_serving_a_request_names_its_request_id() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        tracing::subscriber::with_default(subscriber, || {
            // Another test of this binary may have run the span's callsite with no subscriber
            // and cached it as disabled; ask every callsite again now that this one exists.
            tracing::callsite::rebuild_interest_cache();
            runtime.block_on(async {
                for layers in [Layers::ALL, Layers::HOT] {
                    let request = Request::get("/layers-test/log")
                        .header(REQUEST_ID, format!("id-{}", layers.timeout))
                        .body(Body::empty())
                        .expect("a request");
                    let response = app(layers).oneshot(request).await.expect("infallible");
                    assert_eq!(response.status(), StatusCode::OK);
                }
            });
        });
        let text = String::from_utf8(captured.0.lock().expect("not poisoned").clone())
            .expect("utf-8 logs");
        for id in ["id-true", "id-false"] {
            assert!(
                text.lines().any(|line| line.contains("inside the handler")
                    && line.contains(&format!("request_id={id}"))
                    && line.contains("path=/layers-test/log")),
                "{text}"
            );
        }
    }
}
