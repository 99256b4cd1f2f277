//! The render engine: a pure function from a QuayRegistry, its config bundle, the managed keys, what the cluster
//! offers and the operator's settings to the ordered list of objects the registry needs.
//!
//! One module per component, so that a reader who sees an object in the cluster finds the function that made it
//! in one hop. [`render`] validates everything first ([`crate::config::validate`]); nothing is half-rendered.

pub mod context;
pub mod object;

pub mod certificate;
mod clair;
mod clairpostgres;
mod gateway;
mod hpa;
pub mod images;
mod ingress;
pub mod meta;
mod mirror;
mod monitoring;
mod objectstorage;
mod overrides;
mod postgres;
pub mod postgres_upgrade;
mod quay;
mod redis;
pub mod route;
pub mod secrets;
#[cfg(test)]
pub(crate) mod testing;
mod workload;

pub use context::{
    ClusterFacts, ExternalTls, ImageSettings, ObjectBucket, OperatorSettings, ProxySettings,
    RenderInput,
};
pub use object::DesiredObject;

use crate::api::ComponentStatus;
use crate::config::{self, Problem, RenderError};
use context::RenderContext;

/// Everything a render produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    /// Objects in apply order: configuration before workloads, databases before the workloads that need them.
    pub objects: Vec<DesiredObject>,
    /// The effective component list (declared + defaulted), for `status.components`.
    pub components: Vec<ComponentStatus>,
    /// Name of the rendered (hash-suffixed) Quay config Secret.
    pub config_secret_name: String,
    /// Problems that do not block the rollout (e.g. a certificate expiring within 30 days).
    pub warnings: Vec<Problem>,
}

/// Renders the desired objects of one registry, or the first problem that blocks its rollout.
pub fn render(input: &RenderInput<'_>) -> Result<Rendered, RenderError> {
    let report = config::validate(input);
    if let Some(blocking) = report.first_error() {
        return Err(blocking.clone().into());
    }
    let mut ctx = RenderContext::new(input)?;
    let mut objects = Vec::with_capacity(48);

    // Configuration objects first: Secrets and ConfigMaps the workloads mount.
    secrets::render(&mut ctx, &mut objects)?;
    quay::render_config_objects(&ctx, &mut objects);
    // Platform objects.
    route::render(&ctx, &mut objects);
    objectstorage::render(&ctx, &mut objects);
    monitoring::render(&ctx, &mut objects);
    // Databases and cache, then the workloads that need them.
    postgres::render(&ctx, &mut objects)?;
    clairpostgres::render(&ctx, &mut objects)?;
    redis::render(&ctx, &mut objects);
    quay::render_workloads(&ctx, &mut objects);
    clair::render(&ctx, &mut objects)?;
    mirror::render(&ctx, &mut objects);
    hpa::render(&ctx, &mut objects);

    workload::restrict_pods(&mut objects);
    overrides::apply(&ctx, &mut objects)?;
    // After the overrides: an upgrade in progress decides the replicas of the databases and their users.
    postgres_upgrade::render(&ctx, &mut objects);
    meta::finish(&ctx, &mut objects);

    Ok(Rendered {
        objects,
        components: ctx.component_statuses(),
        config_secret_name: ctx.names.config_secret.clone(),
        warnings: report.warnings().cloned().collect(),
    })
}
