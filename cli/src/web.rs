//! The web wallet (`docs/cli.md` §9): `scrip serve` serves one page and a JSON API over HTTP on
//! loopback, on the daemon's runtime, next to the control socket.
//!
//! - **Access.** A secret token, drawn when the daemon starts, is in the address `scrip serve`
//!   prints and `scrip open` shows (`/?token=…`, as Jupyter does). Opening it sets a cookie
//!   (`HttpOnly`, `SameSite=Strict`) and redirects to `/`, so the token leaves the address bar.
//!   Every API request needs that cookie (or `Authorization: Bearer TOKEN`).
//! - **Cross-site requests are refused.** The `Host` header must name the address served (a
//!   page on another name that resolves to loopback is refused: DNS rebinding); a request that
//!   changes anything is a `POST` with `Content-Type: application/json` and the header
//!   `X-Scrip-Csrf: 1` (a cross-site page can set neither without a CORS preflight, which is
//!   never granted), and an `Origin` or `Sec-Fetch-Site` header, if sent, must be this origin.
//! - **One API, the CLI's.** `POST /api/op` takes the JSON an [`Op`] is on the control socket
//!   (`{"op": "pay", ...}`) and answers as the socket does (`{"ok": …}` / `{"error": …}`): the
//!   page pays, accepts and audits through the very checks the command line uses.
//! - **Live.** `GET /api/events` is a server-sent event stream: a `wallet` event with the
//!   balance and the orders whenever they change (an order arrives, is answered, expires).
//! - **Bounded.** At most [`MAX_CONNECTIONS`] connections at once (the next is accepted when one
//!   closes); a connection that has not sent a whole request head within [`HEADER_TIMEOUT`] (also
//!   between requests on a kept-alive connection) is closed. Request bodies up to
//!   [`MAX_BODY_BYTES`], at most [`MAX_REQUESTS`] API calls and [`MAX_EVENT_STREAMS`] event
//!   streams at once; beyond that, 503.
//!
//! Beyond loopback only when `web_listen` says so, and then the daemon warns at start.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use crate::api::Answer;
use crate::failure::Failure;
use crate::ops::{self, Context, Op};

/// Connections held at once; further ones wait in the kernel's backlog until one closes.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a connection may take to send a request head (and may sit idle between requests).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request body taken.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// API calls served at once.
pub const MAX_REQUESTS: usize = 16;
/// Event streams open at once.
pub const MAX_EVENT_STREAMS: usize = 8;
/// Events waiting to be sent on one stream.
const EVENT_QUEUE: usize = 4;
/// How long changes gather before the wallet is read again for an event stream.
const EVENT_GATHER: Duration = Duration::from_millis(150);
/// How often an event stream reads the wallet even without a change (expiry notes age).
const EVENT_REFRESH: Duration = Duration::from_secs(30);
/// The cookie that carries the token after the first visit.
const COOKIE: &str = "scrip_web";
/// The header a request that changes anything must carry.
const CSRF_HEADER: &str = "x-scrip-csrf";

/// The page, bundled into the binary (no CDN: it works offline).
const PAGE: &str = include_str!("../web/index.html");

/// The web wallet's secret: compared in constant time, never printed by `Debug`.
#[derive(Clone)]
struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(redacted)")
    }
}

impl Token {
    fn draw() -> Result<Token> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| anyhow!("the system's randomness: {e}"))?;
        Ok(Token(hex::encode(bytes)))
    }

    /// True if `offered` is the token (blake3's hash equality is constant-time).
    fn matches(&self, offered: &str) -> bool {
        blake3::hash(self.0.as_bytes()) == blake3::hash(offered.as_bytes())
    }
}

/// A running web wallet.
#[derive(Debug)]
pub struct Web {
    /// The address to open: the served address with the token.
    pub url: String,
    task: JoinHandle<()>,
}

