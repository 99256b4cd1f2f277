//! Applies the components' `overrides` (and `SKIP_RESOURCE_REQUESTS`, `QUAY_VERSION`) to the rendered objects.
//!
//! A Deployment's component is its `quay-component` annotation without dashes (`clair-postgres` →
//! `clairpostgres`), as upstream. Overrides of unmanaged components are never applied (validation refuses
//! them; [`RenderContext::overrides`] hides them), and each override only reaches the objects its support
//! matrix names, so an override that slipped past validation cannot reach an object it was not meant for.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSpec, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::clair::LAYER_STORAGE_VOLUME;
use super::context::RenderContext;
use super::meta::QUAY_COMPONENT;
use super::object::DesiredObject;
use super::workload::{env, quantity_bytes, upsert_env};
use crate::api::{ComponentKind, Override, REGISTRY_LABEL};
use crate::config::RenderError;

/// Labels an override can never set: they select pods and identify objects.
const PROTECTED_LABELS: [&str; 3] = [QUAY_COMPONENT, "app", REGISTRY_LABEL];

/// The Deployments whose replica count the quay, clair and mirror components decide.
const SCALED_DEPLOYMENTS: [(&str, ComponentKind); 3] = [
    ("quay-app", ComponentKind::Quay),
    ("clair-app", ComponentKind::Clair),
    ("quay-mirror", ComponentKind::Mirror),
];

