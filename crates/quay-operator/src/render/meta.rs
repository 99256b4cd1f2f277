//! Object metadata shared by every component: names, labels, the owner reference, common annotations, and the
//! final pass that stamps them on every object and orders the list for applying.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::context::RenderContext;
use super::object::DesiredObject;
use crate::api::{REGISTRY_LABEL, TLS_SECRET_HASH_ANNOTATION};

/// Label and annotation key naming the component an object belongs to.
pub const QUAY_COMPONENT: &str = "quay-component";

/// Metadata of `<reg>-<suffix>` with the `quay-component` label and annotation.
pub fn object_meta(ctx: &RenderContext<'_>, suffix: &str, component: &str) -> ObjectMeta {
    named(ctx, &ctx.object_name(suffix), component)
}

/// Metadata with a full name (hash-suffixed Secrets), the `quay-component` label and annotation.
pub fn named(ctx: &RenderContext<'_>, name: &str, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: Some(ctx.namespace.clone()),
        labels: Some(labels(ctx, &[(QUAY_COMPONENT, component)])),
        annotations: Some(BTreeMap::from([(
            QUAY_COMPONENT.to_owned(),
            component.to_owned(),
        )])),
        ..Default::default()
    }
}

/// The registry label plus `extra`.
pub fn labels(ctx: &RenderContext<'_>, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([(REGISTRY_LABEL.to_owned(), ctx.name.clone())]);
    for (k, v) in extra {
        labels.insert((*k).to_owned(), (*v).to_owned());
    }
    labels
}

/// Pod selector labels: `quay-component: <value>` and the registry label.
pub fn selector(ctx: &RenderContext<'_>, component: &str) -> BTreeMap<String, String> {
    labels(ctx, &[(QUAY_COMPONENT, component)])
}

fn is_database_deployment(name: &str, ctx: &RenderContext<'_>) -> bool {
    [
        ctx.object_name("quay-database"),
        ctx.object_name("clair-postgres"),
    ]
    .iter()
    .any(|n| name.starts_with(n.as_str()))
}

/// Stamps namespace, registry label, owner reference and common annotations on every object; the CA/TLS hash
/// annotations and `quay-managed-fieldgroups` on workloads; and orders the list: configuration first, workloads
/// last, each group keeping render order.
pub fn finish(ctx: &RenderContext<'_>, objects: &mut Vec<DesiredObject>) {
    let field_groups: Vec<&str> = ctx
        .input
        .registry
        .spec
        .components
        .iter()
        .flatten()
        .filter(|c| c.managed)
        .filter_map(|c| c.kind.field_group())
        .chain(
            // Defaulted managed components count too (upstream wrote them into spec first).
            ctx.components
                .iter()
                .filter(|c| c.managed && c.spec_index.is_none())
                .filter_map(|c| c.kind.field_group()),
        )
        .collect();
    let field_groups = field_groups.join(",");

    for object in objects.iter_mut() {
        let meta = object.metadata_mut();
        if meta.namespace.is_none() {
            meta.namespace = Some(ctx.namespace.clone());
        }
        meta.labels
            .get_or_insert_with(BTreeMap::new)
            .insert(REGISTRY_LABEL.to_owned(), ctx.name.clone());
        let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
        for (k, v) in &ctx.common_annotations {
            annotations.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if meta.owner_references.is_none()
            && meta.namespace.as_deref() == Some(ctx.namespace.as_str())
        {
            meta.owner_references = Some(vec![ctx.owner.clone()]);
        }

        let name = object.name().to_owned();
        match object {
            DesiredObject::Deployment(d) => {
                let database = is_database_deployment(&name, ctx);
                let hashes = workload_hash_annotations(ctx);
                d.metadata
                    .annotations
                    .get_or_insert_with(BTreeMap::new)
                    .extend(hashes.iter().map(|(k, v)| (k.clone(), v.clone())));
                // Databases mount neither the cluster CAs nor the TLS pair: rotating those must not restart them.
                let pod_hashes = if database { BTreeMap::new() } else { hashes };
                if let Some(spec) = d.spec.as_mut() {
                    stamp_pod_template(
                        ctx,
                        &mut spec.template,
                        &pod_hashes,
                        database,
                        &field_groups,
                    );
                }
            }
            DesiredObject::Job(j) => {
                if let Some(spec) = j.spec.as_mut() {
                    stamp_pod_template(
                        ctx,
                        &mut spec.template,
                        &BTreeMap::new(),
                        false,
                        &field_groups,
                    );
                }
            }
            _ => {}
        }
    }
    // Stable partition: configuration and platform objects before Deployments and Jobs.
    // Objects are large (a Deployment is ~2.5 KB): move only the few workloads, not the whole list.
    let workloads: Vec<_> = objects.extract_if(.., |o| o.is_workload()).collect();
    objects.extend(workloads);
}

fn workload_hash_annotations(ctx: &RenderContext<'_>) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([
        (
            "cluster-service-ca".to_owned(),
            ctx.cluster_service_ca_hash.clone(),
        ),
        (
            "cluster-trusted-ca".to_owned(),
            ctx.cluster_trusted_ca_hash.clone(),
        ),
    ]);
    if let Some(h) = &ctx.tls_secret_hash {
        a.insert(TLS_SECRET_HASH_ANNOTATION.to_owned(), h.clone());
    }
    a
}

fn stamp_pod_template(
    ctx: &RenderContext<'_>,
    template: &mut PodTemplateSpec,
    hashes: &BTreeMap<String, String>,
    database: bool,
    field_groups: &str,
) {
    let meta = template.metadata.get_or_insert_with(Default::default);
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REGISTRY_LABEL.to_owned(), ctx.name.clone());
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    annotations.extend(hashes.clone());
    if !database {
        // Databases must not restart when the hostname changes.
        for (k, v) in &ctx.common_annotations {
            annotations.entry(k.clone()).or_insert_with(|| v.clone());
        }
        annotations.insert(
            "quay-managed-fieldgroups".to_owned(),
            field_groups.to_owned(),
        );
    }
}
