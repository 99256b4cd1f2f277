//! A Gateway API HTTPRoute `<reg>-quay` for `SERVER_HOSTNAME`, attached to the Gateway the registry names, where
//! there is no Route API.
//!
//! TLS is the Gateway's business: its listener terminates with the certificate its owner configured (a
//! cert-manager Certificate of this registry can fill it). The route sends traffic to Quay's `https` Service
//! port when Quay serves TLS itself, which needs the Gateway to originate TLS to the backend (a
//! BackendTLSPolicy the user adds; see docs/exposure.md). Builders speak gRPC and are not exposed this way.

use std::collections::BTreeMap;

use super::context::RenderContext;
use super::meta::{self, QUAY_COMPONENT};
use super::object::DesiredObject;
use super::route::{GatewayRef, quay_will_serve_tls, registry_host};
use crate::api::{GatewayParentReference, HTTPBackendRef, HTTPRoute, HTTPRouteRule, HTTPRouteSpec};

const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

pub fn render(ctx: &RenderContext<'_>, gateway: &GatewayRef, out: &mut Vec<DesiredObject>) {
    let Some(host) = registry_host(ctx) else {
        // Validation refuses a managed route without SERVER_HOSTNAME on this path.
        return;
    };
    out.push(DesiredObject::HTTPRoute(http_route(ctx, gateway, host)));
}

fn http_route(ctx: &RenderContext<'_>, gateway: &GatewayRef, host: String) -> HTTPRoute {
    let mut metadata = meta::object_meta(ctx, "quay", "quay-app-route");
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(QUAY_COMPONENT.to_owned(), "route".to_owned());
    // Service ports of `<reg>-quay-app`: https 443 → 8443, http 80 → 8080.
    let port = if quay_will_serve_tls(ctx) { 443 } else { 80 };
    HTTPRoute {
        metadata,
        spec: HTTPRouteSpec {
            parent_refs: vec![GatewayParentReference {
                group: Some(GATEWAY_GROUP.to_owned()),
                kind: Some("Gateway".to_owned()),
                namespace: Some(gateway.namespace.clone()),
                name: gateway.name.clone(),
                section_name: gateway.section_name.clone(),
            }],
            hostnames: vec![host],
            rules: vec![HTTPRouteRule {
                backend_refs: vec![HTTPBackendRef {
                    name: ctx.object_name("quay-app"),
                    port: Some(port),
                }],
                timeouts: None,
            }],
        },
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::api::ComponentKind;
    use crate::render::DesiredObject;
    use crate::render::route::GATEWAY_ANNOTATION;
    use crate::render::testing::{Fixture, object};

    const CERT: &str = include_str!("../../../../examples/tls/ssl.cert");
    const KEY: &str = include_str!("../../../../examples/tls/ssl.key");

    #[test]
    fn http_route_attaches_to_the_named_gateway_and_reaches_quay_over_https() {
        let mut f = Fixture::new()
            .config_line("SERVER_HOSTNAME: quay.example.com:443")
            .bundle_file("ssl.cert", CERT)
            .bundle_file("ssl.key", KEY)
            .component(ComponentKind::Route, true, None)
            .component(ComponentKind::Tls, false, None);
        f.cluster.routes = false;
        f.cluster.cluster_hostname = None;
        f.cluster.gateway_api = true;
        f.registry.metadata.annotations = Some(BTreeMap::from([(
            GATEWAY_ANNOTATION.to_owned(),
            "infra/public".to_owned(),
        )]));
        let rendered = f.render();
        let DesiredObject::HTTPRoute(route) = object(&rendered, "HTTPRoute", "reg-quay") else {
            unreachable!()
        };
        let parent = &route.spec.parent_refs[0];
        assert_eq!(
            (parent.namespace.as_deref(), parent.name.as_str()),
            (Some("infra"), "public")
        );
        assert_eq!(parent.section_name, None);
        assert_eq!(route.spec.hostnames, vec!["quay.example.com".to_owned()]);
        let backend = &route.spec.rules[0].backend_refs[0];
        assert_eq!(
            (backend.name.as_str(), backend.port),
            ("reg-quay-app", Some(443))
        );
        assert!(
            rendered.objects.iter().all(|o| o.kind() != "Ingress"),
            "HTTPRoute instead of an Ingress"
        );
    }
}
