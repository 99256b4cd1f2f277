//! Building blocks the workload components share: containers' env, ports, probes and resources, volumes,
//! Deployments, Services, PVCs. Pure constructors of typed k8s-openapi structs (no YAML/JSON round trips, so a
//! full render stays in the tens of microseconds).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapProjection, Container, ContainerPort, EnvVar, EnvVarSource,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSecurityContext, PodSpec, PodTemplateSpec, ProjectedVolumeSource,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretProjection, SecurityContext,
    Service, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::context::{IpFamilies, RenderContext};
use super::object::DesiredObject;

/// Label key of the pod anti-affinity and of every component selector.
pub const QUAY_COMPONENT: &str = super::meta::QUAY_COMPONENT;

/// `name=value`.
pub fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.to_owned()),
        value_from: None,
    }
}

/// `name` from `key` of Secret `secret`.
pub fn env_from_secret(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: None,
            }),
            ..Default::default()
        }),
    }
}

/// `name` from a field of the pod (downward API).
pub fn env_from_field(name: &str, field_path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: field_path.to_owned(),
            }),
            ..Default::default()
        }),
    }
}

/// `HTTP_PROXY`, `HTTPS_PROXY`, `NO_PROXY` from the rendered proxy Secret.
pub fn proxy_env(ctx: &RenderContext<'_>) -> [EnvVar; 3] {
    let secret = ctx.names.proxy_secret.as_str();
    ["HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"].map(|k| env_from_secret(k, secret, k))
}

/// Upserts `var` by name: replaces the whole entry in place, or appends it.
pub fn upsert_env(envs: &mut Vec<EnvVar>, var: &EnvVar) {
    match envs.iter_mut().find(|e| e.name == var.name) {
        Some(existing) => *existing = var.clone(),
        None => envs.push(var.clone()),
    }
}

pub fn quantity(q: &str) -> Quantity {
    Quantity(q.to_owned())
}

fn quantities(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Quantity>> {
    (!pairs.is_empty()).then(|| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), quantity(v)))
            .collect()
    })
}

/// Requests `(cpu, memory)` and optional limits `(cpu, memory)`.
pub fn resources(requests: (&str, &str), limits: Option<(&str, &str)>) -> ResourceRequirements {
    ResourceRequirements {
        requests: quantities(&[("cpu", requests.0), ("memory", requests.1)]),
        limits: limits.and_then(|(cpu, memory)| quantities(&[("cpu", cpu), ("memory", memory)])),
        claims: None,
    }
}

/// An unnamed TCP container port.
pub fn port(number: i32) -> ContainerPort {
    ContainerPort {
        container_port: number,
        protocol: Some("TCP".to_owned()),
        ..Default::default()
    }
}

/// A named TCP container port.
pub fn named_port(name: &str, number: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        ..port(number)
    }
}

/// A TCP Service port `port → target`.
pub fn service_port(name: Option<&str>, port: i32, target: i32) -> ServicePort {
    ServicePort {
        name: name.map(str::to_owned),
        port,
        protocol: Some("TCP".to_owned()),
        target_port: Some(IntOrString::Int(target)),
        ..Default::default()
    }
}

/// A ClusterIP Service selecting `selector`.
pub fn cluster_ip_service(
    metadata: ObjectMeta,
    selector: BTreeMap<String, String>,
    ports: Vec<ServicePort>,
) -> Service {
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}

/// Sets a Service's IP family policy from `FEATURE_LISTEN_IP_VERSION`: IPv4 leaves the cluster default,
/// IPv6 asks for a single IPv6 stack, dual-stack prefers both (and still works on a single-stack cluster).
pub fn set_ip_families(ctx: &RenderContext<'_>, service: &mut Service) {
    let Some(spec) = service.spec.as_mut() else {
        return;
    };
    let (policy, families): (&str, &[&str]) = match ctx.ip_families {
        IpFamilies::V4 => return,
        IpFamilies::V6 => ("SingleStack", &["IPv6"]),
        IpFamilies::DualStack => ("PreferDualStack", &["IPv4", "IPv6"]),
    };
    spec.ip_family_policy = Some(policy.to_owned());
    spec.ip_families = Some(families.iter().map(|f| (*f).to_owned()).collect());
}

