//! The `quay` component (always managed): the Quay application Deployment, its Service and ServiceAccount, the
//! cluster CA ConfigMaps OpenShift fills in, and the database migration Job of an upgrade.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, EmptyDirVolumeSource, EnvVar, HTTPGetAction, PodSpec, PodTemplateSpec,
    Probe, SecretVolumeSource, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::context::RenderContext;
use super::meta::{self, QUAY_COMPONENT};
use super::object::DesiredObject;
use super::workload::{
    self, config_map_source, container, env, env_from_field, mount, port, projected_volume,
    quantity, resources, secret_source, service_port,
};
use crate::api::ComponentKind;

/// Label every object of the base (quay) component carries, also in the quay-app selector.
const APP_LABEL: (&str, &str) = ("app", "quay");
/// OpenShift's service CA operator injects `service-ca.crt` into ConfigMaps with this annotation.
pub const INJECT_CABUNDLE_ANNOTATION: &str = "service.beta.openshift.io/inject-cabundle";
/// OpenShift's network operator injects the cluster's trusted CA bundle into ConfigMaps with this label.
pub const INJECT_TRUSTED_CABUNDLE_LABEL: &str = "config.openshift.io/inject-trusted-cabundle";

/// Metadata of a base object: `quay-component: <component>` and `app: quay`.
fn base_meta(ctx: &RenderContext<'_>, suffix: &str, component: &str) -> ObjectMeta {
    let mut metadata = meta::object_meta(ctx, suffix, component);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(APP_LABEL.0.to_owned(), APP_LABEL.1.to_owned());
    metadata
}

fn quay_app_selector(ctx: &RenderContext<'_>) -> BTreeMap<String, String> {
    meta::labels(ctx, &[(QUAY_COMPONENT, "quay-app"), APP_LABEL])
}

/// ServiceAccount, CA ConfigMaps and Service of the Quay application.
pub fn render_config_objects(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    out.push(DesiredObject::ServiceAccount(ServiceAccount {
        metadata: base_meta(ctx, "quay-app", "quay"),
        ..Default::default()
    }));

    // Both ConfigMaps are filled by OpenShift. Their data is deliberately not part of the desired object, so the
    // operator owns no data key and never fights the injector (upstream applied `ca-bundle.crt: ""` with force).
    let mut service_ca = base_meta(ctx, "cluster-service-ca", "quay");
    service_ca
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(INJECT_CABUNDLE_ANNOTATION.to_owned(), "true".to_owned());
    out.push(DesiredObject::ConfigMap(ConfigMap {
        metadata: service_ca,
        ..Default::default()
    }));
    let mut trusted_ca = base_meta(ctx, "cluster-trusted-ca", "quay");
    trusted_ca
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(INJECT_TRUSTED_CABUNDLE_LABEL.to_owned(), "true".to_owned());
    out.push(DesiredObject::ConfigMap(ConfigMap {
        metadata: trusted_ca,
        ..Default::default()
    }));

    let mut service = workload::cluster_ip_service(
        base_meta(ctx, "quay-app", "quay"),
        quay_app_selector(ctx),
        vec![
            service_port(Some("https"), 443, 8443),
            service_port(Some("http"), 80, 8080),
            service_port(Some("jwtproxy"), 8081, 8081),
            service_port(Some("grpc"), 55443, 55443),
        ],
    );
    // Only Quay listens according to FEATURE_LISTEN_IP_VERSION; the internal services keep the cluster default.
    workload::set_ip_families(ctx, &mut service);
    out.push(DesiredObject::Service(service));
}

/// The quay-app Deployment, and the migration Job when an upgrade is due.
pub fn render_workloads(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    out.push(DesiredObject::Deployment(Box::new(quay_app(ctx))));
    let storage_ready =
        !ctx.managed(ComponentKind::ObjectStorage) || ctx.input.cluster.object_bucket.is_some();
    if ctx.migration_due && storage_ready {
        out.push(DesiredObject::Job(Box::new(migration_job(ctx))));
    }
}