impl Web {
    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

#[derive(Debug)]
struct Shared {
    ctx: Arc<Context>,
    token: Token,
    /// `Host` values this server answers to.
    hosts: Vec<String>,
    requests: Arc<Semaphore>,
    streams: Arc<Semaphore>,
}

/// Serves the web wallet of `ctx` on `address`; returns once it listens.
pub async fn start(ctx: Arc<Context>, address: SocketAddr) -> Result<Web> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("binding the web wallet's address {address}"))?;
    let bound = listener
        .local_addr()
        .context("the web wallet's bound address")?;
    if !bound.ip().is_loopback() {
        tracing::warn!(
            "THE WEB WALLET LISTENS BEYOND LOOPBACK, on {bound} (web_listen in config.toml): anyone \
             who can reach it and learns its token can spend from this wallet"
        );
    }
    let token = Token::draw()?;
    let mut hosts = vec![bound.to_string()];
    if bound.ip().is_loopback() {
        hosts.push(format!("localhost:{}", bound.port()));
    }
    let url = format!("http://{bound}/?token={}", token.0);
    let shared = Arc::new(Shared {
        ctx,
        token,
        hosts,
        requests: Arc::new(Semaphore::new(MAX_REQUESTS)),
        streams: Arc::new(Semaphore::new(MAX_EVENT_STREAMS)),
    });
    let app = Router::new()
        .route("/", get(page))
        .route("/api/op", post(op))
        .route("/api/events", get(events))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared);
    let task = tokio::spawn(accept_loop(listener, app));
    Ok(Web { url, task })
}

/// Accepts connections while fewer than [`MAX_CONNECTIONS`] are open, each served with
/// [`HEADER_TIMEOUT`]; runs until aborted.
async fn accept_loop(listener: tokio::net::TcpListener, app: Router) {
    let open = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // The permit comes first: beyond the bound, connections wait unaccepted.
        let Ok(permit) = Arc::clone(&open).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%err, "the web wallet could not accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(err) = served {
                tracing::debug!(%err, "a web wallet connection ended");
            }
            drop(permit);
        });
    }
}

/// Why a request was refused.
fn refuse(status: StatusCode, why: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        why.to_owned(),
    )
        .into_response()
}

/// The `Host` check (DNS rebinding): `None` if the request may go on.
fn wrong_host(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    if host.is_some_and(|h| shared.hosts.iter().any(|known| known == h)) {
        None
    } else {
        Some(refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "this is scrip's web wallet; it answers only to its own address",
        ))
    }
}

/// The token a request carries: its cookie, or `Authorization: Bearer`.
fn offered_token(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    bearer.or_else(|| {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value)
    })
}

/// The host and token checks every API request passes: `None` if it may go on.
fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    if let Some(refused) = wrong_host(shared, headers) {
        return Some(refused);
    }
    if offered_token(headers).is_some_and(|t| shared.token.matches(t)) {
        None
    } else {
        Some(refuse(
            StatusCode::UNAUTHORIZED,
            "no valid token: open the address `scrip open` shows",
        ))
    }
}

/// The cross-site checks of a request that changes something: `None` if it may go on.
fn cross_site(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    let json = text(header::CONTENT_TYPE).is_some_and(|t| {
        t.split(';')
            .next()
            .is_some_and(|m| m.trim() == "application/json")
    });
    let marked = headers.get(CSRF_HEADER).is_some_and(|v| v == "1");
    let origin_ok = text(header::ORIGIN).is_none_or(|origin| {
        shared
            .hosts
            .iter()
            .any(|host| origin == format!("http://{host}"))
    });
    let site_ok = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_none_or(|site| site == "same-origin" || site == "none");
    if json && marked && origin_ok && site_ok {
        None
    } else {
        Some(refuse(
            StatusCode::FORBIDDEN,
            "refused: a request that changes anything must come from the wallet's own page",
        ))
    }
}

#[derive(Debug, Deserialize)]
struct PageQuery {
    token: Option<String>,
}

