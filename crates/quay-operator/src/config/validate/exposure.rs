//! Checks of how Quay is exposed where there is no Route API (a managed route becomes an Ingress or a Gateway
//! API HTTPRoute) and of the cert-manager certificate request: the registry annotations parse, the APIs they
//! need are served, the hostnames they need are set, and they do not contradict each other or the tls
//! component.

use super::{CONFIG_PATH, Facts};
use crate::api::ComponentKind;
use crate::config::{Problem, Reason, ValidationReport};
use crate::render::route::{
    self, CERT_MANAGER_ISSUER_ANNOTATION, GATEWAY_ANNOTATION, INGRESS_CLASS_ANNOTATION,
};

fn annotation_path(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

pub(super) fn check(facts: &Facts<'_>, report: &mut ValidationReport) {
    let registry = facts.input.registry;
    let cluster = facts.input.cluster;
    let gateway = route::gateway(registry);
    let ingress_class = route::ingress_class(registry);
    let issuer = route::issuer(registry);
    for (key, error) in [
        (GATEWAY_ANNOTATION, gateway.as_ref().err()),
        (INGRESS_CLASS_ANNOTATION, ingress_class.as_ref().err()),
        (CERT_MANAGER_ISSUER_ANNOTATION, issuer.as_ref().err()),
    ] {
        if let Some(error) = error {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                annotation_path(key),
                error.to_string(),
            ));
        }
    }
    let gateway = gateway.ok().flatten();
    let ingress_class = ingress_class.ok().flatten();
    let server_host = facts
        .server_hostname()
        .map(|h| crate::render::context::host_without_port(&h).to_owned())
        .filter(|h| !h.is_empty());
    let config_parses = facts.config.is_some();

    let exposes = facts.managed(ComponentKind::Route) && !cluster.routes;
    if exposes {
        let what = if gateway.is_some() {
            "an HTTPRoute"
        } else {
            "an Ingress"
        };
        if server_host.is_none() && config_parses {
            report.push(Problem::error(
                Reason::ConfigInvalid,
                format!("{CONFIG_PATH}.SERVER_HOSTNAME"),
                format!(
                    "route component is managed and the cluster has no Route API: Quay is exposed with \
                     {what} for SERVER_HOSTNAME, which config.yaml does not set; set SERVER_HOSTNAME to \
                     the registry's public hostname, or set route to managed: false"
                ),
            ));
        }
        if let Some(gateway) = &gateway {
            if !cluster.gateway_api {
                report.push(Problem::error(
                    Reason::RouteComponentDependencyError,
                    annotation_path(GATEWAY_ANNOTATION),
                    format!(
                        "annotation {GATEWAY_ANNOTATION} names Gateway {gateway}, but the Gateway API \
                         (gateway.networking.k8s.io/v1 HTTPRoute) is not served in this cluster; install \
                         the Gateway API or remove the annotation to get an Ingress"
                    ),
                ));
            }
            if ingress_class.is_some() {
                report.push(Problem::error(
                    Reason::ConfigInvalid,
                    annotation_path(INGRESS_CLASS_ANNOTATION),
                    format!(
                        "annotations {GATEWAY_ANNOTATION} and {INGRESS_CLASS_ANNOTATION} both choose how \
                         Quay is exposed; keep one"
                    ),
                ));
            }
            if builds_enabled(facts) {
                report.push(Problem::warning(
                    Reason::ConfigInvalid,
                    format!("{CONFIG_PATH}.BUILDMAN_HOSTNAME"),
                    "builds are enabled, but the build manager's gRPC endpoint is not exposed through the \
                     Gateway API: add a GRPCRoute for BUILDMAN_HOSTNAME yourself",
                ));
            }
        } else if builds_enabled(facts) && builder_host(facts).is_none() {
            report.push(Problem::warning(
                Reason::ConfigInvalid,
                format!("{CONFIG_PATH}.BUILDMAN_HOSTNAME"),
                "builds are enabled, but without BUILDMAN_HOSTNAME the build manager gets no Ingress; set \
                 BUILDMAN_HOSTNAME to the host builders connect to",
            ));
        }
    } else {
        for (key, set) in [
            (GATEWAY_ANNOTATION, gateway.is_some()),
            (INGRESS_CLASS_ANNOTATION, ingress_class.is_some()),
        ] {
            if set {
                let why = if cluster.routes {
                    "the cluster serves Routes, which expose Quay"
                } else {
                    "the route component is not managed"
                };
                report.push(Problem::warning(
                    Reason::ConfigInvalid,
                    annotation_path(key),
                    format!("annotation {key} is ignored: {why}"),
                ));
            }
        }
    }

    let Some(issuer) = issuer.ok().flatten() else {
        return;
    };
    let path = annotation_path(CERT_MANAGER_ISSUER_ANNOTATION);
    let value = format!("{}/{}", issuer.kind, issuer.name);
    if !cluster.cert_manager {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            path.clone(),
            format!(
                "annotation {CERT_MANAGER_ISSUER_ANNOTATION} asks {value} for the certificate, but \
                 cert-manager's API (cert-manager.io/v1 Certificate) is not served in this cluster"
            ),
        ));
    }
    let tls = facts.component(ComponentKind::Tls);
    if tls.managed || tls.secret_ref.is_none() {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            path.clone(),
            format!(
                "annotation {CERT_MANAGER_ISSUER_ANNOTATION} needs the tls component unmanaged with a \
                 secretRef naming the Secret cert-manager fills: \
                 {{kind: tls, managed: false, secretRef: {{name: <secret>}}}}"
            ),
        ));
    }
    if server_host.is_none() && config_parses {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            format!("{CONFIG_PATH}.SERVER_HOSTNAME"),
            format!(
                "annotation {CERT_MANAGER_ISSUER_ANNOTATION} asks for a certificate for SERVER_HOSTNAME, \
                 which config.yaml does not set"
            ),
        ));
    }
}

