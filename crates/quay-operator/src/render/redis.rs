//! The `redis` component: an ephemeral Redis for build logs and user events (no persistence, no password:
//! it is only reachable inside the namespace's network).

use k8s_openapi::api::core::v1::{Container, PodSpec, ServiceAccount};

use super::context::RenderContext;
use super::meta;
use super::object::DesiredObject;
use super::workload::{self, port, service_port};
use crate::api::ComponentKind;

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    if !ctx.managed(ComponentKind::Redis) {
        return;
    }
    out.push(DesiredObject::ServiceAccount(ServiceAccount {
        metadata: meta::object_meta(ctx, "quay-redis", "redis"),
        ..Default::default()
    }));
    let selector = meta::selector(ctx, "redis");
    out.push(DesiredObject::Service(workload::cluster_ip_service(
        meta::object_meta(ctx, "quay-redis", "redis"),
        selector.clone(),
        vec![service_port(None, 6379, 6379)],
    )));
    let redis = Container {
        ports: Some(vec![port(6379)]),
        resources: Some(workload::resources(
            ("500m", "1Gi"),
            Some(("4000m", "16Gi")),
        )),
        ..workload::container("redis-master", &ctx.images.redis)
    };
    let pod = PodSpec {
        service_account_name: Some(ctx.object_name("quay-redis")),
        containers: vec![redis],
        ..Default::default()
    };
    out.push(DesiredObject::Deployment(Box::new(workload::deployment(
        meta::object_meta(ctx, "quay-redis", "redis"),
        selector,
        Some(1),
        None,
        pod,
    ))));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::{Fixture, deployment, service};

    #[test]
    fn redis_is_one_pod_behind_an_unnamed_port() {
        let rendered = Fixture::new().render();
        let spec = deployment(&rendered, "reg-quay-redis").spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        let container = &spec.template.spec.as_ref().unwrap().containers[0];
        assert_eq!(container.name, "redis-master");
        assert!(container.readiness_probe.is_none());
        let svc = service(&rendered, "reg-quay-redis").spec.unwrap();
        let ports = svc.ports.unwrap();
        assert_eq!((ports[0].name.as_deref(), ports[0].port), (None, 6379));
        assert_eq!(svc.selector.unwrap()["quay-component"], "redis");
    }

    #[test]
    fn unmanaged_redis_renders_nothing() {
        let rendered = Fixture::new()
            .component(ComponentKind::Redis, false, None)
            .config_line("BUILDLOGS_REDIS: {host: redis.example.com, port: 6379}")
            .render();
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name() == "reg-quay-redis")
        );
    }
}