/// A volume mount.
pub fn mount(name: &str, path: &str, read_only: Option<bool>) -> VolumeMount {
    VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only,
        ..Default::default()
    }
}

/// A mount of one key of a volume (`subPath`).
pub fn sub_path_mount(name: &str, path: &str, sub_path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        sub_path: Some(sub_path.to_owned()),
        read_only: read_only.then_some(true),
        ..mount(name, path, None)
    }
}

pub fn secret_source(name: &str, optional: bool) -> VolumeProjection {
    VolumeProjection {
        secret: Some(SecretProjection {
            name: name.to_owned(),
            optional: optional.then_some(true),
            items: None,
        }),
        ..Default::default()
    }
}

pub fn config_map_source(name: &str) -> VolumeProjection {
    VolumeProjection {
        config_map: Some(ConfigMapProjection {
            name: name.to_owned(),
            optional: None,
            items: None,
        }),
        ..Default::default()
    }
}

pub fn projected_volume(name: &str, sources: Vec<VolumeProjection>) -> Volume {
    Volume {
        name: name.to_owned(),
        projected: Some(ProjectedVolumeSource {
            sources: Some(sources),
            default_mode: None,
        }),
        ..Default::default()
    }
}

/// The security context of every Quay container (quay-app, mirror, the migration Job): no privilege
/// escalation, non-root, all capabilities dropped except binding low ports.
pub fn quay_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: Some(vec!["NET_BIND_SERVICE".to_owned()]),
        }),
        ..Default::default()
    }
}

/// Brings every pod the render produced (Deployments and Jobs) to the Kubernetes Pod Security Standards
/// "restricted" profile (docs/pod-security.md). Runs before the user's overrides, so a `securityContext`
/// override still replaces a container's context as upstream documents.
pub fn restrict_pods(objects: &mut [DesiredObject]) {
    for object in objects {
        let pod = match object {
            DesiredObject::Deployment(d) => d.spec.as_mut().and_then(|s| s.template.spec.as_mut()),
            DesiredObject::Job(j) => j.spec.as_mut().and_then(|s| s.template.spec.as_mut()),
            _ => None,
        };
        if let Some(pod) = pod {
            restrict_pod(pod);
        }
    }
}

/// The "restricted" profile for one pod: non-root with the runtime's default seccomp profile at pod level;
/// in every container (init containers too) no privilege escalation and all capabilities dropped. What a
/// component already set (Quay's `NET_BIND_SERVICE`) is kept.
pub fn restrict_pod(pod: &mut PodSpec) {
    let pod_context = pod
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    pod_context.run_as_non_root.get_or_insert(true);
    pod_context
        .seccomp_profile
        .get_or_insert_with(|| SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        });
    let init = pod.init_containers.iter_mut().flatten();
    for container in pod.containers.iter_mut().chain(init) {
        let context = container
            .security_context
            .get_or_insert_with(SecurityContext::default);
        context.allow_privilege_escalation.get_or_insert(false);
        context
            .capabilities
            .get_or_insert_with(Capabilities::default)
            .drop
            .get_or_insert_with(|| vec!["ALL".to_owned()]);
    }
}

/// Preferred (weight 100) anti-affinity spreading pods with `quay-component: <value>` over nodes.
pub fn spread_over_nodes(value: &str) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_expressions: Some(vec![LabelSelectorRequirement {
                                key: QUAY_COMPONENT.to_owned(),
                                operator: "In".to_owned(),
                                values: Some(vec![value.to_owned()]),
                            }]),
                            match_labels: None,
                        }),
                        topology_key: "kubernetes.io/hostname".to_owned(),
                        ..Default::default()
                    },
                },
            ]),
            required_during_scheduling_ignored_during_execution: None,
        }),
        ..Default::default()
    }
}

