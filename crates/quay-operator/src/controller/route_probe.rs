//! Discovery of the OpenShift router's ingress domain: create a probe Route, read the canonical hostname the
//! router gives it, delete it. Done once at start-up (upstream did it per registry and cached it forever).

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use tracing::warn;

use super::run::RunOptions;
use crate::api::{Route, RouteSpec, RouteTargetReference};

const PROBE_NAME: &str = "quay-operator-domain-probe";

/// The ingress domain (`apps.example.com`), or `None` if the router did not answer in time.
pub async fn cluster_hostname(client: &Client, options: &RunOptions) -> Option<String> {
    let namespace = options
        .settings
        .operator_namespace
        .clone()
        .or_else(|| options.namespaces.first().cloned())
        .unwrap_or_else(|| "default".to_owned());
    let routes: Api<Route> = Api::namespaced(client.clone(), &namespace);
    let probe = Route {
        metadata: kube::api::ObjectMeta {
            name: Some(PROBE_NAME.to_owned()),
            ..Default::default()
        },
        spec: RouteSpec {
            to: RouteTargetReference {
                kind: "Service".to_owned(),
                name: "none".to_owned(),
                weight: None,
            },
            ..Default::default()
        },
        status: None,
    };
    if let Err(e) = routes.create(&PostParams::default(), &probe).await
        && !matches!(&e, kube::Error::Api(s) if s.code == 409)
    {
        warn!(error = %e, "could not create the probe Route; registries need SERVER_HOSTNAME");
        return None;
    }
    let admitted = await_condition(routes.clone(), PROBE_NAME, |r: Option<&Route>| {
        r.and_then(|r| r.status.as_ref())
            .and_then(|s| s.ingress.as_ref())
            .is_some_and(|i| !i.is_empty())
    });
    let route = tokio::time::timeout(Duration::from_secs(30), admitted)
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    let _ = routes.delete(PROBE_NAME, &DeleteParams::default()).await;
    let ingress = route?.status?.ingress?.into_iter().next()?;
    let canonical = ingress["routerCanonicalHostname"].as_str()?.to_owned();
    let router = ingress["routerName"].as_str().unwrap_or_default();
    // OpenShift ≥ 4.8 reports `router-<name>.<domain>`.
    let domain = canonical
        .strip_prefix(&format!("router-{router}."))
        .unwrap_or(&canonical)
        .to_owned();
    Some(domain)
}
