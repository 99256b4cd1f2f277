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
    meta_named(ctx, ctx.object_name(suffix), component)
}

/// Metadata with a full name (hash-suffixed Secrets), the `quay-component` label and annotation.
pub fn named(ctx: &RenderContext<'_>, name: &str, component: &str) -> ObjectMeta {
    meta_named(ctx, name.to_owned(), component)
}

fn meta_named(ctx: &RenderContext<'_>, name: String, component: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
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
    let hashes = workload_hash_annotations(ctx);
    let databases = [
        ctx.object_name("quay-database"),
        ctx.object_name("clair-postgres"),
    ];
    let no_hashes = BTreeMap::new();

    for object in objects.iter_mut() {
        let meta = object.metadata_mut();
        if meta.namespace.is_none() {
            meta.namespace = Some(ctx.namespace.clone());
        }
        set_registry_label(ctx, meta.labels.get_or_insert_with(BTreeMap::new));
        insert_missing(
            meta.annotations.get_or_insert_with(BTreeMap::new),
            &ctx.common_annotations,
        );
        if meta.owner_references.is_none()
            && meta.namespace.as_deref() == Some(ctx.namespace.as_str())
        {
            meta.owner_references = Some(vec![ctx.owner.clone()]);
        }

        match object {
            DesiredObject::Deployment(d) => {
                let name = d.metadata.name.as_deref().unwrap_or_default();
                let database = databases.iter().any(|n| name.starts_with(n.as_str()));
                insert_all(
                    d.metadata.annotations.get_or_insert_with(BTreeMap::new),
                    &hashes,
                );
                // Databases mount neither the cluster CAs nor the TLS pair: rotating those must not restart them.
                let pod_hashes = if database { &no_hashes } else { &hashes };
                if let Some(spec) = d.spec.as_mut() {
                    stamp_pod_template(
                        ctx,
                        &mut spec.template,
                        pod_hashes,
                        database,
                        &field_groups,
                    );
                }
            }
            DesiredObject::Job(j) => {
                if let Some(spec) = j.spec.as_mut() {
                    stamp_pod_template(ctx, &mut spec.template, &no_hashes, false, &field_groups);
                }
            }
            _ => {}
        }
    }
    // Stable partition: configuration and platform objects before Deployments and Jobs.
    let workloads: Vec<_> = objects.extract_if(.., |o| o.is_workload()).collect();
    objects.extend(workloads);
}

/// The registry label; most objects carry it from birth, and re-inserting would only copy two strings.
fn set_registry_label(ctx: &RenderContext<'_>, labels: &mut BTreeMap<String, String>) {
    if labels.get(REGISTRY_LABEL) != Some(&ctx.name) {
        labels.insert(REGISTRY_LABEL.to_owned(), ctx.name.clone());
    }
}

/// Adds the entries of `from` whose keys `target` lacks.
fn insert_missing(target: &mut BTreeMap<String, String>, from: &BTreeMap<String, String>) {
    for (k, v) in from {
        if !target.contains_key(k) {
            target.insert(k.clone(), v.clone());
        }
    }
}

/// Adds or replaces every entry of `from`.
fn insert_all(target: &mut BTreeMap<String, String>, from: &BTreeMap<String, String>) {
    for (k, v) in from {
        target.insert(k.clone(), v.clone());
    }
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
    set_registry_label(ctx, meta.labels.get_or_insert_with(BTreeMap::new));
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    insert_all(annotations, hashes);
    if !database {
        // Databases must not restart when the hostname changes.
        insert_missing(annotations, &ctx.common_annotations);
        annotations.insert(
            "quay-managed-fieldgroups".to_owned(),
            field_groups.to_owned(),
        );
    }
}
