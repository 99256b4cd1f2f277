//! HTTP front end (axum/hyper, HTTP/1.1, plain text on 127.0.0.1): request parsing, the
//! non-resource endpoints, and dispatch of resource requests to the list/watch and write
//! handlers. Fault injection, latency, metrics and the audit log wrap every request here.

use crate::discovery;
use crate::errors::ApiError;
use crate::faults::Faults;
use crate::handlers;
use crate::metrics::{Key, Metrics, RequestRecord};
use crate::openapi;
use crate::store::State;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Response, StatusCode, Uri, header};
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Everything the HTTP layer, the controllers and the test handle share.
pub struct Shared {
    pub state: Mutex<State>,
    pub faults: Mutex<Faults>,
    pub metrics: Metrics,
    pub addr: SocketAddr,
    /// Bumped to cut every open watch (simulated connection drop / apiserver restart).
    pub drop_watches: tokio::sync::watch::Sender<u64>,
    pub bookmark_interval: Duration,
    /// While true every request is answered 503 (apiserver down during a restart).
    pub unavailable: std::sync::atomic::AtomicBool,
    /// ServiceAccount tokens whose requests are checked against RBAC (none by default).
    pub authz: Mutex<crate::authz::Authorization>,
}

impl Shared {
    pub fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A parsed resource request.
#[derive(Debug, Clone)]
pub struct ResourceRequest {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub plural: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

pub struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub query: HashMap<String, String>,
    pub body: Bytes,
}

impl Req {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }
    pub fn q_bool(&self, name: &str) -> bool {
        matches!(self.q(name), Some("true") | Some("1"))
    }
}

pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(v.to_string()))
        .expect("response")
}

pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code(), &e.to_status());
    if e.code() == 429 {
        r.headers_mut()
            .insert("Retry-After", HeaderValue::from_static("1"));
    }
    r
}

fn text(code: u16, s: String, ct: &'static str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::OK))
        .header(header::CONTENT_TYPE, ct)
        .body(Body::from(s))
        .expect("response")
}

fn not_found_path() -> ApiError {
    ApiError::NotFound {
        resource: String::new(),
        group: String::new(),
        name: String::new(),
    }
}

fn generic_404() -> Response<Body> {
    let mut st = not_found_path().to_status();
    st["message"] = Value::from("the server could not find the requested resource");
    st["details"] = serde_json::json!({});
    json_response(404, &st)
}

/// Parse `/api/v1/...` or `/apis/<g>/<v>/...` into a resource request.
pub fn parse_resource_path(state: &State, path: &str) -> Option<ResourceRequest> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.first() {
        Some(&"api") if segs.len() >= 3 => ("", segs[1], &segs[2..]),
        Some(&"apis") if segs.len() >= 4 => (segs[1], segs[2], &segs[3..]),
        _ => return None,
    };
    let is_namespaced_plural = |p: &str| {
        state.resources.iter().any(|r| {
            r.group == group
                && r.plural == p
                && r.namespaced
                && r.versions.iter().any(|v| v == version)
        })
    };
    let (namespace, rest) =
        if rest[0] == "namespaces" && rest.len() >= 3 && is_namespaced_plural(rest[2]) {
            (Some(rest[1].to_string()), &rest[2..])
        } else {
            (None, rest)
        };
    if rest.len() > 3 {
        return None;
    }
    Some(ResourceRequest {
        group: group.into(),
        version: version.into(),
        namespace,
        plural: rest[0].into(),
        name: rest.get(1).map(|s| s.to_string()),
        subresource: rest.get(2).map(|s| s.to_string()),
    })
}

/// Kubernetes request verb (for faults) from method and shape.
fn request_verb(method: &Method, rr: &ResourceRequest, watch: bool) -> &'static str {
    match *method {
        // `watch=true` on a single-object path is the legacy per-object watch.
        Method::GET if watch && rr.subresource.is_none() => "watch",
        Method::GET if rr.name.is_some() => "get",
        Method::GET => "list",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if rr.name.is_some() => "delete",
        Method::DELETE => "deletecollection",
        _ => "unknown",
    }
}

