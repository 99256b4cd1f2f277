//! Managed PostgreSQL major-version upgrades, as a state machine driven only by what the cluster shows, so that an
//! operator stopped at any point resumes where the upgrade is:
//!
//! | the cluster shows | stage |
//! |---|---|
//! | database Deployment on an older major, pods still there | stop it and its users ([`UpgradeStage::StopDatabase`]) |
//! | … stopped, `<reg>-<db>-old` not available | serve the old volume with the old image ([`UpgradeStage::ServeOldData`]) |
//! | … `<reg>-<db>-old` available, or the upgrade Job running or failed | run / keep the Job ([`UpgradeStage::Migrate`]) |
//! | … the Job succeeded | the normal render switches the database to the new image and volume |
//! | database on the current major, upgrade objects left | once it is available: keep (or delete) the old volume, remove the temporary Deployment, Service and Job |
//!
//! [`observe`] reads, [`decide`] is pure, [`clean_up`] writes what the render cannot express (deletions and the
//! release of the old volume).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::context::Context;
use super::reconcile::{Error, RETAINED_FROM_LABEL};
use crate::api::QuayRegistry;
use crate::config::ConfigBundle;
use crate::render::ClusterFacts;
use crate::render::context::{Images, effective_components};
use crate::render::images::repository_basename;
use crate::render::postgres_upgrade::{
    PostgresUpgrade, UPGRADE_FROM_ANNOTATION, UPGRADE_PATHS, UpgradePath, UpgradeStage,
    image_major_version,
};

/// Annotation on a QuayRegistry that opts in to deleting the old database volume once an upgrade succeeded.
pub const DELETE_OLD_VOLUME_ANNOTATION: &str = "quay-operator.rs/delete-old-postgres-volume";
/// `ComponentsCreated` reasons (upstream's).
pub const REASON_IN_PROGRESS: &str = "PostgresUpgradeInProgress";
pub const REASON_FAILED: &str = "PostgresUpgradeFailed";
/// How often a stopping database is looked at again: its pods are not watched.
pub const STOPPING_RECHECK: Duration = Duration::from_secs(5);