/// `GET /`: with the token in the address, sets the cookie and redirects to `/`; with the
/// cookie, the page.
async fn page(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<PageQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = wrong_host(&shared, &headers) {
        return refused;
    }
    if let Some(token) = query.token {
        if !shared.token.matches(&token) {
            return refuse(
                StatusCode::UNAUTHORIZED,
                "this token is not (or no longer) valid: open the address `scrip open` shows",
            );
        }
        let cookie = format!(
            "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
            shared.token.0
        );
        let mut response = Redirect::to("/").into_response();
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    }
    if let Some(refused) = unauthorized(&shared, &headers) {
        return refused;
    }
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src 'self' data:; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// `GET /metrics`: the daemon's metrics in the Prometheus text format. No token (a scraper's
/// configuration outlives the daemon's token; nothing in it can spend), but the `Host` check.
async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = wrong_host(&shared, &headers) {
        return refused;
    }
    let Some(metrics) = shared.ctx.metrics.get() else {
        return refuse(StatusCode::NOT_FOUND, "no metrics here");
    };
    if let Some(node) = &shared.ctx.node
        && let Ok(status) = node.status().await
    {
        metrics.node(
            status.peers.len(),
            status.known_addresses,
            status.scope.len(),
        );
    }
    (
        [
            (
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        metrics.encode(),
    )
        .into_response()
}

/// `POST /api/op`: runs an [`Op`] as the control socket does.
async fn op(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = unauthorized(&shared, &headers).or_else(|| cross_site(&shared, &headers))
    {
        return refused;
    }
    let Ok(_permit) = Arc::clone(&shared.requests).try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many requests at once; try again",
        );
    };
    let answer = match serde_json::from_slice::<Op>(&body) {
        Err(err) => Answer::Error(Failure::of(&anyhow!("bad request: {err}"))),
        Ok(op) => match ops::execute(&shared.ctx, op).await {
            Ok(output) => Answer::Ok(Box::new(output)),
            Err(err) => Answer::Error(Failure::of(&err)),
        },
    };
    let status = match answer {
        Answer::Ok(_) => StatusCode::OK,
        Answer::Error(_) => StatusCode::UNPROCESSABLE_ENTITY,
    };
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(answer),
    )
        .into_response()
}

/// `GET /api/events`: a `wallet` event (balance and orders as `scrip --json` prints them)
/// now and whenever they change.
async fn events(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refused) = unauthorized(&shared, &headers) {
        return refused;
    }
    let Ok(permit) = Arc::clone(&shared.streams).try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams open",
        );
    };
    let (send, receive) = mpsc::channel::<Event>(EVENT_QUEUE);
    let ctx = Arc::clone(&shared.ctx);
    tokio::spawn(async move {
        watch_wallet(&ctx, send).await;
        drop(permit);
    });
    let stream = futures_util::stream::unfold(receive, |mut receive| async move {
        receive
            .recv()
            .await
            .map(|event| (Ok::<_, std::convert::Infallible>(event), receive))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// Sends a `wallet` event on `send` whenever the wallet's balance or orders read differently,
/// until the stream is closed.
async fn watch_wallet(ctx: &Context, send: mpsc::Sender<Event>) {
    let mut stored = ctx.node.as_ref().map(|node| node.events());
    let mut last = String::new();
    loop {
        let summary = wallet_summary(ctx).await;
        if summary != last {
            if send
                .send(Event::default().event("wallet").data(summary.clone()))
                .await
                .is_err()
            {
                return;
            }
            last = summary;
        }
        // Wait for something that may change the wallet: a stored entry, a payment, or time.
        tokio::select! {
            () = async {
                match stored.as_mut() {
                    Some(events) => { let _ = events.recv().await; }
                    None => std::future::pending::<()>().await,
                }
            } => {}
            () = ctx.orders_changed.notified() => {}
            () = tokio::time::sleep(EVENT_REFRESH) => {}
            () = send.closed() => return,
        }
        tokio::time::sleep(EVENT_GATHER).await;
        if let Some(events) = stored.as_mut() {
            drain(events);
        }
    }
}

/// Empties `events` (the changes gathered meanwhile are all read at once).
fn drain<T: Clone>(events: &mut tokio::sync::broadcast::Receiver<T>) {
    use tokio::sync::broadcast::error::TryRecvError;
    while !matches!(
        events.try_recv(),
        Err(TryRecvError::Empty | TryRecvError::Closed)
    ) {}
}

/// The balance and the orders, as one JSON object (errors included as such: a home without a
/// wallet yet says so).
async fn wallet_summary(ctx: &Context) -> String {
    let read = |op: Op| async move {
        match ops::execute(ctx, op).await {
            Ok(output) => serde_json::to_value(Answer::Ok(Box::new(output))),
            Err(err) => serde_json::to_value(Answer::Error(Failure::of(&err))),
        }
        .unwrap_or_default()
    };
    let balance = read(Op::Balance).await;
    let orders = read(Op::Orders {
        incoming: false,
        outgoing: false,
        pending: false,
    })
    .await;
    serde_json::json!({ "balance": balance, "orders": orders }).to_string()
}