/// `QE_K8S_CONFIG_SECRET`, `QE_K8S_NAMESPACE`, `DEBUGLOG` and the worker counts: the env every Quay process
/// (app and migration) starts with.
fn quay_env(ctx: &RenderContext<'_>) -> Vec<EnvVar> {
    vec![
        env("QE_K8S_CONFIG_SECRET", &ctx.names.config_secret),
        env_from_field("QE_K8S_NAMESPACE", "metadata.namespace"),
        env("DEBUGLOG", "false"),
        env("WORKER_COUNT_WEB", "4"),
        env("WORKER_COUNT_SECSCAN", "2"),
        env("WORKER_COUNT_REGISTRY", "8"),
    ]
}

/// Volumes `extra-ca-certs`, `postgres-certs` and `postgres-certs-store` (every Quay pod), with `tls_as_ca`
/// also trusting the registry's own certificate (the mirror workers call the registry through it).
pub(super) fn shared_volumes(ctx: &RenderContext<'_>, tls_as_ca: bool) -> Vec<Volume> {
    let mut ca_sources = vec![
        config_map_source(&ctx.object_name("cluster-service-ca")),
        config_map_source(&ctx.object_name("cluster-trusted-ca")),
        secret_source(&ctx.names.extra_ca_secret, false),
    ];
    if tls_as_ca {
        ca_sources.push(secret_source(&ctx.names.tls_secret, false));
    }
    vec![
        projected_volume("extra-ca-certs", ca_sources),
        // User-created Secrets for TLS to an external database; not prefixed, optional.
        projected_volume(
            "postgres-certs",
            vec![
                secret_source("postgresql-ca", true),
                secret_source("postgresql-client-certs", true),
            ],
        ),
        Volume {
            name: "postgres-certs-store".to_owned(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: None,
                size_limit: Some(quantity("5Mi")),
            }),
            ..Default::default()
        },
    ]
}

/// The `config` volume of the long-running Quay pods: the rendered config and the TLS material in one directory.
pub(super) fn config_volume(ctx: &RenderContext<'_>) -> Volume {
    projected_volume(
        "config",
        vec![
            secret_source(&ctx.names.config_secret, false),
            secret_source(&ctx.names.tls_secret, false),
        ],
    )
}

/// Where every Quay container finds its config, CA certificates and database client certificates.
pub(super) fn quay_mounts() -> Vec<VolumeMount> {
    vec![
        mount("config", "/conf/stack", Some(false)),
        mount("extra-ca-certs", "/conf/stack/extra_ca_certs", Some(true)),
        mount("postgres-certs", "/run/secrets/postgresql", None),
        mount("postgres-certs-store", "/.postgresql", None),
    ]
}

fn health_probe(ctx: &RenderContext<'_>, timeout_seconds: i32) -> Probe {
    let (port, scheme) = if ctx.quay_serves_tls() {
        (8443, "HTTPS")
    } else {
        (8080, "HTTP")
    };
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some("/health/instance".to_owned()),
            port: IntOrString::Int(port),
            scheme: Some(scheme.to_owned()),
            ..Default::default()
        }),
        timeout_seconds: Some(timeout_seconds),
        period_seconds: Some(15),
        failure_threshold: Some(10),
        ..Default::default()
    }
}

fn quay_app(ctx: &RenderContext<'_>) -> k8s_openapi::api::apps::v1::Deployment {
    let mut env = quay_env(ctx);
    env.extend(workload::proxy_env(ctx));
    let app = Container {
        args: Some(vec!["registry-nomigrate".to_owned()]),
        security_context: Some(workload::quay_security_context()),
        ports: Some(vec![
            port(8443),
            port(8080),
            port(8081),
            port(9091),
            port(55443),
        ]),
        env: Some(env),
        resources: Some(resources(("2000m", "8Gi"), Some(("2000m", "8Gi")))),
        startup_probe: Some(health_probe(ctx, 20)),
        readiness_probe: Some(health_probe(ctx, 10)),
        liveness_probe: Some(health_probe(ctx, 10)),
        volume_mounts: Some(quay_mounts()),
        ..container("quay-app", &ctx.images.quay)
    };
    let mut volumes = vec![config_volume(ctx)];
    volumes.extend(shared_volumes(ctx, false));
    let pod = PodSpec {
        service_account_name: Some(ctx.object_name("quay-app")),
        affinity: Some(workload::spread_over_nodes("quay-app")),
        containers: vec![app],
        volumes: Some(volumes),
        ..Default::default()
    };
    // While the migration Job runs, no Quay pod may serve the old schema; otherwise replicas are decided by
    // the overrides pass (HPA, `overrides.replicas`).
    let replicas = ctx.migration_due.then_some(0);
    workload::deployment(
        base_meta(ctx, "quay-app", "quay"),
        quay_app_selector(ctx),
        replicas,
        None,
        pod,
    )
}

