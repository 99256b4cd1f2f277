//! Discovery of the OpenShift router's ingress domain: create a probe Route, read the canonical hostname the
//! router gives it, delete it. Done once at start-up (upstream did it per registry and cached it forever).

use std::time::Duration;

use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::wait::await_condition;
use tracing::{debug, warn};

use super::run::RunOptions;
use crate::api::{Route, RouteSpec, RouteTargetReference};

const PROBE_NAME: &str = "quay-operator-domain-probe";

/// The ingress domain (`apps.example.com`), or `None` if the router did not answer in time or the probe Route
/// may not be created. An API server that cannot be asked (unreachable, restarting, 5xx, 429) is an error: discovery
/// fails and is tried again, instead of running without the domain until the operator's next restart.
pub async fn cluster_hostname(
    client: &Client,
    options: &RunOptions,
) -> Result<Option<String>, kube::Error> {
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
    match routes.create(&PostParams::default(), &probe).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(kube::Error::Api(s)) if s.code < 500 && s.code != 429 => {
            warn!(error = %s, "could not create the probe Route; registries need SERVER_HOSTNAME");
            return Ok(None);
        }
        Err(e) => return Err(e),
    }
    let admitted = async {
        loop {
            let admitted = await_condition(routes.clone(), PROBE_NAME, |r: Option<&Route>| {
                r.and_then(|r| r.status.as_ref())
                    .and_then(|s| s.ingress.as_ref())
                    .is_some_and(|i| !i.is_empty())
            });
            match admitted.await {
                Ok(route) => return route,
                // The watch broke (an API server restart): watch again, within the same time limit.
                Err(e) => {
                    debug!(error = %e, "watching the probe Route failed; watching again");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    };
    let route = tokio::time::timeout(Duration::from_secs(30), admitted)
        .await
        .ok()
        .flatten();
    let _ = routes.delete(PROBE_NAME, &DeleteParams::default()).await;
    Ok(route.and_then(router_domain))
}

/// The domain in an admitted probe Route's status.
fn router_domain(route: Route) -> Option<String> {
    let ingress = route.status?.ingress?.into_iter().next()?;
    let canonical = ingress["routerCanonicalHostname"].as_str()?.to_owned();
    let router = ingress["routerName"].as_str().unwrap_or_default();
    // OpenShift ≥ 4.8 reports `router-<name>.<domain>`.
    let domain = canonical
        .strip_prefix(&format!("router-{router}."))
        .unwrap_or(&canonical)
        .to_owned();
    Some(domain)
}
