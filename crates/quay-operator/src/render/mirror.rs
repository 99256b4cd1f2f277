//! The `mirror` component: the repository mirroring workers. They run the Quay image against the same config
//! as quay-app, and wait for the Quay Service to answer before starting.

use k8s_openapi::api::apps::v1::{DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::context::RenderContext;
use super::meta;
use super::object::DesiredObject;
use super::quay::{config_volume, quay_mounts, shared_volumes};
use super::workload::{self, env, env_from_field};
use crate::api::ComponentKind;

/// Waits until `http://$QUAY_APP_SERVICE_HOST/` answers below 400 (redirects are not followed: a redirect to
/// HTTPS means Quay is up). Proxies are bypassed: the Service is in-cluster. Uses whichever Python the Quay image
/// puts on the PATH.
const WAIT_FOR_QUAY: &str = r#"PYTHON=$(command -v python3 || command -v python)
until "$PYTHON" -c '
import os, sys, urllib.error, urllib.request
class KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), KeepRedirects)
try:
    status = opener.open("http://" + os.environ["QUAY_APP_SERVICE_HOST"], timeout=10).status
except urllib.error.HTTPError as e:
    status = e.code
except Exception:
    sys.exit(1)
sys.exit(0 if status < 400 else 1)
'; do echo "waiting for Quay at $QUAY_APP_SERVICE_HOST"; sleep 5; done"#;

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    if !ctx.managed(ComponentKind::Mirror) {
        return;
    }
    let wait = Container {
        command: Some(vec!["/bin/sh".to_owned(), "-c".to_owned()]),
        args: Some(vec![WAIT_FOR_QUAY.to_owned()]),
        env: Some(vec![env(
            "QUAY_APP_SERVICE_HOST",
            &ctx.object_name("quay-app"),
        )]),
        security_context: Some(workload::quay_security_context()),
        ..workload::container("quay-mirror-init", &ctx.images.quay)
    };
    let mut mirror_env = vec![
        env("QE_K8S_CONFIG_SECRET", &ctx.names.config_secret),
        env_from_field("QE_K8S_NAMESPACE", "metadata.namespace"),
        env("DEBUGLOG", "false"),
        env("ENSURE_NO_MIGRATION", "true"),
    ];
    mirror_env.extend(workload::proxy_env(ctx));
    let mirror = Container {
        command: Some(vec!["/quay-registry/quay-entrypoint.sh".to_owned()]),
        args: Some(vec!["repomirror-nomigrate".to_owned()]),
        env: Some(mirror_env),
        security_context: Some(workload::quay_security_context()),
        resources: Some(workload::resources(
            ("500m", "512Mi"),
            Some(("1000m", "2Gi")),
        )),
        volume_mounts: Some(quay_mounts()),
        ..workload::container("quay-mirror", &ctx.images.quay)
    };
    let mut volumes = vec![config_volume(ctx)];
    // The workers call the registry through its public name: trust its certificate too.
    volumes.extend(shared_volumes(ctx, true));
    let pod = PodSpec {
        service_account_name: Some(ctx.object_name("quay-app")),
        affinity: Some(workload::spread_over_nodes("quay-mirror")),
        init_containers: Some(vec![wait]),
        containers: vec![mirror],
        volumes: Some(volumes),
        ..Default::default()
    };
    // Never below the current count while rolling: a bad override must not take every worker down.
    let strategy = DeploymentStrategy {
        type_: Some("RollingUpdate".to_owned()),
        rolling_update: Some(RollingUpdateDeployment {
            max_unavailable: Some(IntOrString::Int(0)),
            max_surge: Some(IntOrString::Int(1)),
        }),
    };
    out.push(DesiredObject::Deployment(Box::new(workload::deployment(
        workload::labelled_meta(ctx, "quay-mirror", "quay-mirror", "mirror"),
        meta::selector(ctx, "quay-mirror"),
        None,
        Some(strategy),
        pod,
    ))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::{Fixture, deployment};

    #[test]
    fn mirror_waits_for_quay_and_trusts_the_registry_certificate() {
        let rendered = Fixture::new().render();
        let d = deployment(&rendered, "reg-quay-mirror");
        let labels = d.metadata.labels.unwrap();
        assert_eq!(labels["quay-component"], "quay-mirror");
        assert_eq!(d.metadata.annotations.unwrap()["quay-component"], "mirror");
        let pod = d.spec.unwrap().template.spec.unwrap();
        let init = &pod.init_containers.as_ref().unwrap()[0];
        assert_eq!(init.name, "quay-mirror-init");
        assert_eq!(
            init.env.as_ref().unwrap()[0].value.as_deref(),
            Some("reg-quay-app")
        );
        assert!(pod.containers[0].readiness_probe.is_none());
        let volumes = pod.volumes.unwrap();
        let cas = volumes.iter().find(|v| v.name == "extra-ca-certs").unwrap();
        let sources = cas.projected.as_ref().unwrap().sources.as_ref().unwrap();
        assert!(sources.iter().any(|s| {
            s.secret
                .as_ref()
                .is_some_and(|s| s.name.starts_with("reg-quay-config-tls-"))
        }));
    }

    #[test]
    fn unmanaged_mirror_renders_nothing() {
        let rendered = Fixture::new()
            .component(ComponentKind::Mirror, false, None)
            .render();
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name() == "reg-quay-mirror")
        );
    }
}
