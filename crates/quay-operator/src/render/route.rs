//! The `route` component: the OpenShift Routes that expose Quay (`<reg>-quay`) and its build manager
//! (`<reg>-quay-builder`).
//!
//! With managed tls the router terminates TLS (edge) and forwards plain HTTP; when Quay serves its own certificate
//! the router passes TLS through to Quay's `https` port. Routes are only rendered when the cluster serves the Route
//! API: on plain Kubernetes the user exposes Quay himself. The route component's label and annotation overrides
//! are applied with every other override, in [`super::overrides`].

use std::collections::BTreeMap;

use super::context::{RenderContext, host_without_port};
use super::meta::{self, QUAY_COMPONENT};
use super::object::DesiredObject;
use crate::api::{ComponentKind, Route, RoutePort, RouteSpec, RouteTargetReference, RouteTls};

/// The router waits this long for a response: blob uploads and large manifest operations are slow.
pub const ROUTE_TIMEOUT_ANNOTATION: &str = "haproxy.router.openshift.io/timeout";
const ROUTE_TIMEOUT: &str = "30m";

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    if !ctx.managed(ComponentKind::Route) || !ctx.input.cluster.routes {
        return;
    }
    let passthrough = ctx.quay_serves_tls();
    let registry_host = Some(host_without_port(&ctx.server_hostname))
        .filter(|h| !h.is_empty())
        .map(str::to_owned);
    // Without BUILDMAN_HOSTNAME the router assigns the builder Route a default host.
    let builder_host = ctx
        .buildman_hostname
        .as_deref()
        .map(host_without_port)
        .filter(|h| !h.is_empty())
        .map(str::to_owned);

    let registry_port = if passthrough { "https" } else { "http" };
    out.push(DesiredObject::Route(route(
        ctx,
        "quay",
        "quay-app-route",
        registry_host,
        registry_port,
        passthrough,
    )));
    // Builders speak gRPC on the same port whichever way TLS is terminated.
    out.push(DesiredObject::Route(route(
        ctx,
        "quay-builder",
        "quay-builder-route",
        builder_host,
        "grpc",
        passthrough,
    )));
}

fn route(
    ctx: &RenderContext<'_>,
    suffix: &str,
    component_label: &str,
    host: Option<String>,
    target_port: &str,
    passthrough: bool,
) -> Route {
    let mut metadata = meta::object_meta(ctx, suffix, component_label);
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    // Upstream labels the Routes by their own name but annotates them with the component kind.
    annotations.insert(QUAY_COMPONENT.to_owned(), "route".to_owned());
    annotations.insert(
        ROUTE_TIMEOUT_ANNOTATION.to_owned(),
        ROUTE_TIMEOUT.to_owned(),
    );
    let termination = if passthrough { "passthrough" } else { "edge" };
    Route {
        metadata,
        spec: RouteSpec {
            host,
            to: RouteTargetReference {
                kind: "Service".to_owned(),
                name: ctx.object_name("quay-app"),
                weight: None,
            },
            port: Some(RoutePort {
                target_port: target_port.to_owned(),
            }),
            tls: Some(RouteTls {
                termination: termination.to_owned(),
                insecure_edge_termination_policy: Some("Redirect".to_owned()),
            }),
        },
        status: None,
    }
}
