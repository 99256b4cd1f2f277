//! Managed Ingresses where there is no Route API: `<reg>-quay` for `SERVER_HOSTNAME` and, when builds are
//! enabled with a `BUILDMAN_HOSTNAME`, `<reg>-quay-builder` for the build manager's gRPC endpoint.
//!
//! An Ingress cannot pass TLS through, so the ingress controller terminates TLS with the registry's certificate
//! and re-encrypts to Quay, which serves the same certificate on its `https` (and `grpc`) port: Quay only
//! listens in TLS once it has a certificate. Telling the controller to speak HTTPS/gRPC-over-TLS to the backend,
//! to allow unlimited blob uploads and to wait 30 minutes is class-specific; the annotations are ingress-nginx's
//! (the most common class) and the user adds other classes' equivalents through the route component's
//! annotation overrides.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::context::{RenderContext, TlsSource};
use super::meta::{self, QUAY_COMPONENT};
use super::object::DesiredObject;
use super::route::{builder_host, quay_will_serve_tls, registry_host, tls_secret_ref};

/// ingress-nginx: the protocol spoken to the Service (`HTTPS`, `HTTP`, `GRPCS`, `GRPC`).
pub const BACKEND_PROTOCOL_ANNOTATION: &str = "nginx.ingress.kubernetes.io/backend-protocol";
/// ingress-nginx: largest request body; `0` is unlimited (image layers are large).
pub const PROXY_BODY_SIZE_ANNOTATION: &str = "nginx.ingress.kubernetes.io/proxy-body-size";
/// ingress-nginx: seconds to wait on the backend (the Route's 30 minutes).
pub const PROXY_READ_TIMEOUT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/proxy-read-timeout";
pub const PROXY_SEND_TIMEOUT_ANNOTATION: &str = "nginx.ingress.kubernetes.io/proxy-send-timeout";
const PROXY_TIMEOUT_SECONDS: &str = "1800";

/// Suffix of the Secret holding the bundle's `ssl.cert`/`ssl.key` for the ingress controller.
pub const INGRESS_TLS_SECRET_SUFFIX: &str = "quay-ingress-tls";

pub fn render(ctx: &RenderContext<'_>, class: Option<String>, out: &mut Vec<DesiredObject>) {
    let tls_secret = match (&ctx.tls, tls_secret_ref(ctx)) {
        (_, Some(name)) => Some(name),
        // The bundle's pair is not a Secret an ingress controller can read: copy it into one.
        (TlsSource::Bundle { cert, key }, None) => {
            out.push(DesiredObject::Secret(bundle_tls_secret(ctx, cert, key)));
            Some(ctx.object_name(INGRESS_TLS_SECRET_SUFFIX))
        }
        _ => None,
    };
    let encrypted_backend = quay_will_serve_tls(ctx);
    let Some(host) = registry_host(ctx) else {
        // Validation refuses a managed route without SERVER_HOSTNAME on this path.
        return;
    };
    let mut registry_annotations = BTreeMap::from([(
        BACKEND_PROTOCOL_ANNOTATION,
        if encrypted_backend { "HTTPS" } else { "HTTP" },
    )]);
    registry_annotations.insert(PROXY_BODY_SIZE_ANNOTATION, "0");
    out.push(DesiredObject::Ingress(ingress(
        ctx,
        IngressParts {
            suffix: "quay",
            component_label: "quay-app-route",
            host,
            port: if encrypted_backend { "https" } else { "http" },
            class: class.clone(),
            tls_secret: tls_secret.clone(),
            annotations: registry_annotations,
        },
    )));
    if let Some(host) = builder_host(ctx) {
        out.push(DesiredObject::Ingress(ingress(
            ctx,
            IngressParts {
                suffix: "quay-builder",
                component_label: "quay-builder-route",
                host,
                port: "grpc",
                class,
                tls_secret,
                annotations: BTreeMap::from([(
                    BACKEND_PROTOCOL_ANNOTATION,
                    if encrypted_backend { "GRPCS" } else { "GRPC" },
                )]),
            },
        )));
    }
}