fn builder_host(facts: &Facts<'_>) -> Option<String> {
    facts
        .config
        .as_ref()?
        .get_str("BUILDMAN_HOSTNAME")
        .map(crate::render::context::host_without_port)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
}

fn builds_enabled(facts: &Facts<'_>) -> bool {
    let Some(config) = &facts.config else {
        return false;
    };
    config.get("FEATURE_BUILD_SUPPORT") == Some(&serde_json::Value::Bool(true))
        || builder_host(facts).is_some()
}

/// Whether a missing or empty `secretRef` Secret is cert-manager's to fill (the registry waits for it instead
/// of refusing it).
pub(super) fn awaiting_certificate(facts: &Facts<'_>) -> bool {
    crate::render::certificate::pending(facts.input.registry, facts.input.cluster).is_some()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use crate::api::{Component, ComponentKind, SecretReference};
    use crate::config::{Problem, Severity};
    use crate::render::route::{
        CERT_MANAGER_ISSUER_ANNOTATION, GATEWAY_ANNOTATION, INGRESS_CLASS_ANNOTATION,
    };
    use crate::render::testing::Fixture;

    /// Plain Kubernetes (bundle with the ssl keys tls unmanaged needs), route managed.
    fn plain(annotations: &[(&str, &str)]) -> Fixture {
        with_annotations(Fixture::new().kubernetes(), annotations)
    }

    fn with_annotations(f: Fixture, annotations: &[(&str, &str)]) -> Fixture {
        let mut f = f
            .config_line("SERVER_HOSTNAME: quay.example.com")
            .component(ComponentKind::Route, true, None);
        f.cluster.routes = false;
        f.cluster.cluster_hostname = None;
        f.registry.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<BTreeMap<_, _>>(),
        );
        f
    }

    fn problems(f: &Fixture) -> Vec<Problem> {
        crate::config::validate(&f.input()).problems
    }

    fn error_messages(f: &Fixture) -> Vec<String> {
        problems(f)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.message)
            .collect()
    }

    #[test]
    fn managed_route_on_plain_kubernetes_needs_server_hostname() {
        let mut f = Fixture::new().component(ComponentKind::Route, true, None);
        f.cluster.routes = false;
        f.cluster.cluster_hostname = None;
        let p = crate::config::validate(&f.input())
            .first_error()
            .cloned()
            .unwrap();
        assert_eq!(p.path, "configBundleSecret[config.yaml].SERVER_HOSTNAME");
        assert!(
            p.message.starts_with(
                "route component is managed and the cluster has no Route API: Quay is exposed with an \
                 Ingress for SERVER_HOSTNAME"
            ),
            "{}",
            p.message
        );
        assert!(error_messages(&plain(&[])).is_empty());
    }

    #[test]
    fn gateway_needs_the_gateway_api_and_excludes_an_ingress_class() {
        let f = plain(&[
            (GATEWAY_ANNOTATION, "infra/public"),
            (INGRESS_CLASS_ANNOTATION, "nginx"),
        ]);
        assert_eq!(
            error_messages(&f),
            [
                "annotation quay-operator.rs/gateway names Gateway infra/public, but the Gateway API \
                 (gateway.networking.k8s.io/v1 HTTPRoute) is not served in this cluster; install the \
                 Gateway API or remove the annotation to get an Ingress",
                "annotations quay-operator.rs/gateway and quay-operator.rs/ingress-class both choose how \
                 Quay is exposed; keep one",
            ]
        );
        let mut f = plain(&[(GATEWAY_ANNOTATION, "infra/public")]);
        f.cluster.gateway_api = true;
        assert!(error_messages(&f).is_empty());
    }

    #[test]
    fn malformed_annotations_are_errors_with_their_path() {
        let f = plain(&[
            (GATEWAY_ANNOTATION, "public"),
            (CERT_MANAGER_ISSUER_ANNOTATION, "letsencrypt"),
        ]);
        let paths: Vec<String> = problems(&f)
            .into_iter()
            .filter(|p| p.severity == Severity::Error)
            .map(|p| p.path)
            .collect();
        assert_eq!(
            paths,
            [
                "metadata.annotations[quay-operator.rs/gateway]",
                "metadata.annotations[quay-operator.rs/cert-manager-issuer]",
            ]
        );
    }

    #[test]
    fn cert_manager_issuer_needs_the_api_and_a_secret_ref() {
        let issuer = [(CERT_MANAGER_ISSUER_ANNOTATION, "Issuer/internal-ca")];
        let mut f = plain(&issuer);
        f.cluster.cert_manager = true;
        assert_eq!(
            error_messages(&f),
            [
                "annotation quay-operator.rs/cert-manager-issuer needs the tls component unmanaged with a \
              secretRef naming the Secret cert-manager fills: {kind: tls, managed: false, secretRef: \
              {name: <secret>}}"
            ]
        );

        // With the secretRef and no Secret yet: refused without cert-manager, awaited with it.
        let mut f = with_annotations(Fixture::new(), &issuer);
        f.cluster.routes = false;
        f.cluster.cluster_hostname = None;
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
        assert_eq!(
            error_messages(&f),
            [
                "external TLS secret error: unable to get TLS secret \"quay-tls\": secrets \"quay-tls\" not found",
                "annotation quay-operator.rs/cert-manager-issuer asks Issuer/internal-ca for the \
                 certificate, but cert-manager's API (cert-manager.io/v1 Certificate) is not served in \
                 this cluster",
            ]
        );
        f.cluster.cert_manager = true;
        assert!(error_messages(&f).is_empty(), "{:?}", error_messages(&f));
    }

    #[test]
    fn exposure_annotations_on_openshift_are_ignored_with_a_warning() {
        let mut f = plain(&[(INGRESS_CLASS_ANNOTATION, "nginx")]);
        f.cluster.routes = true;
        let warnings: Vec<String> = problems(&f)
            .into_iter()
            .filter(|p| p.severity == Severity::Warning)
            .map(|p| p.message)
            .collect();
        assert_eq!(
            warnings,
            [
                "annotation quay-operator.rs/ingress-class is ignored: the cluster serves Routes, which expose Quay"
            ]
        );
    }
}
