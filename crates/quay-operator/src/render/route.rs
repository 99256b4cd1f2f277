//! The `route` component: how Quay (`<reg>-quay`) and its build manager (`<reg>-quay-builder`) are reached from
//! outside the cluster.
//!
//! On OpenShift these are Routes. With managed tls the router terminates TLS (edge) and forwards plain HTTP; when
//! Quay serves its own certificate the router passes TLS through to Quay's `https` port. Where the Route API is
//! absent, a route the user declares managed is exposed with an Ingress ([`super::ingress`]) or, when the
//! registry names a Gateway, a Gateway API HTTPRoute ([`super::gateway`]); a cert-manager Certificate
//! ([`super::certificate`]) can fill the tls component's `secretRef` Secret. The exposure is chosen with
//! registry annotations (the CRD stays upstream's), parsed here. The route component's label and annotation
//! overrides are applied with every other override, in [`super::overrides`].

use std::collections::BTreeMap;

use super::context::{RenderContext, host_without_port};
use super::meta::{self, QUAY_COMPONENT};
use super::object::DesiredObject;
use crate::api::{
    ComponentKind, QuayRegistry, Route, RoutePort, RouteSpec, RouteTargetReference, RouteTls,
};

/// The router waits this long for a response: blob uploads and large manifest operations are slow.
pub const ROUTE_TIMEOUT_ANNOTATION: &str = "haproxy.router.openshift.io/timeout";
const ROUTE_TIMEOUT: &str = "30m";

/// Registry annotation: the IngressClass of the managed Ingress (else the cluster's default class).
pub const INGRESS_CLASS_ANNOTATION: &str = "quay-operator.rs/ingress-class";
/// Registry annotation: `<namespace>/<name>[/<sectionName>]` of the Gateway an HTTPRoute attaches to.
pub const GATEWAY_ANNOTATION: &str = "quay-operator.rs/gateway";
/// Registry annotation: `Issuer/<name>` or `ClusterIssuer/<name>` that issues the certificate.
pub const CERT_MANAGER_ISSUER_ANNOTATION: &str = "quay-operator.rs/cert-manager-issuer";

/// A Gateway named by [`GATEWAY_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayRef {
    pub namespace: String,
    pub name: String,
    pub section_name: Option<String>,
}

impl std::fmt::Display for GatewayRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)?;
        if let Some(section) = &self.section_name {
            write!(f, "/{section}")?;
        }
        Ok(())
    }
}

/// A cert-manager issuer named by [`CERT_MANAGER_ISSUER_ANNOTATION`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRef {
    /// `Issuer` or `ClusterIssuer`.
    pub kind: String,
    pub name: String,
}

/// An exposure annotation whose value cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnotationError {
    #[error(
        "annotation {GATEWAY_ANNOTATION}: {value:?} is not <namespace>/<name> or \
         <namespace>/<name>/<sectionName> (lowercase DNS names)"
    )]
    Gateway { value: String },
    #[error(
        "annotation {CERT_MANAGER_ISSUER_ANNOTATION}: {value:?} is not Issuer/<name> or \
         ClusterIssuer/<name>"
    )]
    Issuer { value: String },
    #[error("annotation {INGRESS_CLASS_ANNOTATION}: {value:?} is not a valid IngressClass name")]
    IngressClass { value: String },
}

fn annotation<'r>(registry: &'r QuayRegistry, key: &str) -> Option<&'r str> {
    registry
        .metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A lowercase RFC 1123 subdomain (names of Kubernetes objects).
fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// The IngressClass the registry asks for.
pub fn ingress_class(registry: &QuayRegistry) -> Result<Option<String>, AnnotationError> {
    match annotation(registry, INGRESS_CLASS_ANNOTATION) {
        None => Ok(None),
        Some(v) if is_dns_subdomain(v) => Ok(Some(v.to_owned())),
        Some(v) => Err(AnnotationError::IngressClass {
            value: v.to_owned(),
        }),
    }
}

/// The Gateway the registry's HTTPRoute attaches to, if it names one.
pub fn gateway(registry: &QuayRegistry) -> Result<Option<GatewayRef>, AnnotationError> {
    let Some(value) = annotation(registry, GATEWAY_ANNOTATION) else {
        return Ok(None);
    };
    let bad = || AnnotationError::Gateway {
        value: value.to_owned(),
    };
    let parts: Vec<&str> = value.split('/').collect();
    if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| is_dns_subdomain(p)) {
        return Err(bad());
    }
    Ok(Some(GatewayRef {
        namespace: parts[0].to_owned(),
        name: parts[1].to_owned(),
        section_name: parts.get(2).map(|s| (*s).to_owned()),
    }))
}

/// The cert-manager issuer the registry asks for, if any.
pub fn issuer(registry: &QuayRegistry) -> Result<Option<IssuerRef>, AnnotationError> {
    let Some(value) = annotation(registry, CERT_MANAGER_ISSUER_ANNOTATION) else {
        return Ok(None);
    };
    match value.split_once('/') {
        Some((kind @ ("Issuer" | "ClusterIssuer"), name)) if is_dns_subdomain(name) => {
            Ok(Some(IssuerRef {
                kind: kind.to_owned(),
                name: name.to_owned(),
            }))
        }
        _ => Err(AnnotationError::Issuer {
            value: value.to_owned(),
        }),
    }
}