/// What differs between the registry's and the builder's Ingress.
struct IngressParts {
    suffix: &'static str,
    component_label: &'static str,
    host: String,
    /// Port name of the `<reg>-quay-app` Service.
    port: &'static str,
    class: Option<String>,
    tls_secret: Option<String>,
    annotations: BTreeMap<&'static str, &'static str>,
}

fn ingress(ctx: &RenderContext<'_>, parts: IngressParts) -> Ingress {
    let mut metadata = meta::object_meta(ctx, parts.suffix, parts.component_label);
    let annotations = metadata.annotations.get_or_insert_with(BTreeMap::new);
    annotations.insert(QUAY_COMPONENT.to_owned(), "route".to_owned());
    for (k, v) in parts.annotations.into_iter().chain([
        (PROXY_READ_TIMEOUT_ANNOTATION, PROXY_TIMEOUT_SECONDS),
        (PROXY_SEND_TIMEOUT_ANNOTATION, PROXY_TIMEOUT_SECONDS),
    ]) {
        annotations.insert(k.to_owned(), v.to_owned());
    }
    let backend = IngressBackend {
        service: Some(IngressServiceBackend {
            name: ctx.object_name("quay-app"),
            port: Some(ServiceBackendPort {
                name: Some(parts.port.to_owned()),
                number: None,
            }),
        }),
        resource: None,
    };
    Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: parts.class,
            tls: parts.tls_secret.map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![parts.host.clone()]),
                    secret_name: Some(secret),
                }]
            }),
            rules: Some(vec![IngressRule {
                host: Some(parts.host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".to_owned()),
                        path_type: "Prefix".to_owned(),
                        backend,
                    }],
                }),
            }]),
            default_backend: None,
        }),
        status: None,
    }
}