/// What the operator sees of one managed database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DatabaseObservation {
    /// `<reg>-<db>`.
    pub database: Option<LiveDatabase>,
    /// `<reg>-<db>-old`, the temporary server of the old data.
    pub old_server: Option<LiveOldServer>,
    pub old_service: bool,
    /// `<reg>-<db>-postgres-upgrade`.
    pub job: Option<LiveJob>,
    /// Pods of the database Deployment; `None` when they were not listed.
    pub database_pods: Option<usize>,
    /// The old volume, once the upgrade objects name it.
    pub old_claim: Option<LiveClaim>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveDatabase {
    pub image: String,
    /// The PVC it mounts.
    pub claim: Option<String>,
    pub replicas: i32,
    /// `status.replicas`.
    pub running: i32,
    /// The Deployment controller has seen its latest spec.
    pub observed: bool,
    pub available: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveOldServer {
    pub image: String,
    pub claim: Option<String>,
    pub available: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveJob {
    /// [`UPGRADE_FROM_ANNOTATION`]: the old volume.
    pub from_claim: Option<String>,
    pub state: JobState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Running,
    Succeeded,
    /// The Job's failure message.
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LiveClaim {
    pub name: String,
    /// Still owned by the registry (garbage-collected with it).
    pub owned: bool,
    /// Carries [`RETAINED_FROM_LABEL`].
    pub labelled: bool,
}

/// What the upgrade of one database needs now.
#[derive(Debug, Clone)]
pub struct DatabaseDecision {
    pub path: &'static UpgradePath,
    /// The render's instruction (`None`: render as usual).
    pub render: Option<PostgresUpgrade>,
    /// `ComponentsCreated=False` with this reason and message, while the upgrade decides it.
    pub report: Option<(&'static str, String)>,
    pub clean_up: Option<CleanUp>,
    /// Look again after this long even if no watched object changes.
    pub recheck: Option<Duration>,
}

/// The writes that end an upgrade, in this order (the Job, which names the old volume, goes last).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CleanUp {
    pub old_claim: Option<OldClaimAction>,
    pub delete_old_server: bool,
    pub delete_old_service: bool,
    pub delete_job: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OldClaimAction {
    /// Remove the registry's ownerReference and label it [`RETAINED_FROM_LABEL`].
    Keep(String),
    /// The registry opted in with [`DELETE_OLD_VOLUME_ANNOTATION`].
    Delete(String),
}

/// Whether the database moves to a newer major: `(from, to)`. Decided on the majors in the image names when both
/// say; otherwise on the previous image's repository name (an image override whose name says nothing is a plain
/// update, never a data migration).
pub fn major_change(
    path: &UpgradePath,
    live: &str,
    expected: &str,
    previous: &str,
) -> Option<(u32, u32)> {
    if repository_basename(live) == repository_basename(expected) {
        return None;
    }
    match (image_major_version(live), image_major_version(expected)) {
        (Some(from), Some(to)) => (from < to).then_some((from, to)),
        (from, to) => (repository_basename(live) == repository_basename(previous))
            .then(|| (from.unwrap_or(path.old_major), to.unwrap_or(path.new_major))),
    }
}

/// The pure decision for one database of registry `registry`.
pub fn decide(
    path: &'static UpgradePath,
    registry: &str,
    observation: &DatabaseObservation,
    images: &Images,
    delete_old_volume: bool,
) -> DatabaseDecision {
    let mut decision = DatabaseDecision {
        path,
        render: None,
        report: None,
        clean_up: None,
        recheck: None,
    };
    let Some(db) = &observation.database else {
        // A fresh install (or a deleted database, which the render re-creates): nothing to upgrade.
        return decision;
    };
    let expected = (path.image)(images);
    let previous = (path.previous_image)(images);
    let new_claim = format!("{registry}-{}", path.pvc());
    let Some((from, to)) = major_change(path, &db.image, expected, previous) else {
        let leftovers = observation.job.is_some()
            || observation.old_server.is_some()
            || observation.old_service;
        if let Some(claim) = db.claim.as_ref().filter(|c| **c != new_claim && !leftovers) {
            // The current major on another volume (a hand-made layout): the render would move the database to an
            // empty volume. It keeps its volume and image, and the admin is told.
            decision.render = Some(PostgresUpgrade {
                component: path.component,
                old_image: db.image.clone(),
                old_claim: claim.clone(),
                stage: UpgradeStage::Pin,
            });
            decision.report = Some((
                REASON_FAILED,
                format!(
                    "the {} Deployment {registry}-{} keeps its data on {claim}, not on {new_claim}: left as it is; move the data to {new_claim} (or rename the volume) to let the operator manage it",
                    path.display, path.deployment
                ),
            ));
            return decision;
        }
        decision_after_upgrade(&mut decision, registry, observation, db, delete_old_volume);
        return decision;
    };
    let what = format!("{} from PostgreSQL {from} to {to}", path.display);
    let old_claim = match &db.claim {
        Some(claim) if *claim != new_claim => claim.clone(),
        other => {
            // Nothing to copy from, or the old major already sits on the new version's volume: the database keeps
            // running as it is and the admin is told.
            decision.render = Some(PostgresUpgrade {
                component: path.component,
                old_image: db.image.clone(),
                old_claim: other.clone().unwrap_or_default(),
                stage: UpgradeStage::Pin,
            });
            let mounts = other.as_deref().unwrap_or("no volume");
            decision.report = Some((
                REASON_FAILED,
                format!(
                    "cannot upgrade the {what}: its Deployment {registry}-{} mounts {mounts}, not a volume of the old version; nothing was changed",
                    path.deployment
                ),
            ));
            return decision;
        }
    };
    let upgrade = |stage| PostgresUpgrade {
        component: path.component,
        old_image: db.image.clone(),
        old_claim: old_claim.clone(),
        stage,
    };
    let job = format!("{registry}-{}", path.job);
    let old_server = format!("{registry}-{}", path.old_server);
    let (stage, report) = match observation.job.as_ref().map(|j| &j.state) {
        Some(JobState::Succeeded) => {
            decision.render = Some(upgrade(UpgradeStage::SwitchOver));
            decision.report = Some((
                REASON_IN_PROGRESS,
                format!("upgrading the {what}: Job {job} succeeded, switching to the new version"),
            ));
            return decision;
        }
        Some(JobState::Failed(message)) => (
            UpgradeStage::Migrate,
            (
                REASON_FAILED,
                format!(
                    "upgrading the {what}: Job {job} failed: {message}; the old volume {old_claim} is unchanged (delete the Job to try again)"
                ),
            ),
        ),
        Some(JobState::Running) => (
            UpgradeStage::Migrate,
            (
                REASON_IN_PROGRESS,
                format!("upgrading the {what}: Job {job} is copying {old_claim} to {new_claim}"),
            ),
        ),
        None => {
            let stopped = db.replicas == 0 && db.running == 0 && db.observed;
            let old_server_available = observation.old_server.as_ref().is_some_and(|o| o.available);
            if observation.old_server.is_none()
                && !(stopped && observation.database_pods == Some(0))
            {
                if stopped {
                    decision.recheck = Some(STOPPING_RECHECK);
                }
                (
                    UpgradeStage::StopDatabase,
                    (
                        REASON_IN_PROGRESS,
                        format!(
                            "upgrading the {what}: stopping {registry}-{} and the workloads that use it",
                            path.deployment
                        ),
                    ),
                )
            } else if !old_server_available {
                (
                    UpgradeStage::ServeOldData,
                    (
                        REASON_IN_PROGRESS,
                        format!(
                            "upgrading the {what}: starting {old_server} on the old volume {old_claim}"
                        ),
                    ),
                )
            } else {
                (
                    UpgradeStage::Migrate,
                    (
                        REASON_IN_PROGRESS,
                        format!(
                            "upgrading the {what}: Job {job} is copying {old_claim} to {new_claim}"
                        ),
                    ),
                )
            }
        }
    };
    decision.render = Some(upgrade(stage));
    decision.report = Some(report);
    decision
}

/// The database runs the current major: if upgrade objects are left, wait for it to be available, then end the
/// upgrade.
fn decision_after_upgrade(
    decision: &mut DatabaseDecision,
    registry: &str,
    observation: &DatabaseObservation,
    db: &LiveDatabase,
    delete_old_volume: bool,
) {
    let path = decision.path;
    let leftovers =
        observation.job.is_some() || observation.old_server.is_some() || observation.old_service;
    if !leftovers {
        return;
    }
    if !(db.available && db.observed) {
        decision.render = Some(PostgresUpgrade {
            component: path.component,
            old_image: db.image.clone(),
            old_claim: observation
                .old_claim
                .as_ref()
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            stage: UpgradeStage::SwitchOver,
        });
        decision.report = Some((
            REASON_IN_PROGRESS,
            format!(
                "upgrading the {}: waiting for {registry}-{} to start on the new version",
                path.display, path.deployment
            ),
        ));
        return;
    }
    let old_claim = observation.old_claim.as_ref().and_then(|claim| {
        if delete_old_volume {
            Some(OldClaimAction::Delete(claim.name.clone()))
        } else if claim.owned || !claim.labelled {
            Some(OldClaimAction::Keep(claim.name.clone()))
        } else {
            None
        }
    });
    decision.clean_up = Some(CleanUp {
        old_claim,
        delete_old_server: observation.old_server.is_some(),
        delete_old_service: observation.old_service,
        delete_job: observation.job.is_some(),
    });
}

/// The decisions for every managed database of a registry.
pub async fn observe_and_decide(
    registry: &QuayRegistry,
    ctx: &Context,
    bundle: &ConfigBundle,
    cluster: &ClusterFacts,
) -> Result<Vec<DatabaseDecision>, Error> {
    let components = effective_components(registry, bundle, cluster);
    let images = crate::render::images::resolve(&ctx.settings.images);
    let name = registry.name_any();
    let delete_old_volume = registry
        .annotations()
        .get(DELETE_OLD_VOLUME_ANNOTATION)
        .map(String::as_str)
        == Some("true");
    let mut decisions = Vec::new();
    for path in UPGRADE_PATHS {
        if !components
            .iter()
            .any(|c| c.kind == path.component && c.managed)
        {
            continue;
        }
        let observation = observe(registry, ctx, path).await?;
        decisions.push(decide(
            path,
            &name,
            &observation,
            &images,
            delete_old_volume,
        ));
    }
    Ok(decisions)
}

/// Reads one database's objects from the watch caches; lists its pods only when it looks stopped and an upgrade
/// is about to use its volume.
pub async fn observe(
    registry: &QuayRegistry,
    ctx: &Context,
    path: &UpgradePath,
) -> Result<DatabaseObservation, Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    let object = |suffix: &str| format!("{name}-{suffix}");
    let owned = |meta: &kube::api::ObjectMeta| {
        meta.labels
            .as_ref()
            .and_then(|l| l.get(crate::api::REGISTRY_LABEL))
            .is_some_and(|r| *r == name)
    };
    let mut database_deployment = ctx
        .cached_typed::<Deployment>(&namespace, &object(path.deployment))
        .filter(|d| owned(&d.metadata));
    if database_deployment
        .as_ref()
        .is_some_and(|d| image_of(d).is_none())
    {
        // A cache that keeps no container image: the image decides the upgrade, read it.
        let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
        database_deployment = deployments
            .get_opt(&object(path.deployment))
            .await
            .map_err(api_error("get", "Deployment", &object(path.deployment)))?;
    }
    let old_server = ctx
        .cached_typed::<Deployment>(&namespace, &object(path.old_server))
        .filter(|d| owned(&d.metadata))
        .map(|d| LiveOldServer {
            image: image_of(&d).unwrap_or_default(),
            claim: claim_of(&d),
            available: available(&d),
        });
    let old_service = ctx
        .cached_typed::<Service>(&namespace, &object(path.old_server))
        .is_some_and(|s| owned(&s.metadata));
    let job = ctx
        .cached_typed::<Job>(&namespace, &object(path.job))
        .filter(|j| owned(&j.metadata))
        .map(|j| LiveJob {
            from_claim: j.annotations().get(UPGRADE_FROM_ANNOTATION).cloned(),
            state: job_state(&j),
        });
    let database = database_deployment.as_ref().map(|d| {
        let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = d.status.clone().unwrap_or_default();
        LiveDatabase {
            image: image_of(d).unwrap_or_default(),
            claim: claim_of(d),
            replicas: spec_replicas,
            running: status.replicas.unwrap_or(0),
            observed: status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0),
            available: available(d),
        }
    });
    // A database Deployment deleted during an upgrade comes back as the old one it was (held, stopped): never as
    // the new version on a volume the Job may have half filled.
    let database = database.or_else(|| {
        old_server
            .as_ref()
            .filter(|o| !o.image.is_empty())
            .map(|o| LiveDatabase {
                image: o.image.clone(),
                claim: o.claim.clone(),
                replicas: 0,
                running: 0,
                observed: true,
                available: false,
            })
    });
    let claim_name = job
        .as_ref()
        .and_then(|j| j.from_claim.clone())
        .or_else(|| old_server.as_ref().and_then(|o| o.claim.clone()));
    let old_claim = claim_name.and_then(|claim| {
        let pvc = ctx.cached_typed::<PersistentVolumeClaim>(&namespace, &claim)?;
        let uid = registry.uid().unwrap_or_default();
        Some(LiveClaim {
            name: claim,
            owned: pvc.owner_references().iter().any(|o| o.uid == uid),
            labelled: pvc.labels().get(RETAINED_FROM_LABEL) == Some(&name),
        })
    });
    let mut observation = DatabaseObservation {
        database,
        old_server,
        old_service,
        job,
        database_pods: None,
        old_claim,
    };
    let stopped_without_successor = observation
        .database
        .as_ref()
        .is_some_and(|d| d.replicas == 0 && d.running == 0 && d.observed)
        && observation.old_server.is_none()
        && observation.job.is_none();
    if stopped_without_successor && let Some(d) = &database_deployment {
        observation.database_pods = Some(count_pods(ctx, &namespace, d).await?);
    }
    Ok(observation)
}

fn image_of(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.containers.first())
        .and_then(|c| c.image.clone())
        .filter(|i| !i.is_empty())
}

fn claim_of(d: &Deployment) -> Option<String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.volumes.as_ref())
        .and_then(|vs| vs.iter().find_map(|v| v.persistent_volume_claim.as_ref()))
        .map(|c| c.claim_name.clone())
}

