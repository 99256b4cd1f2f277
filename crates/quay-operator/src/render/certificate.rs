//! A cert-manager Certificate `<reg>-quay-tls` for `SERVER_HOSTNAME` (and `BUILDMAN_HOSTNAME`), when the registry
//! names an issuer. cert-manager writes the key pair into the tls component's `secretRef` Secret, so the
//! certificate takes the same path as any external TLS Secret: validated, hashed onto the pod templates, and a
//! renewal (new data) restarts the pods that serve it.
//!
//! Until the Secret is issued the registry waits for it ([`pending`]): the Certificate is applied, Quay's
//! workloads and configuration are not.

use std::collections::BTreeMap;

use super::context::{ClusterFacts, RenderContext};
use super::meta::{self, QUAY_COMPONENT};
use super::object::DesiredObject;
use super::route::{self, IssuerRef, builder_host, registry_host, tls_secret_ref};
use crate::api::{
    Certificate, CertificateIssuerRef, CertificatePrivateKey, CertificateSpec, ComponentKind,
    QuayRegistry,
};

/// Suffix of the Certificate's name.
pub const CERTIFICATE_SUFFIX: &str = "quay-tls";

/// The issuer and the Secret to fill, when the registry asks cert-manager for its certificate and the cluster
/// serves cert-manager's API.
pub fn requested(ctx: &RenderContext<'_>) -> Option<(IssuerRef, String)> {
    if !ctx.input.cluster.cert_manager {
        return None;
    }
    let issuer = route::issuer(ctx.input.registry).ok().flatten()?;
    Some((issuer, tls_secret_ref(ctx)?))
}

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    let Some((issuer, secret_name)) = requested(ctx) else {
        return;
    };
    let dns_names: Vec<String> = registry_host(ctx)
        .into_iter()
        .chain(builder_host(ctx))
        .collect();
    if dns_names.is_empty() {
        // Validation refuses an issuer without SERVER_HOSTNAME.
        return;
    }
    let mut metadata = meta::object_meta(ctx, CERTIFICATE_SUFFIX, "quay-tls");
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(QUAY_COMPONENT.to_owned(), "route".to_owned());
    out.push(DesiredObject::Certificate(Certificate {
        metadata,
        spec: CertificateSpec {
            secret_name,
            dns_names,
            issuer_ref: CertificateIssuerRef {
                name: issuer.name,
                kind: issuer.kind,
                group: Some("cert-manager.io".to_owned()),
            },
            // A renewal gets a new key, not only a new validity period.
            private_key: Some(CertificatePrivateKey {
                rotation_policy: Some("Always".to_owned()),
            }),
        },
        status: None,
    }));
}