/// `<reg>-quay-ingress-tls`: the bundle's certificate as a `kubernetes.io/tls` Secret.
fn bundle_tls_secret(ctx: &RenderContext<'_>, cert: &str, key: &str) -> Secret {
    Secret {
        metadata: meta::object_meta(ctx, INGRESS_TLS_SECRET_SUFFIX, "quay-app-route"),
        type_: Some("kubernetes.io/tls".to_owned()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(cert.as_bytes().to_vec())),
            ("tls.key".to_owned(), ByteString(key.as_bytes().to_vec())),
        ])),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ComponentKind, SecretReference};
    use crate::render::ExternalTls;
    use crate::render::testing::{Fixture, object};

    const CERT: &str = include_str!("../../../../examples/tls/ssl.cert");
    const KEY: &str = include_str!("../../../../examples/tls/ssl.key");

    /// Plain Kubernetes (no Route API) with SERVER_HOSTNAME and no certificate yet.
    pub(crate) fn plain() -> Fixture {
        let mut f = Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com");
        f.cluster.routes = false;
        f.cluster.cluster_hostname = None;
        f
    }

    /// Plain Kubernetes, route declared managed, the example certificate for quay.example.com in the bundle.
    pub(crate) fn plain_kubernetes() -> Fixture {
        plain()
            .bundle_file("ssl.cert", CERT)
            .bundle_file("ssl.key", KEY)
            .component(ComponentKind::Route, true, None)
            .component(ComponentKind::Tls, false, None)
    }

    fn ingress_of(f: &Fixture, name: &str) -> Ingress {
        match object(&f.render(), "Ingress", name) {
            DesiredObject::Ingress(i) => i,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bundle_certificate_is_copied_for_the_ingress_controller_and_quay_is_reencrypted_to() {
        let mut f = plain_kubernetes();
        f.registry.metadata.annotations = Some(BTreeMap::from([(
            crate::render::route::INGRESS_CLASS_ANNOTATION.to_owned(),
            "internal".to_owned(),
        )]));
        let rendered = f.render();
        let ingress = ingress_of(&f, "reg-quay");
        let spec = ingress.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("internal"));
        let tls = &spec.tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("reg-quay-ingress-tls"));
        assert_eq!(tls.hosts, Some(vec!["quay.example.com".to_owned()]));
        let rule = &spec.rules.unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("quay.example.com"));
        let backend = rule.http.as_ref().unwrap().paths[0]
            .backend
            .service
            .clone()
            .unwrap();
        assert_eq!(backend.name, "reg-quay-app");
        assert_eq!(backend.port.unwrap().name.as_deref(), Some("https"));
        let annotations = ingress.metadata.annotations.unwrap();
        assert_eq!(annotations[BACKEND_PROTOCOL_ANNOTATION], "HTTPS");
        assert_eq!(annotations[PROXY_BODY_SIZE_ANNOTATION], "0");
        assert_eq!(annotations["quay-component"], "route");
        let DesiredObject::Secret(secret) = object(&rendered, "Secret", "reg-quay-ingress-tls")
        else {
            unreachable!()
        };
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        assert_eq!(secret.data.unwrap()["tls.crt"].0, CERT.as_bytes());
        // No Routes on plain Kubernetes, no builder Ingress without BUILDMAN_HOSTNAME.
        assert!(rendered.objects.iter().all(|o| o.kind() != "Route"));
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name() == "reg-quay-builder")
        );
    }

    #[test]
    fn secret_ref_is_the_ingress_tls_secret_and_builders_get_a_grpcs_ingress() {
        let mut f = plain()
            .config_line("BUILDMAN_HOSTNAME: quay.example.com:55443")
            .component(ComponentKind::Route, true, None);
        let components = f.registry.spec.components.as_mut().unwrap();
        components.push(crate::api::Component {
            secret_ref: Some(SecretReference {
                name: "served-cert".to_owned(),
            }),
            ..crate::api::Component::new(ComponentKind::Tls, false)
        });
        f.cluster.external_tls = Some(ExternalTls {
            name: "served-cert".to_owned(),
            type_: "kubernetes.io/tls".to_owned(),
            cert: Some(CERT.to_owned()),
            key: Some(KEY.to_owned()),
        });
        let rendered = f.render();
        assert!(
            rendered
                .objects
                .iter()
                .all(|o| o.name() != "reg-quay-ingress-tls"),
            "no copy of a Secret the user owns"
        );
        let registry = ingress_of(&f, "reg-quay");
        assert_eq!(
            registry.spec.unwrap().tls.unwrap()[0]
                .secret_name
                .as_deref(),
            Some("served-cert")
        );
        let builder = ingress_of(&f, "reg-quay-builder");
        let spec = builder.spec.unwrap();
        assert_eq!(
            spec.rules.as_ref().unwrap()[0].host.as_deref(),
            Some("quay.example.com")
        );
        assert_eq!(
            spec.rules.unwrap()[0].http.as_ref().unwrap().paths[0]
                .backend
                .service
                .as_ref()
                .unwrap()
                .port
                .as_ref()
                .unwrap()
                .name
                .as_deref(),
            Some("grpc")
        );
        assert_eq!(
            builder.metadata.annotations.unwrap()[BACKEND_PROTOCOL_ANNOTATION],
            "GRPCS"
        );
        assert_eq!(
            builder.metadata.labels.unwrap()["quay-component"],
            "quay-builder-route"
        );
    }

    #[test]
    fn route_overrides_reach_the_ingress() {
        let f = plain_kubernetes().component(
            ComponentKind::Route,
            true,
            Some(crate::api::Override {
                annotations: Some(BTreeMap::from([(
                    "traefik.ingress.kubernetes.io/router.tls".to_owned(),
                    "true".to_owned(),
                )])),
                ..Default::default()
            }),
        );
        let ingress = ingress_of(&f, "reg-quay");
        assert_eq!(
            ingress.metadata.annotations.unwrap()["traefik.ingress.kubernetes.io/router.tls"],
            "true"
        );
    }
}