fn available(d: &Deployment) -> bool {
    d.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
        > 0
}

fn job_state(job: &Job) -> JobState {
    let status = job.status.clone().unwrap_or_default();
    let condition = |type_: &str| {
        status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == type_ && c.status == "True")
            .cloned()
    };
    if status.succeeded.unwrap_or(0) > 0 || condition("Complete").is_some() {
        return JobState::Succeeded;
    }
    match condition("Failed") {
        Some(c) => JobState::Failed(
            c.message
                .unwrap_or_else(|| "failed to run postgres upgrade".to_owned()),
        ),
        None => JobState::Running,
    }
}

/// Pods of the database Deployment (terminating ones included: the volume is only free once they are gone).
async fn count_pods(ctx: &Context, namespace: &str, d: &Deployment) -> Result<usize, Error> {
    let selector = d
        .spec
        .as_ref()
        .and_then(|s| s.selector.match_labels.clone())
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    if selector.is_empty() {
        return Ok(0);
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let list = pods
        .list_metadata(&ListParams::default().labels(&selector))
        .await
        .map_err(api_error("list", "Pod", &selector))?;
    Ok(list.items.len())
}

fn api_error(
    action: &'static str,
    kind: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let name = name.to_owned();
    move |source| Error::Api {
        action,
        kind: kind.to_owned(),
        name,
        source,
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// The temporary server and the upgrade Job are applied while the database they stand in for is unavailable
/// (the workloads that need the database wait for it; these are what it waits for).
pub fn is_upgrade_workload(object: &str, registry: &str) -> bool {
    UPGRADE_PATHS.iter().any(|p| {
        object == format!("{registry}-{}", p.old_server)
            || object == format!("{registry}-{}", p.job)
    })
}

/// The `ComponentsCreated` condition an upgrade decides: a failure first, then one in progress.
pub fn report(decisions: &[DatabaseDecision]) -> Option<(&'static str, String)> {
    let reports = decisions.iter().filter_map(|d| d.report.clone());
    let (failed, running): (Vec<_>, Vec<_>) = reports.partition(|(r, _)| *r == REASON_FAILED);
    failed.into_iter().chain(running).next()
}

/// How soon to look again while a database is stopping.
pub fn recheck(decisions: &[DatabaseDecision]) -> Option<Duration> {
    decisions.iter().filter_map(|d| d.recheck).min()
}

/// Ends finished upgrades: the old volume kept (released from the registry) or deleted on opt-in, then the
/// temporary Deployment, its Service and the Job removed. Each step is idempotent, and the Job that names the
/// old volume goes last, so a restart in between finishes the same way.
pub async fn clean_up(
    registry: &QuayRegistry,
    ctx: &Context,
    decisions: &[DatabaseDecision],
) -> Result<(), Error> {
    let namespace = registry.namespace().unwrap_or_default();
    let name = registry.name_any();
    for decision in decisions {
        let Some(clean_up) = &decision.clean_up else {
            continue;
        };
        let path = decision.path;
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        match &clean_up.old_claim {
            Some(OldClaimAction::Keep(claim)) => {
                keep_volume(&pvcs, ctx, &namespace, claim, registry).await?;
            }
            Some(OldClaimAction::Delete(claim)) => {
                delete(&pvcs, claim, "PersistentVolumeClaim").await?;
            }
            None => {}
        }
        if clean_up.delete_old_server {
            let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
            delete(
                &deployments,
                &format!("{name}-{}", path.old_server),
                "Deployment",
            )
            .await?;
        }
        if clean_up.delete_old_service {
            let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
            delete(&services, &format!("{name}-{}", path.old_server), "Service").await?;
        }
        if clean_up.delete_job {
            let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
            delete(&jobs, &format!("{name}-{}", path.job), "Job").await?;
        }
        tracing::info!(
            registry = %name,
            namespace = %namespace,
            database = path.display,
            "PostgreSQL upgrade finished"
        );
    }
    Ok(())
}

/// Releases the old volume from the registry (no garbage collection with it) and labels it, as deletion
/// retention does; a JSON-merge patch guarded by the resourceVersion.
async fn keep_volume(
    pvcs: &Api<PersistentVolumeClaim>,
    ctx: &Context,
    namespace: &str,
    claim: &str,
    registry: &QuayRegistry,
) -> Result<(), Error> {
    let Some(pvc) = ctx.cached_typed::<PersistentVolumeClaim>(namespace, claim) else {
        return Ok(());
    };
    let uid = registry.uid().unwrap_or_default();
    let owners: Vec<_> = pvc
        .owner_references()
        .iter()
        .filter(|o| o.uid != uid)
        .cloned()
        .collect();
    let patch = json!({
        "metadata": {
            "ownerReferences": owners,
            "labels": {RETAINED_FROM_LABEL: registry.name_any()},
            "resourceVersion": pvc.resource_version(),
        }
    });
    match pvcs
        .patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api_error("release", "PersistentVolumeClaim", claim)(e)),
    }
}

async fn delete<K>(api: &Api<K>, name: &str, kind: &'static str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = DeleteParams {
        propagation_policy: Some(kube::api::PropagationPolicy::Background),
        ..Default::default()
    };
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(api_error("delete", kind, name)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::postgres_upgrade::{CLAIR_DATABASE, QUAY_DATABASE};

    const PG10: &str = "centos/postgresql-10-centos7:latest";
    const PG13: &str = "quay.io/sclorg/postgresql-13-c9s:latest";

    fn images() -> Images {
        crate::render::images::resolve(&Default::default())
    }

    fn running_pg10() -> DatabaseObservation {
        DatabaseObservation {
            database: Some(LiveDatabase {
                image: PG10.to_owned(),
                claim: Some("reg-quay-database".to_owned()),
                replicas: 1,
                running: 1,
                observed: true,
                available: true,
            }),
            ..Default::default()
        }
    }

    fn stopped(mut o: DatabaseObservation) -> DatabaseObservation {
        let db = o.database.as_mut().unwrap();
        db.replicas = 0;
        db.running = 0;
        db.available = false;
        o
    }

    fn decide_quay(o: &DatabaseObservation) -> DatabaseDecision {
        decide(&QUAY_DATABASE, "reg", o, &images(), false)
    }

    fn stage(d: &DatabaseDecision) -> Option<UpgradeStage> {
        d.render.as_ref().map(|r| r.stage)
    }

    #[test]
    fn detection_compares_majors_and_handles_registry_ports() {
        let path = &QUAY_DATABASE;
        let (expected, previous) = (PG13, PG10);
        assert_eq!(major_change(path, PG10, expected, previous), Some((10, 13)));
        assert_eq!(
            major_change(
                path,
                "mirror.local:5000/centos/postgresql-10-centos7@sha256:ab",
                expected,
                previous
            ),
            Some((10, 13))
        );
        // Same repository, other tag or registry: an image update, not an upgrade.
        assert_eq!(
            major_change(
                path,
                "mirror.local:5000/sclorg/postgresql-13-c9s:1",
                expected,
                previous
            ),
            None
        );
        // Another build of the same major.
        assert_eq!(
            major_change(
                path,
                "registry.redhat.io/rhel8/postgresql-13:1",
                expected,
                previous
            ),
            None
        );
        // A newer major than expected is never "upgraded" backwards.
        assert_eq!(
            major_change(
                path,
                "quay.io/sclorg/postgresql-15-c9s:latest",
                expected,
                previous
            ),
            None
        );
        // Names that say no major: only the previous image counts.
        assert_eq!(
            major_change(path, "postgres:10", "postgres:13", "postgres:10"),
            None
        );
        assert_eq!(
            major_change(path, "pg-old:1", "pg-new:1", "pg-old:2"),
            Some((10, 13))
        );
        assert_eq!(
            major_change(path, "pg-other:1", "pg-new:1", "pg-old:2"),
            None
        );
    }

    #[test]
    fn fresh_install_and_current_database_need_nothing() {
        let none = decide_quay(&DatabaseObservation::default());
        assert_eq!(
            (none.render, none.report, none.clean_up),
            (None, None, None)
        );
        let mut current = running_pg10();
        let db = current.database.as_mut().unwrap();
        db.image = PG13.to_owned();
        db.claim = Some("reg-quay-postgres-13".to_owned());
        let d = decide_quay(&current);
        assert_eq!((d.render, d.report, d.clean_up), (None, None, None));
    }

    #[test]
    fn a_running_old_database_is_stopped_first() {
        let d = decide_quay(&running_pg10());
        assert_eq!(stage(&d), Some(UpgradeStage::StopDatabase));
        let r = d.render.unwrap();
        assert_eq!(
            (r.old_image.as_str(), r.old_claim.as_str()),
            (PG10, "reg-quay-database")
        );
        assert_eq!(d.report.unwrap().0, REASON_IN_PROGRESS);
        assert_eq!(
            d.recheck, None,
            "the Deployment's status change brings us back"
        );
    }

    #[test]
    fn stopped_by_status_still_waits_for_its_pods() {
        let mut o = stopped(running_pg10());
        o.database_pods = Some(1);
        let d = decide_quay(&o);
        assert_eq!(stage(&d), Some(UpgradeStage::StopDatabase));
        assert_eq!(d.recheck, Some(STOPPING_RECHECK));
        o.database_pods = None;
        assert_eq!(stage(&decide_quay(&o)), Some(UpgradeStage::StopDatabase));
        o.database_pods = Some(0);
        let d = decide_quay(&o);
        assert_eq!(stage(&d), Some(UpgradeStage::ServeOldData));
        assert!(d.report.unwrap().1.contains("reg-quay-database-old"));
    }

    #[test]
    fn the_job_runs_once_the_old_server_is_available() {
        let mut o = stopped(running_pg10());
        o.old_server = Some(LiveOldServer {
            image: PG10.into(),
            claim: Some("reg-quay-database".into()),
            available: false,
        });
        assert_eq!(stage(&decide_quay(&o)), Some(UpgradeStage::ServeOldData));
        o.old_server.as_mut().unwrap().available = true;
        assert_eq!(stage(&decide_quay(&o)), Some(UpgradeStage::Migrate));
        o.job = Some(LiveJob {
            from_claim: Some("reg-quay-database".into()),
            state: JobState::Running,
        });
        let d = decide_quay(&o);
        assert_eq!(stage(&d), Some(UpgradeStage::Migrate));
        assert_eq!(
            d.report.unwrap().1,
            "upgrading the Quay database from PostgreSQL 10 to 13: Job reg-quay-postgres-upgrade is copying reg-quay-database to reg-quay-postgres-13"
        );
    }

    #[test]
    fn a_failed_job_is_reported_and_everything_held() {
        let mut o = stopped(running_pg10());
        o.old_server = Some(LiveOldServer::default());
        o.job = Some(LiveJob {
            from_claim: None,
            state: JobState::Failed("Job has reached the specified backoff limit".into()),
        });
        let d = decide_quay(&o);
        assert_eq!(stage(&d), Some(UpgradeStage::Migrate));
        let (reason, message) = d.report.unwrap();
        assert_eq!(reason, REASON_FAILED);
        assert!(
            message.contains("Job has reached the specified backoff limit"),
            "{message}"
        );
        assert!(
            message.contains("reg-quay-database is unchanged"),
            "{message}"
        );
        assert_eq!(d.clean_up, None);
    }

    #[test]
    fn a_succeeded_job_switches_over_with_the_normal_render() {
        let mut o = stopped(running_pg10());
        o.old_server = Some(LiveOldServer::default());
        o.job = Some(LiveJob {
            from_claim: Some("reg-quay-database".into()),
            state: JobState::Succeeded,
        });
        let d = decide_quay(&o);
        assert_eq!(stage(&d), Some(UpgradeStage::SwitchOver));
        assert_eq!(d.report.unwrap().0, REASON_IN_PROGRESS);
        assert_eq!(d.clean_up, None);
    }

    fn switched() -> DatabaseObservation {
        DatabaseObservation {
            database: Some(LiveDatabase {
                image: PG13.into(),
                claim: Some("reg-quay-postgres-13".into()),
                replicas: 1,
                running: 1,
                observed: true,
                available: true,
            }),
            old_server: Some(LiveOldServer {
                image: PG10.into(),
                claim: Some("reg-quay-database".into()),
                available: true,
            }),
            old_service: true,
            job: Some(LiveJob {
                from_claim: Some("reg-quay-database".into()),
                state: JobState::Succeeded,
            }),
            database_pods: None,
            old_claim: Some(LiveClaim {
                name: "reg-quay-database".into(),
                owned: true,
                labelled: false,
            }),
        }
    }

    #[test]
    fn after_the_switch_the_old_volume_is_kept_and_the_temporary_objects_go() {
        let mut o = switched();
        o.database.as_mut().unwrap().available = false;
        let waiting = decide_quay(&o);
        assert_eq!(stage(&waiting), Some(UpgradeStage::SwitchOver));
        assert_eq!(
            waiting.clean_up, None,
            "nothing removed before the new database is up"
        );
        assert_eq!(waiting.report.unwrap().0, REASON_IN_PROGRESS);

        let d = decide_quay(&switched());
        assert_eq!(d.report, None);
        assert_eq!(
            d.clean_up,
            Some(CleanUp {
                old_claim: Some(OldClaimAction::Keep("reg-quay-database".into())),
                delete_old_server: true,
                delete_old_service: true,
                delete_job: true,
            })
        );
        let opted_in = decide(&QUAY_DATABASE, "reg", &switched(), &images(), true);
        assert_eq!(
            opted_in.clean_up.unwrap().old_claim,
            Some(OldClaimAction::Delete("reg-quay-database".into()))
        );
    }

    #[test]
    fn a_clean_up_interrupted_after_the_volume_was_kept_resumes_without_touching_it_again() {
        let mut o = switched();
        o.old_server = None;
        o.old_service = false;
        o.old_claim = Some(LiveClaim {
            name: "reg-quay-database".into(),
            owned: false,
            labelled: true,
        });
        let d = decide_quay(&o);
        assert_eq!(
            d.clean_up,
            Some(CleanUp {
                old_claim: None,
                delete_old_server: false,
                delete_old_service: false,
                delete_job: true,
            })
        );
    }

    #[test]
    fn an_old_major_on_the_new_volume_is_refused_and_left_running() {
        let mut o = running_pg10();
        o.database.as_mut().unwrap().claim = Some("reg-quay-postgres-13".into());
        let d = decide_quay(&o);
        assert_eq!(stage(&d), Some(UpgradeStage::Pin));
        assert_eq!(d.report.unwrap().0, REASON_FAILED);
    }

    #[test]
    fn a_current_database_on_another_volume_is_left_on_it() {
        let mut o = running_pg10();
        o.database.as_mut().unwrap().image = PG13.into();
        let d = decide_quay(&o);
        let r = d.render.unwrap();
        assert_eq!(r.stage, UpgradeStage::Pin);
        assert_eq!(r.old_claim, "reg-quay-database");
        assert_eq!(r.old_image, PG13);
        assert!(
            d.report
                .unwrap()
                .1
                .contains("keeps its data on reg-quay-database, not on reg-quay-postgres-13")
        );
    }

    #[test]
    fn clair_database_upgrades_from_13_to_15() {
        let o = DatabaseObservation {
            database: Some(LiveDatabase {
                image: PG13.into(),
                claim: Some("reg-clair-postgres-13".into()),
                replicas: 1,
                running: 1,
                observed: true,
                available: true,
            }),
            ..Default::default()
        };
        let d = decide(&CLAIR_DATABASE, "reg", &o, &images(), false);
        assert_eq!(stage(&d), Some(UpgradeStage::StopDatabase));
        assert!(
            d.report
                .unwrap()
                .1
                .starts_with("upgrading the Clair database from PostgreSQL 13 to 15")
        );
    }

    #[test]
    fn reports_prefer_failures() {
        let mut o = stopped(running_pg10());
        o.database_pods = Some(0);
        let running = decide_quay(&o);
        let mut failed = running.clone();
        failed.report = Some((REASON_FAILED, "x".into()));
        assert_eq!(report(&[running.clone(), failed]).unwrap().0, REASON_FAILED);
        assert_eq!(report(&[running]).unwrap().0, REASON_IN_PROGRESS);
        assert!(is_upgrade_workload("reg-quay-database-old", "reg"));
        assert!(is_upgrade_workload("reg-clair-postgres-upgrade", "reg"));
        assert!(!is_upgrade_workload("reg-quay-database", "reg"));
    }
}