/// kube-apiserver's metric verb (`CleanVerb`).
fn metric_verb(verb: &str, content_type: &str) -> &'static str {
    match verb {
        "get" => "GET",
        "list" => "LIST",
        "watch" => "WATCH",
        "create" => "POST",
        "update" => "PUT",
        "patch" if content_type.starts_with("application/apply-patch") => "APPLY",
        "patch" => "PATCH",
        "delete" => "DELETE",
        "deletecollection" => "DELETECOLLECTION",
        _ => "UNKNOWN",
    }
}

pub async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let query: HashMap<String, String> = uri.query().map(form_urlencoded_parse).unwrap_or_default();
    let req = Req {
        method,
        uri,
        headers,
        query,
        body,
    };
    let path = req.uri.path().to_string();
    let _in_flight = (!req.q_bool("watch")).then(|| shared.metrics.begin_request());
    let latency = shared.faults.lock().map(|f| f.latency).unwrap_or_default();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let rr = {
        let st = shared.lock();
        parse_resource_path(&st, &path)
    };
    let resp = match rr {
        None => non_resource(&shared, &req, &path),
        Some(rr) => {
            let watch = req.q_bool("watch");
            let verb = request_verb(&req.method, &rr, watch);
            let res_label = match &rr.subresource {
                Some(s) => format!("{}/{s}", rr.plural),
                None => rr.plural.clone(),
            };
            let unavailable = shared.unavailable.load(std::sync::atomic::Ordering::SeqCst);
            let fault = if unavailable {
                Some(crate::faults::FaultRule::new(503))
            } else {
                shared.faults.lock().ok().and_then(|mut f| {
                    f.check(verb, &res_label, rr.namespace.as_deref().unwrap_or(""))
                })
            };
            // Requests made as a ServiceAccount with a registered token are checked against the stored RBAC.
            let subject = shared
                .authz
                .lock()
                .ok()
                .and_then(|a| a.subject(req.header("authorization")).cloned());
            let denied = subject.and_then(|sa| {
                let st = shared.lock();
                crate::authz::check(&st, &sa, &rr, verb, &req.body).err()
            });
            let resp = match (denied, fault) {
                (Some(denied), _) => error_response(&denied),
                (None, Some(f)) => error_response(&f.error(
                    &rr.plural,
                    &rr.group,
                    rr.name.as_deref().unwrap_or(""),
                )),
                (None, None) => handlers::resource(&shared, &req, &rr, verb).await,
            };
            let scope = if rr.name.is_some() {
                "resource"
            } else if rr.namespace.is_some() {
                "namespace"
            } else {
                "cluster"
            };
            shared.metrics.record(Key {
                verb: metric_verb(verb, req.header("content-type")).into(),
                group: rr.group.clone(),
                version: rr.version.clone(),
                resource: rr.plural.clone(),
                subresource: rr.subresource.clone().unwrap_or_default(),
                scope: scope.into(),
                code: resp.status().as_u16(),
            });
            resp
        }
    };
    shared.metrics.log(RequestRecord {
        method: req.method.to_string(),
        uri: req.uri.to_string(),
        user_agent: req.header("user-agent").into(),
        content_type: req.header("content-type").into(),
        accept: req.header("accept").into(),
        code: resp.status().as_u16(),
    });
    resp
}

pub fn form_urlencoded_parse(q: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for pair in q.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(pct_decode(k), pct_decode(v));
    }
    out
}

fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(x) => {
                        out.push(x);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn non_resource(shared: &Arc<Shared>, req: &Req, path: &str) -> Response<Body> {
    if req.method != Method::GET {
        return error_response(&ApiError::MethodNotAllowed(format!(
            "the server does not allow this method on the requested resource ({path})"
        )));
    }
    let accept = req.header("accept");
    let st = shared.lock();
    let p = path.trim_end_matches('/');
    match p {
        "/version" => json_response(200, &discovery::version()),
        "/healthz" | "/readyz" | "/livez" => text(200, "ok".into(), "text/plain; charset=utf-8"),
        "/metrics" => text(
            200,
            shared.metrics.render(),
            "text/plain; version=0.0.4; charset=utf-8",
        ),
        "/api" => match discovery::wants_aggregated(accept) {
            Some(v) => aggregated_response(discovery::aggregated(&st.resources, true, v), v),
            None => json_response(200, &discovery::api_versions(&shared.addr.to_string())),
        },
        "/apis" => match discovery::wants_aggregated(accept) {
            Some(v) => aggregated_response(discovery::aggregated(&st.resources, false, v), v),
            None => json_response(200, &discovery::api_group_list(&st.resources)),
        },
        "/api/v1" => json_response(
            200,
            &discovery::api_resource_list(&st.resources, "", "v1").expect("core"),
        ),
        "/openapi/v3" => json_response(200, &openapi::root(&st.resources)),
        _ => {
            if let Some(key) = p.strip_prefix("/openapi/v3/") {
                return match openapi::gv_document(&st.resources, key) {
                    Some(d) => json_response(200, &d),
                    None => generic_404(),
                };
            }
            let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
            match segs.as_slice() {
                ["apis", g] => match discovery::api_group(&st.resources, g) {
                    Some(v) => json_response(200, &v),
                    None => generic_404(),
                },
                ["apis", g, v] => match discovery::api_resource_list(&st.resources, g, v) {
                    Some(v) => json_response(200, &v),
                    None => generic_404(),
                },
                _ => generic_404(),
            }
        }
    }
}

fn aggregated_response(v: Value, version: &str) -> Response<Body> {
    let ct = if version == "v2" {
        discovery::AGGREGATED_V2
    } else {
        discovery::AGGREGATED_V2BETA1
    };
    let mut r = json_response(200, &v);
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

/// The connections one server accepted, so that a restart can close all of them: a real API server that goes
/// away takes every connection with it, idle keep-alive ones included, and a client learns so at once. Without
/// this a connection that outlived the graceful drain would keep being served by the old server.
#[derive(Default)]
pub struct Connections {
    closed: std::sync::atomic::AtomicBool,
    live: Mutex<Vec<std::sync::Weak<futures::task::AtomicWaker>>>,
}

impl Connections {
    /// Fails every read and write of every connection accepted so far or later; hyper then ends each
    /// connection and the socket is closed (the client sees EOF or a reset, as after a real restart).
    pub fn close_all(&self) {
        self.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let live = std::mem::take(&mut *self.live.lock().unwrap_or_else(|e| e.into_inner()));
        for waker in live.iter().filter_map(std::sync::Weak::upgrade) {
            waker.wake();
        }
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|w| w.strong_count() > 0);
        live.len()
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A TCP listener whose accepted connections are tracked in [`Connections`].
pub struct ConnectionListener {
    listener: tokio::net::TcpListener,
    connections: Arc<Connections>,
}

impl ConnectionListener {
    pub fn new(listener: tokio::net::TcpListener, connections: Arc<Connections>) -> Self {
        ConnectionListener {
            listener,
            connections,
        }
    }
}

impl axum::serve::Listener for ConnectionListener {
    type Io = ServedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let waker = Arc::new(futures::task::AtomicWaker::new());
                    {
                        let mut live = self
                            .connections
                            .live
                            .lock()
                            .unwrap_or_else(|e| e.into_inner());
                        live.retain(|w| w.strong_count() > 0);
                        live.push(Arc::downgrade(&waker));
                    }
                    let io = ServedConnection {
                        stream,
                        connections: self.connections.clone(),
                        waker,
                    };
                    return (io, addr);
                }
                // Too many open files and the like: the listener stays usable, so wait a little and go on.
                Err(e) => {
                    tracing::debug!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// One accepted connection; every read and write fails once its server's connections are closed.
pub struct ServedConnection {
    stream: tokio::net::TcpStream,
    connections: Arc<Connections>,
    /// Woken by `close_all`, so a connection waiting for the client's next request notices at once.
    waker: Arc<futures::task::AtomicWaker>,
}

impl ServedConnection {
    fn check(&self, cx: &std::task::Context<'_>) -> std::io::Result<()> {
        self.waker.register(cx.waker());
        if self.connections.is_closed() {
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "API server restarting",
            ))
        } else {
            Ok(())
        }
    }
}

impl tokio::io::AsyncRead for ServedConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ServedConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        if let Err(e) = self.check(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if let Err(e) = self.check(cx) {
            return std::task::Poll::Ready(Err(e));
        }
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
