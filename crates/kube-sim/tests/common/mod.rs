//! Shared helpers for kube-sim's integration tests: raw HTTP calls through the kube-rs
//! client's connection stack, a line reader for watch streams, fixtures.
#![allow(dead_code)]

use http_body_util::BodyExt;
use kube_sim::{Options, Simulator};
use serde_json::{Value, json};
use std::time::Duration;

pub const T: Duration = Duration::from_secs(20);

pub async fn sim() -> Simulator {
    Simulator::start(Options::default())
        .await
        .expect("start simulator")
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

fn build(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> http::Request<kube::client::Body> {
    let mut b = http::Request::builder().method(method).uri(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(kube::client::Body::from(
        body.unwrap_or_default().into_bytes(),
    ))
    .expect("request")
}

/// One request; the whole body is read.
pub async fn call(
    sim: &Simulator,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Resp {
    let c = sim.client_without_retries();
    let mut hs: Vec<(&str, &str)> = headers.to_vec();
    if body.is_some()
        && !hs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        hs.push(("content-type", "application/json"));
    }
    let res = tokio::time::timeout(
        T,
        c.send(build(method, path, &hs, body.map(|b| b.to_string()))),
    )
    .await
    .expect("timeout")
    .expect("send");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let bytes = res.into_body().collect_bytes().await.expect("body");
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub async fn get(sim: &Simulator, path: &str) -> Resp {
    call(sim, "GET", path, &[], None).await
}

pub async fn post(sim: &Simulator, path: &str, body: Value) -> Resp {
    call(sim, "POST", path, &[], Some(body)).await
}

pub async fn patch(sim: &Simulator, path: &str, ct: &str, body: Value) -> Resp {
    call(sim, "PATCH", path, &[("content-type", ct)], Some(body)).await
}

/// An open watch stream read line by line.
pub struct Watch {
    body: kube::client::Body,
    buf: Vec<u8>,
    pub status: u16,
}

impl Watch {
    pub async fn open(sim: &Simulator, path: &str) -> Watch {
        let c = sim.client_without_retries();
        let res = c.send(build("GET", path, &[], None)).await.expect("watch");
        Watch {
            status: res.status().as_u16(),
            body: res.into_body(),
            buf: vec![],
        }
    }

    /// Next event line, or None when the server closed the stream (or on timeout).
    pub async fn next(&mut self) -> Option<Value> {
        self.next_within(T).await
    }

    pub async fn next_within(&mut self, d: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + d;
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(serde_json::from_slice(&line).expect("watch line is JSON"));
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()??;
            if let Ok(frame) = frame
                && let Ok(data) = frame.into_data()
            {
                self.buf.extend_from_slice(&data);
            } else {
                return None;
            }
        }
    }

    /// Skip BOOKMARKs.
    pub async fn next_event(&mut self) -> Option<Value> {
        loop {
            let e = self.next().await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

pub fn cm(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels}, "data": {"k": "v"}})
}

pub fn rv_of(v: &Value) -> u64 {
    v["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .parse()
        .expect("numeric rv")
}

/// A CRD with a status subresource, a preserve-unknown-fields map, a default and descriptions.
pub fn widget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wd"]},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {
                    "type": "object", "description": "A Widget is a test kind.",
                    "properties": {
                        "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                        "spec": {"type": "object", "description": "Desired state of the widget.", "properties": {
                            "size": {"type": "integer", "description": "How big the widget is.", "default": 3},
                            "color": {"type": "string", "description": "Colour of the widget."},
                            "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                            "items": {"type": "array", "items": {"type": "string"}}
                        }},
                        "status": {"type": "object", "properties": {
                            "ready": {"type": "boolean"},
                            "conditions": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"],
                                "items": {"type": "object", "properties": {"type": {"type": "string"}, "status": {"type": "string"}}}}
                        }}
                    }
                }}
            }]
        }
    })
}

pub fn widget(name: &str) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": {"color": "red"}})
}

/// Wait (event-driven, see `Simulator::wait_until`) until `f` holds; the timeout is a safety net.
pub async fn eventually<F: Fn() -> bool>(sim: &Simulator, what: &str, f: F) {
    assert!(sim.wait_until(T, f).await, "timed out waiting for {what}");
}