pub fn apply(ctx: &RenderContext<'_>, objects: &mut [DesiredObject]) -> Result<(), RenderError> {
    for object in objects.iter_mut() {
        match object {
            DesiredObject::Deployment(d) => apply_to_deployment(ctx, d),
            DesiredObject::Job(j) => apply_to_job(ctx, j),
            DesiredObject::PersistentVolumeClaim(p) => apply_to_pvc(ctx, p),
            DesiredObject::Route(r) => {
                if let Some(o) = ctx.overrides(ComponentKind::Route) {
                    add_labels_and_annotations(&mut r.metadata, o);
                }
            }
            // The route component's other exposures (plain Kubernetes, cert-manager).
            DesiredObject::Ingress(_)
            | DesiredObject::HTTPRoute(_)
            | DesiredObject::Certificate(_) => {
                if let Some(o) = ctx.overrides(ComponentKind::Route) {
                    add_labels_and_annotations(object.metadata_mut(), o);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// The version the operator deploys (the `QUAY_VERSION` env of Quay containers).
fn target_version<'a>(ctx: &'a RenderContext<'_>) -> &'a str {
    ctx.input
        .cluster
        .quay_version
        .as_deref()
        .unwrap_or(&ctx.input.settings.quay_version)
}

/// The component a Deployment belongs to, from its `quay-component` annotation.
fn deployment_kind(metadata: &ObjectMeta) -> Option<ComponentKind> {
    let component = metadata.annotations.as_ref()?.get(QUAY_COMPONENT)?;
    component.replace('-', "").parse().ok()
}

fn supports_env(kind: ComponentKind) -> bool {
    matches!(
        kind,
        ComponentKind::Quay
            | ComponentKind::Postgres
            | ComponentKind::Clair
            | ComponentKind::ClairPostgres
            | ComponentKind::Redis
            | ComponentKind::Mirror
    )
}

fn supports_affinity(kind: ComponentKind) -> bool {
    matches!(
        kind,
        ComponentKind::Quay | ComponentKind::Clair | ComponentKind::Mirror
    )
}

fn supports_security_context(kind: ComponentKind) -> bool {
    matches!(kind, ComponentKind::Quay | ComponentKind::Mirror)
}

fn apply_to_deployment(ctx: &RenderContext<'_>, deployment: &mut Deployment) {
    let kind = deployment_kind(&deployment.metadata);
    let name = deployment.metadata.name.clone().unwrap_or_default();
    let Some(spec) = deployment.spec.as_mut() else {
        return;
    };
    let template_meta = spec.template.metadata.get_or_insert_with(Default::default);
    let Some(pod) = spec.template.spec.as_mut() else {
        return;
    };

    if ctx.input.settings.skip_resource_requests {
        strip_resources(pod);
    }
    let Some(kind) = kind else {
        return;
    };
    if let Some(o) = ctx.overrides(kind) {
        if supports_env(kind) {
            for var in o.env.iter().flatten() {
                for c in &mut pod.containers {
                    upsert_env(c.env.get_or_insert_with(Vec::new), var);
                }
            }
        }
        if let Some(affinity) = o.affinity.as_ref().filter(|_| supports_affinity(kind)) {
            pod.affinity = Some(affinity.clone());
        }
        add_labels_and_annotations(&mut deployment.metadata, o);
        add_labels_and_annotations(template_meta, o);
        if let (Some(r), Some(first)) = (&o.resources, pod.containers.first_mut()) {
            first.resources = Some(ResourceRequirements {
                limits: r.limits.clone(),
                requests: r.requests.clone(),
                claims: None,
            });
        }
        if let Some(sc) = o
            .security_context
            .as_ref()
            .filter(|_| supports_security_context(kind))
        {
            for c in &mut pod.containers {
                c.security_context = Some(sc.clone());
            }
        }
        if kind == ComponentKind::Clair {
            resize_layer_storage(pod, o);
        }
    }
    if kind == ComponentKind::Quay {
        // After the user's env: the operator's version cannot be overridden.
        let version = env("QUAY_VERSION", target_version(ctx));
        for c in &mut pod.containers {
            upsert_env(c.env.get_or_insert_with(Vec::new), &version);
        }
    }
    let scaled = SCALED_DEPLOYMENTS
        .iter()
        .find(|(suffix, k)| *k == kind && name == ctx.object_name(suffix));
    if scaled.is_some() && spec.replicas.is_none() {
        spec.replicas = desired_replicas(ctx, kind);
    }
}

/// Replicas of quay-app, clair-app and the mirror workers when nothing else (a migration) decided them.
///
/// - HPA managed: the HPA owns the count, except an explicit `replicas: 0`, which is applied: an HPA leaves a
///   Deployment scaled to zero alone, so this is how a registry is scaled down for a backup. (Upstream accepted
///   the `0` but never applied it.)
/// - HPA unmanaged: no `overrides` block → 2; `overrides.replicas` → that; an `overrides` block without
///   `replicas` → unset, so a user-managed HPA or `kubectl scale` keeps the count (PROJQUAY-6474).
fn desired_replicas(ctx: &RenderContext<'_>, kind: ComponentKind) -> Option<i32> {
    let overrides = ctx.overrides(kind);
    if ctx.managed(ComponentKind::HorizontalPodAutoscaler) {
        return overrides.and_then(|o| o.replicas).filter(|r| *r == 0);
    }
    match overrides {
        None => Some(2),
        Some(o) => o.replicas,
    }
}

fn strip_resources(pod: &mut PodSpec) {
    let containers = pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten());
    for c in containers {
        c.resources = None;
    }
}

fn add_labels_and_annotations(metadata: &mut ObjectMeta, o: &Override) {
    if let Some(labels) = &o.labels {
        let target = metadata.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in labels {
            if !PROTECTED_LABELS.contains(&k.as_str()) {
                target.insert(k.clone(), v.clone());
            }
        }
    }
    if let Some(annotations) = &o.annotations {
        let target = metadata.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in annotations {
            target.insert(k.clone(), v.clone());
        }
    }
}

/// Quay's env and securityContext overrides reach the migration Job's containers too (it runs the same image
/// against the same database); `SKIP_RESOURCE_REQUESTS` strips its resources like everyone else's.
fn apply_to_job(ctx: &RenderContext<'_>, job: &mut Job) {
    let Some(pod) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) else {
        return;
    };
    if ctx.input.settings.skip_resource_requests {
        strip_resources(pod);
    }
    let Some(o) = ctx.overrides(ComponentKind::Quay) else {
        return;
    };
    let containers: &mut Vec<Container> = &mut pod.containers;
    for c in containers.iter_mut() {
        for var in o.env.iter().flatten() {
            upsert_env(c.env.get_or_insert_with(Vec::new), var);
        }
        if let Some(sc) = &o.security_context {
            c.security_context = Some(sc.clone());
        }
    }
}

/// `volumeSize` and `storageClassName` of the database volumes; and a volume is never asked to shrink below
/// its live size (the API server would refuse the whole apply).
fn apply_to_pvc(ctx: &RenderContext<'_>, claim: &mut PersistentVolumeClaim) {
    let component = claim
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(QUAY_COMPONENT))
        .map(String::as_str);
    let kind = match component {
        Some("postgres") => ComponentKind::Postgres,
        Some("clair-postgres") => ComponentKind::ClairPostgres,
        _ => return,
    };
    let name = claim.metadata.name.clone().unwrap_or_default();
    let Some(spec) = claim.spec.as_mut() else {
        return;
    };
    if let Some(o) = ctx.overrides(kind) {
        set_volume_size_and_class(spec, o);
    }
    if let Some(live) = ctx.input.cluster.pvc_sizes.get(&name) {
        let requests = spec
            .resources
            .get_or_insert_with(Default::default)
            .requests
            .get_or_insert_with(BTreeMap::new);
        let desired = requests.get("storage").and_then(|q| quantity_bytes(&q.0));
        let live_bytes = quantity_bytes(&live.0);
        if let (Some(desired), Some(live_bytes)) = (desired, live_bytes)
            && live_bytes > desired
        {
            requests.insert("storage".to_owned(), live.clone());
        }
    }
}

fn set_volume_size_and_class(spec: &mut PersistentVolumeClaimSpec, o: &Override) {
    if let Some(size) = &o.volume_size {
        spec.resources.get_or_insert_with(Default::default).requests = Some(BTreeMap::from([(
            "storage".to_owned(),
            Quantity(size.0.clone()),
        )]));
    }
    if let Some(class) = &o.storage_class_name {
        spec.storage_class_name = Some(class.clone());
    }
}

/// Clair's `volumeSize`/`storageClassName` size its ephemeral layer scratch volume (PROJQUAY-6684).
fn resize_layer_storage(pod: &mut PodSpec, o: &Override) {
    let template = pod
        .volumes
        .iter_mut()
        .flatten()
        .filter(|v| v.name == LAYER_STORAGE_VOLUME)
        .find_map(|v| v.ephemeral.as_mut()?.volume_claim_template.as_mut());
    if let Some(template) = template {
        set_volume_size_and_class(&mut template.spec, o);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Resources;
    use crate::render::testing::{Fixture, deployment, job, pvc};
    use k8s_openapi::api::core::v1::{EnvVar, SecurityContext};

    fn with_env(pairs: &[(&str, &str)]) -> Override {
        Override {
            env: Some(
                pairs
                    .iter()
                    .map(|(k, v)| EnvVar {
                        name: (*k).to_owned(),
                        value: Some((*v).to_owned()),
                        value_from: None,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn replicas(f: &Fixture, name: &str) -> Option<i32> {
        deployment(&f.render(), name).spec.unwrap().replicas
    }

    fn env_of(c: &Container) -> Vec<(String, Option<String>)> {
        c.env
            .iter()
            .flatten()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect()
    }

    #[test]
    fn unmanaged_hpa_and_no_overrides_gives_two_replicas() {
        let f = Fixture::new().component(ComponentKind::HorizontalPodAutoscaler, false, None);
        for name in ["reg-quay-app", "reg-clair-app", "reg-quay-mirror"] {
            assert_eq!(replicas(&f, name), Some(2), "{name}");
        }
    }

    #[test]
    fn managed_hpa_leaves_replicas_unset() {
        let f = Fixture::new();
        for name in ["reg-quay-app", "reg-clair-app", "reg-quay-mirror"] {
            assert_eq!(replicas(&f, name), None, "{name}");
        }
    }

    #[test]
    fn managed_hpa_with_zero_replicas_scales_down() {
        let zero = Override {
            replicas: Some(0),
            ..Default::default()
        };
        let f = Fixture::new().component(ComponentKind::Quay, true, Some(zero));
        assert_eq!(replicas(&f, "reg-quay-app"), Some(0));
        assert_eq!(replicas(&f, "reg-clair-app"), None);
    }

    #[test]
    fn overrides_without_replicas_leave_replicas_unset() {
        let labels_only = Override {
            labels: Some(BTreeMap::from([("team".to_owned(), "a".to_owned())])),
            ..Default::default()
        };
        let three = Override {
            replicas: Some(3),
            ..Default::default()
        };
        let f = Fixture::new()
            .component(ComponentKind::HorizontalPodAutoscaler, false, None)
            .component(ComponentKind::Quay, true, Some(labels_only))
            .component(ComponentKind::Mirror, true, Some(three));
        assert_eq!(replicas(&f, "reg-quay-app"), None);
        assert_eq!(replicas(&f, "reg-quay-mirror"), Some(3));
        assert_eq!(replicas(&f, "reg-clair-app"), Some(2));
    }

    #[test]
    fn migration_scales_quay_app_to_zero_whatever_the_overrides() {
        let three = Override {
            replicas: Some(3),
            ..Default::default()
        };
        let f = Fixture::new()
            .component(ComponentKind::HorizontalPodAutoscaler, false, None)
            .component(ComponentKind::Quay, true, Some(three))
            .migration_due();
        assert_eq!(replicas(&f, "reg-quay-app"), Some(0));
    }

    #[test]
    fn quay_env_override_reaches_migration_job_but_not_init_containers() {
        let f = Fixture::new()
            .component(
                ComponentKind::Quay,
                true,
                Some(with_env(&[("DEBUGLOG", "true"), ("EXTRA", "1")])),
            )
            .component(
                ComponentKind::Mirror,
                true,
                Some(with_env(&[("MIRROR_ONLY", "1")])),
            )
            .migration_due();
        let rendered = f.render();
        let app = deployment(&rendered, "reg-quay-app")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let app_env = env_of(&app.containers[0]);
        // Replaced in place, appended when new, QUAY_VERSION last.
        let debug = app_env.iter().position(|(k, _)| k == "DEBUGLOG").unwrap();
        assert_eq!(app_env[debug].1.as_deref(), Some("true"));
        assert_eq!(debug, 2);
        assert_eq!(app_env.last().unwrap().0, "QUAY_VERSION");
        assert!(app_env.iter().any(|(k, _)| k == "EXTRA"));
        let upgrade = job(&rendered, "reg-quay-app-upgrade")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let job_env = env_of(&upgrade.containers[0]);
        assert!(job_env.contains(&("DEBUGLOG".to_owned(), Some("true".to_owned()))));
        assert!(job_env.iter().any(|(k, _)| k == "EXTRA"));
        let mirror = deployment(&rendered, "reg-quay-mirror")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(
            env_of(&mirror.containers[0])
                .iter()
                .any(|(k, _)| k == "MIRROR_ONLY")
        );
        assert!(
            !env_of(&mirror.containers[0])
                .iter()
                .any(|(k, _)| k == "EXTRA")
        );
        let init = &mirror.init_containers.unwrap()[0];
        assert!(!env_of(init).iter().any(|(k, _)| k == "MIRROR_ONLY"));
    }

    #[test]
    fn quay_version_cannot_be_overridden() {
        let f = Fixture::new().component(
            ComponentKind::Quay,
            true,
            Some(with_env(&[("QUAY_VERSION", "v0.0.1")])),
        );
        let app = deployment(&f.render(), "reg-quay-app")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let env = env_of(&app.containers[0]);
        let versions: Vec<_> = env.iter().filter(|(k, _)| k == "QUAY_VERSION").collect();
        assert_eq!(versions.len(), 1);
        assert_eq!(
            versions[0].1.as_deref(),
            Some(f.settings.quay_version.as_str())
        );
    }

    #[test]
    fn label_overrides_skip_protected_keys_and_never_touch_selectors() {
        let o = Override {
            labels: Some(BTreeMap::from([
                ("team".to_owned(), "a".to_owned()),
                ("quay-component".to_owned(), "evil".to_owned()),
                ("app".to_owned(), "evil".to_owned()),
            ])),
            annotations: Some(BTreeMap::from([("note".to_owned(), "x".to_owned())])),
            ..Default::default()
        };
        let f = Fixture::new().component(ComponentKind::Clair, true, Some(o));
        let d = deployment(&f.render(), "reg-clair-app");
        let labels = d.metadata.labels.unwrap();
        assert_eq!(labels["team"], "a");
        assert_eq!(labels["quay-component"], "clair-app");
        assert!(!labels.contains_key("app"));
        assert_eq!(d.metadata.annotations.unwrap()["note"], "x");
        let spec = d.spec.unwrap();
        let template_meta = spec.template.metadata.unwrap();
        assert_eq!(template_meta.labels.unwrap()["team"], "a");
        assert_eq!(template_meta.annotations.unwrap()["note"], "x");
        assert!(!spec.selector.match_labels.unwrap().contains_key("team"));
    }

    #[test]
    fn resource_override_replaces_first_container_and_skip_strips_the_rest() {
        let o = Override {
            resources: Some(Resources {
                limits: None,
                requests: Some(BTreeMap::from([(
                    "cpu".to_owned(),
                    Quantity("1".to_owned()),
                )])),
            }),
            ..Default::default()
        };
        let mut f = Fixture::new().component(ComponentKind::Quay, true, Some(o));
        let app = deployment(&f.render(), "reg-quay-app")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let r = app.containers[0].resources.clone().unwrap();
        assert_eq!(r.requests.unwrap()["cpu"].0, "1");
        assert!(r.limits.is_none(), "an omitted map removes the default");

        f.settings.skip_resource_requests = true;
        let rendered = f.render();
        let app = deployment(&rendered, "reg-quay-app")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(
            app.containers[0]
                .resources
                .as_ref()
                .unwrap()
                .limits
                .is_none()
        );
        let redis = deployment(&rendered, "reg-quay-redis")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(redis.containers[0].resources.is_none());
    }

    #[test]
    fn security_context_override_skips_init_containers_and_reaches_jobs() {
        let sc = SecurityContext {
            run_as_user: Some(1001),
            ..Default::default()
        };
        let f = Fixture::new()
            .component(
                ComponentKind::Quay,
                true,
                Some(Override {
                    security_context: Some(sc.clone()),
                    ..Default::default()
                }),
            )
            .component(
                ComponentKind::Mirror,
                true,
                Some(Override {
                    security_context: Some(sc.clone()),
                    ..Default::default()
                }),
            )
            .migration_due();
        let rendered = f.render();
        let mirror = deployment(&rendered, "reg-quay-mirror")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(mirror.containers[0].security_context.as_ref(), Some(&sc));
        assert_ne!(
            mirror.init_containers.unwrap()[0].security_context.as_ref(),
            Some(&sc)
        );
        let upgrade = job(&rendered, "reg-quay-app-upgrade")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(upgrade.containers[0].security_context.as_ref(), Some(&sc));
    }

    #[test]
    fn volume_overrides_reach_pvcs_and_clair_scratch_volume() {
        let sized = |size: &str| Override {
            volume_size: Some(Quantity(size.to_owned())),
            storage_class_name: Some("fast".to_owned()),
            ..Default::default()
        };
        let f = Fixture::new()
            .component(ComponentKind::Postgres, true, Some(sized("70Gi")))
            .component(ComponentKind::ClairPostgres, true, Some(sized("80Gi")))
            .component(ComponentKind::Clair, true, Some(sized("30Gi")));
        let rendered = f.render();
        let size = |claim: PersistentVolumeClaim| {
            let spec = claim.spec.unwrap();
            (
                spec.resources.unwrap().requests.unwrap()["storage"]
                    .0
                    .clone(),
                spec.storage_class_name,
            )
        };
        assert_eq!(
            size(pvc(&rendered, "reg-quay-postgres-13")),
            ("70Gi".to_owned(), Some("fast".to_owned()))
        );
        assert_eq!(
            size(pvc(&rendered, "reg-clair-postgres-15")).0,
            "80Gi".to_owned()
        );
        let clair = deployment(&rendered, "reg-clair-app")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let scratch = clair
            .volumes
            .unwrap()
            .into_iter()
            .find(|v| v.name == LAYER_STORAGE_VOLUME)
            .unwrap();
        let spec = scratch
            .ephemeral
            .unwrap()
            .volume_claim_template
            .unwrap()
            .spec;
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "30Gi"
        );
        assert_eq!(spec.storage_class_name.as_deref(), Some("fast"));
    }

    #[test]
    fn pvc_is_never_asked_to_shrink_below_its_live_size() {
        let mut f = Fixture::new();
        f.cluster.pvc_sizes.insert(
            "reg-quay-postgres-13".to_owned(),
            Quantity("100Gi".to_owned()),
        );
        let claim = pvc(&f.render(), "reg-quay-postgres-13");
        assert_eq!(
            claim.spec.unwrap().resources.unwrap().requests.unwrap()["storage"].0,
            "100Gi"
        );
    }

    #[test]
    fn affinity_override_replaces_default_anti_affinity() {
        let affinity = k8s_openapi::api::core::v1::Affinity::default();
        let f = Fixture::new().component(
            ComponentKind::Quay,
            true,
            Some(Override {
                affinity: Some(affinity.clone()),
                ..Default::default()
            }),
        );
        let app = deployment(&f.render(), "reg-quay-app")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert_eq!(app.affinity, Some(affinity));
    }
}