/// How a managed route exposes Quay on this cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exposure {
    /// OpenShift Routes.
    Routes,
    /// A Gateway API HTTPRoute attached to this Gateway.
    Gateway(GatewayRef),
    /// A `networking.k8s.io/v1` Ingress of this class (`None`: the cluster's default class).
    Ingress(Option<String>),
}

/// The exposure of a registry whose route is managed. Annotation errors are validation's to report; here they
/// fall back to the Ingress the annotation would otherwise have refined.
pub fn exposure(registry: &QuayRegistry, routes_served: bool) -> Exposure {
    if routes_served {
        return Exposure::Routes;
    }
    match gateway(registry) {
        Ok(Some(gateway)) => Exposure::Gateway(gateway),
        _ => Exposure::Ingress(ingress_class(registry).ok().flatten()),
    }
}

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    super::certificate::render(ctx, out);
    if !ctx.managed(ComponentKind::Route) {
        return;
    }
    match exposure(ctx.input.registry, ctx.input.cluster.routes) {
        Exposure::Routes => render_routes(ctx, out),
        Exposure::Gateway(gateway) => super::gateway::render(ctx, &gateway, out),
        Exposure::Ingress(class) => super::ingress::render(ctx, class, out),
    }
}

/// Whether Quay serves TLS itself once everything is in place: a certificate is at hand, or cert-manager is
/// about to write one into the `secretRef` Secret (so the backends do not flip when it arrives).
pub fn quay_will_serve_tls(ctx: &RenderContext<'_>) -> bool {
    ctx.quay_serves_tls() || super::certificate::requested(ctx).is_some()
}

/// The `kubernetes.io/tls` Secret the registry's certificate is in, when it is one the user (or cert-manager)
/// owns: the tls component's `secretRef`.
pub fn tls_secret_ref(ctx: &RenderContext<'_>) -> Option<String> {
    let tls = ctx.component(ComponentKind::Tls);
    tls.secret_ref
        .as_ref()
        .filter(|_| !tls.managed)
        .map(|r| r.name.clone())
        .filter(|n| !n.is_empty())
}

/// The registry host (`SERVER_HOSTNAME` without port), if set.
pub fn registry_host(ctx: &RenderContext<'_>) -> Option<String> {
    Some(host_without_port(&ctx.server_hostname))
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

/// The build manager host (`BUILDMAN_HOSTNAME` without port), if set.
pub fn builder_host(ctx: &RenderContext<'_>) -> Option<String> {
    ctx.buildman_hostname
        .as_deref()
        .map(host_without_port)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

fn render_routes(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    // A cert-manager certificate about to be issued counts: the Route does not flip when it arrives.
    let passthrough = quay_will_serve_tls(ctx);
    let registry_host = registry_host(ctx);
    // Without BUILDMAN_HOSTNAME the router assigns the builder Route a default host.
    let builder_host = builder_host(ctx);

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

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(annotations: &[(&str, &str)]) -> QuayRegistry {
        let mut r = QuayRegistry::new("r", Default::default());
        r.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        r
    }

    #[test]
    fn gateway_annotation_names_namespace_name_and_optional_section() {
        let r = registry(&[(GATEWAY_ANNOTATION, "infra/public/https")]);
        let g = gateway(&r).unwrap().unwrap();
        assert_eq!(
            g,
            GatewayRef {
                namespace: "infra".into(),
                name: "public".into(),
                section_name: Some("https".into())
            }
        );
        assert_eq!(g.to_string(), "infra/public/https");
        let r = registry(&[(GATEWAY_ANNOTATION, "infra/public")]);
        assert_eq!(gateway(&r).unwrap().unwrap().section_name, None);
        for bad in [
            "public",
            "infra/",
            "a/b/c/d",
            "Infra/public",
            "infra/pub lic",
        ] {
            let r = registry(&[(GATEWAY_ANNOTATION, bad)]);
            assert_eq!(
                gateway(&r),
                Err(AnnotationError::Gateway { value: bad.into() }),
                "{bad}"
            );
        }
    }

    #[test]
    fn issuer_annotation_is_kind_slash_name() {
        let r = registry(&[(CERT_MANAGER_ISSUER_ANNOTATION, "ClusterIssuer/letsencrypt")]);
        assert_eq!(
            issuer(&r).unwrap(),
            Some(IssuerRef {
                kind: "ClusterIssuer".into(),
                name: "letsencrypt".into()
            })
        );
        for bad in ["letsencrypt", "Secret/x", "Issuer/", "issuer/x"] {
            let r = registry(&[(CERT_MANAGER_ISSUER_ANNOTATION, bad)]);
            assert!(issuer(&r).is_err(), "{bad}");
        }
    }

    #[test]
    fn exposure_prefers_routes_then_gateway_then_ingress() {
        let r = registry(&[
            (GATEWAY_ANNOTATION, "infra/public"),
            (INGRESS_CLASS_ANNOTATION, "nginx"),
        ]);
        assert_eq!(exposure(&r, true), Exposure::Routes);
        assert!(matches!(exposure(&r, false), Exposure::Gateway(_)));
        let r = registry(&[(INGRESS_CLASS_ANNOTATION, "nginx")]);
        assert_eq!(exposure(&r, false), Exposure::Ingress(Some("nginx".into())));
        assert_eq!(exposure(&registry(&[]), false), Exposure::Ingress(None));
    }
}