fn migration_job(ctx: &RenderContext<'_>) -> Job {
    let mut metadata = meta::object_meta(ctx, "quay-app-upgrade", "quay-app-upgrade");
    metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(QUAY_COMPONENT.to_owned(), "base".to_owned());
    let upgrade = Container {
        args: Some(vec!["migrate".to_owned(), "head".to_owned()]),
        security_context: Some(workload::quay_security_context()),
        ports: Some(vec![port(8443), port(8080), port(8081)]),
        env: Some(quay_env(ctx)),
        resources: Some(resources(("1000m", "3Gi"), Some(("2000m", "8Gi")))),
        volume_mounts: Some(quay_mounts()),
        ..container("quay-app-upgrade", &ctx.images.quay)
    };
    let mut volumes = vec![Volume {
        name: "config".to_owned(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(ctx.names.config_secret.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }];
    volumes.extend(shared_volumes(ctx, false));
    Job {
        metadata,
        spec: Some(JobSpec {
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(meta::labels(ctx, &[(QUAY_COMPONENT, "quay-app-upgrade")])),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("OnFailure".to_owned()),
                    service_account_name: Some(ctx.object_name("quay-app")),
                    containers: vec![upgrade],
                    volumes: Some(volumes),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::ObjectBucket;
    use crate::render::context::IpFamilies;
    use crate::render::testing::{Fixture, deployment, object, service};

    fn workloads(fixture: &Fixture) -> Vec<DesiredObject> {
        fixture.with_context(|ctx| {
            let mut out = Vec::new();
            render_workloads(ctx, &mut out);
            out
        })
    }

    fn probe_target(fixture: &Fixture) -> (IntOrString, Option<String>) {
        let objects = workloads(fixture);
        let DesiredObject::Deployment(d) = &objects[0] else {
            panic!("quay-app first")
        };
        let container = &d
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0];
        let probes = [
            &container.startup_probe,
            &container.readiness_probe,
            &container.liveness_probe,
        ];
        let get = |p: &Option<Probe>| p.as_ref().unwrap().http_get.clone().unwrap();
        assert!(probes.iter().all(|p| get(p) == get(probes[0])));
        let get = get(probes[0]);
        (get.port, get.scheme)
    }

    #[test]
    fn quay_probes_use_http_8080_unless_quay_serves_tls() {
        assert_eq!(
            probe_target(&Fixture::new()),
            (IntOrString::Int(8080), Some("HTTP".to_owned()))
        );
        let own_tls = Fixture::new()
            .bundle_file("ssl.cert", "CERT")
            .bundle_file("ssl.key", "KEY");
        assert_eq!(
            probe_target(&own_tls),
            (IntOrString::Int(8443), Some("HTTPS".to_owned()))
        );
    }

    #[test]
    fn migration_job_waits_for_a_managed_bucket() {
        let names = |f: &Fixture| -> Vec<String> {
            workloads(f).iter().map(|o| o.name().to_owned()).collect()
        };
        assert_eq!(names(&Fixture::new()), ["reg-quay-app"]);
        assert_eq!(
            names(&Fixture::new().migration_due()),
            ["reg-quay-app", "reg-quay-app-upgrade"]
        );
        let mut managed_bucket = Fixture::new().migration_due();
        managed_bucket.cluster.object_bucket_claims = true;
        assert_eq!(names(&managed_bucket), ["reg-quay-app"]);
        managed_bucket.cluster.object_bucket = Some(ObjectBucket::default());
        assert_eq!(
            names(&managed_bucket),
            ["reg-quay-app", "reg-quay-app-upgrade"]
        );
    }

    #[test]
    fn migration_job_runs_migrate_head_without_proxy_env() {
        let objects = workloads(&Fixture::new().migration_due());
        let DesiredObject::Job(job) = &objects[1] else {
            panic!("job second")
        };
        assert_eq!(
            job.metadata.annotations.as_ref().unwrap()[QUAY_COMPONENT],
            "base"
        );
        assert_eq!(
            job.metadata.labels.as_ref().unwrap()[QUAY_COMPONENT],
            "quay-app-upgrade"
        );
        let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(pod.restart_policy.as_deref(), Some("OnFailure"));
        let c = &pod.containers[0];
        assert_eq!(c.args.as_ref().unwrap(), &["migrate", "head"]);
        assert!(
            !c.env
                .as_ref()
                .unwrap()
                .iter()
                .any(|e| e.name.ends_with("_PROXY"))
        );
        // The Job mounts the plain config Secret, without the TLS material.
        let config = &pod.volumes.as_ref().unwrap()[0];
        assert!(
            config
                .secret
                .as_ref()
                .unwrap()
                .secret_name
                .as_ref()
                .unwrap()
                .starts_with("reg-quay-config-secret-")
        );
    }

    #[test]
    fn quay_app_env_starts_with_config_secret_and_ends_with_version() {
        let rendered = Fixture::new().render();
        let d = deployment(&rendered, "reg-quay-app");
        let spec = d.spec.unwrap();
        assert_eq!(spec.selector.match_labels.unwrap()["app"], "quay");
        let c = &spec.template.spec.unwrap().containers[0];
        let env = c.env.as_ref().unwrap();
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "QE_K8S_CONFIG_SECRET",
                "QE_K8S_NAMESPACE",
                "DEBUGLOG",
                "WORKER_COUNT_WEB",
                "WORKER_COUNT_SECSCAN",
                "WORKER_COUNT_REGISTRY",
                "HTTP_PROXY",
                "HTTPS_PROXY",
                "NO_PROXY",
                "QUAY_VERSION"
            ]
        );
        assert_eq!(
            env[0].value.as_deref(),
            Some(rendered.config_secret_name.as_str())
        );
    }

    #[test]
    fn ca_config_maps_own_no_data_openshift_injects() {
        let rendered = Fixture::new().render();
        for name in ["reg-cluster-service-ca", "reg-cluster-trusted-ca"] {
            let DesiredObject::ConfigMap(cm) = object(&rendered, "ConfigMap", name) else {
                unreachable!()
            };
            assert!(cm.data.is_none(), "{name}");
        }
        let DesiredObject::ConfigMap(trusted) =
            object(&rendered, "ConfigMap", "reg-cluster-trusted-ca")
        else {
            unreachable!()
        };
        assert_eq!(
            trusted.metadata.labels.unwrap()[INJECT_TRUSTED_CABUNDLE_LABEL],
            "true"
        );
    }

    #[test]
    fn quay_service_exposes_https_http_jwtproxy_grpc() {
        let svc = service(&Fixture::new().render(), "reg-quay-app")
            .spec
            .unwrap();
        let ports: Vec<(Option<String>, i32)> = svc
            .ports
            .unwrap()
            .into_iter()
            .map(|p| (p.name, p.port))
            .collect();
        assert_eq!(
            ports,
            [
                (Some("https".to_owned()), 443),
                (Some("http".to_owned()), 80),
                (Some("jwtproxy".to_owned()), 8081),
                (Some("grpc".to_owned()), 55443)
            ]
        );
        assert_eq!(svc.selector.unwrap()[QUAY_COMPONENT], "quay-app");
        assert!(svc.ip_family_policy.is_none());
    }

    #[test]
    fn dual_stack_quay_service_prefers_both_families() {
        let fixture = Fixture::new().config_line("FEATURE_LISTEN_IP_VERSION: dual-stack");
        let svc = fixture.with_context(|ctx| {
            assert_eq!(ctx.ip_families, IpFamilies::DualStack);
            let mut out = Vec::new();
            render_config_objects(ctx, &mut out);
            match out.pop() {
                Some(DesiredObject::Service(s)) => s,
                _ => panic!("service last"),
            }
        });
        let spec = svc.spec.unwrap();
        assert_eq!(spec.ip_family_policy.as_deref(), Some("PreferDualStack"));
        assert_eq!(spec.ip_families.unwrap(), ["IPv4", "IPv6"]);
    }
}