/// Metadata of `<reg>-<suffix>` whose `quay-component` label differs from its annotation (clair-app and the
/// mirror workers are labelled like their pods, annotated with their component kind).
pub fn labelled_meta(
    ctx: &RenderContext<'_>,
    suffix: &str,
    label: &str,
    annotation: &str,
) -> ObjectMeta {
    let mut metadata = super::meta::object_meta(ctx, suffix, annotation);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(QUAY_COMPONENT.to_owned(), label.to_owned());
    metadata
}

/// A Deployment whose pods carry exactly the selector labels.
pub fn deployment(
    metadata: ObjectMeta,
    selector: BTreeMap<String, String>,
    replicas: Option<i32>,
    strategy: Option<DeploymentStrategy>,
    pod: PodSpec,
) -> Deployment {
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector.clone()),
                match_expressions: None,
            },
            strategy,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(selector),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

/// `Recreate`: a database pod must be gone before its successor mounts the same volume.
pub fn recreate() -> Option<DeploymentStrategy> {
    Some(DeploymentStrategy {
        type_: Some("Recreate".to_owned()),
        rolling_update: None,
    })
}

/// A ReadWriteOnce PVC of `size`.
pub fn pvc(metadata: ObjectMeta, size: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata,
        spec: Some(pvc_spec(size)),
        status: None,
    }
}

pub fn pvc_spec(size: &str) -> PersistentVolumeClaimSpec {
    PersistentVolumeClaimSpec {
        access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
        resources: Some(VolumeResourceRequirements {
            requests: quantities(&[("storage", size)]),
            limits: None,
        }),
        ..Default::default()
    }
}

/// A container with the given name and image; everything else defaulted.
pub fn container(name: &str, image: &str) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        ..Default::default()
    }
}

/// The number of bytes a storage quantity stands for (`50Gi`, `500M`, `1.5Ti`, `1e9`); `None` if unparsable.
/// Only used to compare sizes, so `f64` precision is plenty.
pub fn quantity_bytes(q: &str) -> Option<f64> {
    const SUFFIXES: [(&str, f64); 14] = [
        ("Ki", 1024.0),
        ("Mi", 1_048_576.0),
        ("Gi", 1_073_741_824.0),
        ("Ti", 1_099_511_627_776.0),
        ("Pi", 1_125_899_906_842_624.0),
        ("Ei", 1_152_921_504_606_846_976.0),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    let q = q.trim();
    SUFFIXES.iter().find_map(|(suffix, factor)| {
        let number = q.strip_suffix(suffix)?;
        number.parse::<f64>().ok().map(|n| n * factor)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_compare_by_bytes() {
        assert_eq!(quantity_bytes("50Gi"), Some(50.0 * 1024f64.powi(3)));
        assert_eq!(quantity_bytes("1e3"), Some(1000.0));
        assert_eq!(quantity_bytes("1.5k"), Some(1500.0));
        assert!(quantity_bytes("60G").unwrap() > quantity_bytes("50Gi").unwrap());
        assert!(quantity_bytes("100Mi").unwrap() < quantity_bytes("1Gi").unwrap());
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("5Zi"), None);
        assert_eq!(quantity_bytes("2E"), Some(2e18));
    }

    #[test]
    fn upsert_replaces_in_place_and_appends_new_names() {
        let mut envs = vec![env("A", "1"), env("B", "2")];
        upsert_env(&mut envs, &env_from_secret("A", "s", "k"));
        upsert_env(&mut envs, &env("C", "3"));
        assert_eq!(envs[0].name, "A");
        assert!(envs[0].value.is_none() && envs[0].value_from.is_some());
        assert_eq!(
            envs.iter().map(|e| e.name.as_str()).collect::<Vec<_>>(),
            ["A", "B", "C"]
        );
    }
}