/// The name of the registry's Certificate whose Secret is not issued yet (absent, or without a certificate
/// and key), when the registry asks cert-manager for one. The registry then waits for it instead of
/// refusing the missing Secret.
pub fn pending(registry: &QuayRegistry, cluster: &ClusterFacts) -> Option<String> {
    if !cluster.cert_manager || !matches!(route::issuer(registry), Ok(Some(_))) {
        return None;
    }
    let tls = registry.declared_component(ComponentKind::Tls)?;
    let secret = tls.secret_ref.as_ref().filter(|_| !tls.managed)?;
    let issued = cluster
        .external_tls
        .as_ref()
        .filter(|e| e.name == secret.name)
        .is_some_and(|e| {
            [&e.cert, &e.key]
                .iter()
                .all(|v| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
        });
    if issued {
        return None;
    }
    let name = registry.metadata.name.as_deref().unwrap_or_default();
    Some(format!("{name}-{CERTIFICATE_SUFFIX}"))
}

/// What status says while [`pending`], with cert-manager's own reason when the live Certificate reports
/// `Ready=False` (an issuer that refuses, a failed ACME challenge).
pub fn pending_message(
    registry: &QuayRegistry,
    cluster: &ClusterFacts,
    live: Option<&Certificate>,
) -> Option<String> {
    let certificate = pending(registry, cluster)?;
    let secret = registry
        .declared_component(ComponentKind::Tls)
        .and_then(|c| c.secret_ref.as_ref())
        .map(|r| r.name.clone())
        .unwrap_or_default();
    let mut message = format!(
        "Waiting for cert-manager Certificate {certificate} to issue TLS secret {secret:?}"
    );
    let not_ready = live
        .and_then(|c| c.status.as_ref())
        .into_iter()
        .flat_map(|s| &s.conditions)
        .find(|c| c["type"] == "Ready" && c["status"] == "False")
        .and_then(|c| c["message"].as_str())
        .filter(|m| !m.is_empty());
    if let Some(reason) = not_ready {
        message.push_str(": ");
        message.push_str(reason);
    }
    Some(message)
}

/// Objects held back while the certificate is pending: Quay's rendered configuration and TLS Secrets (they
/// would be replaced as soon as it is issued). Workloads wait anyway.
pub fn held_while_pending(object: &DesiredObject, registry: &str) -> bool {
    matches!(object, DesiredObject::Secret(_))
        && [
            format!("{registry}-quay-config-secret-"),
            format!("{registry}-quay-config-tls-"),
        ]
        .iter()
        .any(|prefix| object.name().starts_with(prefix.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Component, SecretReference};
    use crate::render::ExternalTls;
    use crate::render::testing::{Fixture, object};

    const CERT: &str = include_str!("../../../../examples/tls/ssl.cert");
    const KEY: &str = include_str!("../../../../examples/tls/ssl.key");

    /// Plain Kubernetes, route managed, tls from `quay-tls`, certificate asked of `ClusterIssuer/acme`.
    fn fixture(issued: bool) -> Fixture {
        let mut f = Fixture::new()
            .config_line("SERVER_HOSTNAME: quay.example.com")
            .component(ComponentKind::Route, true, None);
        f.cluster.routes = false;
        f.cluster.cluster_hostname = None;
        f.cluster.cert_manager = true;
        f.registry
            .spec
            .components
            .as_mut()
            .unwrap()
            .push(Component {
                secret_ref: Some(SecretReference {
                    name: "quay-tls".to_owned(),
                }),
                ..Component::new(ComponentKind::Tls, false)
            });
        f.registry.metadata.annotations = Some(BTreeMap::from([(
            route::CERT_MANAGER_ISSUER_ANNOTATION.to_owned(),
            "ClusterIssuer/acme".to_owned(),
        )]));
        if issued {
            f.cluster.external_tls = Some(ExternalTls {
                name: "quay-tls".to_owned(),
                type_: "kubernetes.io/tls".to_owned(),
                cert: Some(CERT.to_owned()),
                key: Some(KEY.to_owned()),
            });
        }
        f
    }

    #[test]
    fn certificate_requests_the_server_hostname_into_the_secret_ref_secret() {
        let f = fixture(true);
        let rendered = f.render();
        let DesiredObject::Certificate(c) = object(&rendered, "Certificate", "reg-quay-tls") else {
            unreachable!()
        };
        assert_eq!(c.spec.secret_name, "quay-tls");
        assert_eq!(c.spec.dns_names, vec!["quay.example.com".to_owned()]);
        assert_eq!(
            (
                c.spec.issuer_ref.kind.as_str(),
                c.spec.issuer_ref.name.as_str()
            ),
            ("ClusterIssuer", "acme")
        );
        assert_eq!(pending(&f.registry, &f.cluster), None);
    }

    #[test]
    fn an_unissued_secret_is_awaited_not_refused() {
        let f = fixture(false);
        // Validation lets it through (the Secret is cert-manager's to fill) and the render has the Certificate.
        let rendered = f.render();
        object(&rendered, "Certificate", "reg-quay-tls");
        assert_eq!(
            pending(&f.registry, &f.cluster).as_deref(),
            Some("reg-quay-tls")
        );
        assert_eq!(
            pending_message(&f.registry, &f.cluster, None).as_deref(),
            Some(
                "Waiting for cert-manager Certificate reg-quay-tls to issue TLS secret \"quay-tls\""
            )
        );
        // cert-manager's reason, when the Certificate reports one.
        let refused: Certificate = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "reg-quay-tls"},
            "spec": {"secretName": "quay-tls", "dnsNames": [],
                     "issuerRef": {"name": "acme", "kind": "ClusterIssuer"}},
            "status": {"conditions": [{"type": "Ready", "status": "False", "reason": "Failed",
                                       "message": "issuer acme not found"}]}
        }))
        .unwrap();
        assert_eq!(
            pending_message(&f.registry, &f.cluster, Some(&refused)).as_deref(),
            Some(
                "Waiting for cert-manager Certificate reg-quay-tls to issue TLS secret \"quay-tls\": \
                 issuer acme not found"
            )
        );
        let config = rendered
            .objects
            .iter()
            .find(|o| o.name().starts_with("reg-quay-config-secret-"))
            .unwrap();
        assert!(held_while_pending(config, "reg"));
        let service = object(&rendered, "Service", "reg-quay-app");
        assert!(!held_while_pending(&service, "reg"));
        // Without cert-manager's API the same Secret is simply missing.
        let mut f = f;
        f.cluster.cert_manager = false;
        assert_eq!(pending(&f.registry, &f.cluster), None);
        assert!(f.try_render().is_err());
    }

    #[test]
    fn on_openshift_the_routes_pass_the_coming_certificate_through() {
        let mut f = fixture(false);
        f.cluster.routes = true;
        f.cluster.cluster_hostname = Some("apps.example.com".to_owned());
        let rendered = f.render();
        object(&rendered, "Certificate", "reg-quay-tls");
        for name in ["reg-quay", "reg-quay-builder"] {
            let DesiredObject::Route(route) = object(&rendered, "Route", name) else {
                unreachable!()
            };
            assert_eq!(route.spec.tls.unwrap().termination, "passthrough", "{name}");
        }
    }
}
