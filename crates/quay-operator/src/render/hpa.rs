//! The `horizontalpodautoscaler` component: cpu/memory autoscaling of quay-app, and of clair-app and the mirror
//! workers when those are managed too.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::context::RenderContext;
use super::meta;
use super::object::DesiredObject;
use crate::api::ComponentKind;

/// `(Deployment suffix, quay-component, maxReplicas, only when this kind is managed)`.
const AUTOSCALED: [(&str, &str, i32, Option<ComponentKind>); 3] = [
    ("quay-app", "horizontalpodautoscaler", 20, None),
    ("clair-app", "clair", 10, Some(ComponentKind::Clair)),
    ("quay-mirror", "mirror", 20, Some(ComponentKind::Mirror)),
];

pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) {
    if !ctx.managed(ComponentKind::HorizontalPodAutoscaler) {
        return;
    }
    for (target, component, max_replicas, requires) in AUTOSCALED {
        if requires.is_some_and(|kind| !ctx.managed(kind)) {
            continue;
        }
        out.push(DesiredObject::HorizontalPodAutoscaler(
            HorizontalPodAutoscaler {
                metadata: meta::object_meta(ctx, target, component),
                spec: Some(HorizontalPodAutoscalerSpec {
                    scale_target_ref: CrossVersionObjectReference {
                        api_version: Some("apps/v1".to_owned()),
                        kind: "Deployment".to_owned(),
                        name: ctx.object_name(target),
                    },
                    min_replicas: Some(2),
                    max_replicas,
                    metrics: Some(vec![utilization("cpu"), utilization("memory")]),
                    behavior: None,
                }),
                status: None,
            },
        ));
    }
}

/// Scale out at 90 % average utilization of `resource`.
fn utilization(resource: &str) -> MetricSpec {
    MetricSpec {
        type_: "Resource".to_owned(),
        resource: Some(ResourceMetricSource {
            name: resource.to_owned(),
            target: MetricTarget {
                type_: "Utilization".to_owned(),
                average_utilization: Some(90),
                average_value: None,
                value: None,
            },
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::Fixture;

    fn hpa_names(fixture: &Fixture) -> Vec<String> {
        fixture
            .render()
            .objects
            .iter()
            .filter(|o| matches!(o, DesiredObject::HorizontalPodAutoscaler(_)))
            .map(|o| o.name().to_owned())
            .collect()
    }

    #[test]
    fn managed_hpa_scales_quay_clair_and_mirror() {
        assert_eq!(
            hpa_names(&Fixture::new()),
            ["reg-quay-app", "reg-clair-app", "reg-quay-mirror"]
        );
    }

    #[test]
    fn clair_and_mirror_hpas_only_when_they_are_managed() {
        let fixture = Fixture::new()
            .component(ComponentKind::Clair, false, None)
            .component(ComponentKind::Mirror, false, None);
        assert_eq!(hpa_names(&fixture), ["reg-quay-app"]);
    }

    #[test]
    fn unmanaged_hpa_renders_no_autoscaler() {
        let fixture = Fixture::new().component(ComponentKind::HorizontalPodAutoscaler, false, None);
        assert!(hpa_names(&fixture).is_empty());
    }

    #[test]
    fn hpa_targets_its_deployment_at_90_percent() {
        let rendered = Fixture::new().render();
        let Some(DesiredObject::HorizontalPodAutoscaler(hpa)) = rendered
            .objects
            .iter()
            .find(|o| o.name() == "reg-clair-app" && o.kind() == "HorizontalPodAutoscaler")
        else {
            panic!("no clair HPA")
        };
        let spec = hpa.spec.as_ref().unwrap();
        assert_eq!(spec.scale_target_ref.name, "reg-clair-app");
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 10));
        let metrics = spec.metrics.as_ref().unwrap();
        assert_eq!(metrics.len(), 2);
        assert_eq!(
            metrics[1]
                .resource
                .as_ref()
                .unwrap()
                .target
                .average_utilization,
            Some(90)
        );
        assert_eq!(
            hpa.metadata.annotations.as_ref().unwrap()["quay-component"],
            "clair"
        );
    }
}
