//! The QuayEcosystem migration controller: a separate controller, running only while the legacy
//! `quayecosystems.redhatcop.redhat.io` CRD is served, that turns a QuayEcosystem labelled
//! `quay-operator/migrate: "true"` into a QuayRegistry of the same name (3.5 manual §5.5, 3.11 manual §12.4).
//!
//! Every step is decided from what the cluster shows, so an operator restarted at any point resumes:
//!
//! 1. checks (nothing written): the mapping ([`crate::ecosystem::plan_migration`]), the planned QuayRegistry's
//!    validation, the legacy database credentials, and that the names the migration creates are free or already
//!    the migration's own;
//! 2. the config bundle Secret `<name>-config-bundle-migrated` (created once, never overwritten);
//! 3. managed database only: the legacy database Deployment gets the admin password and Recreate, its rollout is
//!    awaited, the new volume `<name>-quay-postgres-13` is created, and the copy Job is run and awaited (watched);
//! 4. the QuayRegistry, created only now, so its database never starts on a volume still being filled;
//! 5. the label `quay-operator/migration-complete: "true"` on the QuayEcosystem.
//!
//! Problems are reported as the QuayEcosystem's conditions. Nothing of the QuayEcosystem's is ever deleted.

use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::api::QuayRegistry;
use crate::api::quayecosystem::{
    MIGRATE_LABEL, MIGRATED_FROM_ANNOTATION, MIGRATION_COMPLETE_LABEL, QUAY_ECOSYSTEM_CRD_NAME,
    QuayEcosystem, QuayEcosystemCondition,
};
use crate::ecosystem::check::check_registry;
use crate::ecosystem::conditions::{Failure, with_failures, without_failures};
use crate::ecosystem::mapping::credentials_secret_name;
use crate::ecosystem::objects::{self, JobOutcome};
use crate::ecosystem::{
    ConditionType, ECOSYSTEM_LABEL, FailureReason, MigrationPlan, Unsupported, bundle_secret_name,
    database_credentials, migration_job_name, new_database_pvc_name, old_database_name,
    plan_migration,
};
use crate::render::{ClusterFacts, OperatorSettings};

/// How often a QuayEcosystem whose input is refused is looked at again (the old config Secret and credentials
/// carry no label a watch could select them by).
const INPUT_RECHECK: Duration = Duration::from_secs(60);
/// Retry delay after an API error.
const ERROR_BACKOFF: Duration = Duration::from_secs(5);

/// API errors of a migration step (retried); input problems are conditions, not errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action} {kind} {name}: {source}")]
    Api {
        action: &'static str,
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

fn api_err(
    action: &'static str,
    kind: &'static str,
    name: &str,
) -> impl FnOnce(kube::Error) -> Error {
    let name = name.to_owned();
    move |source| Error::Api {
        action,
        kind,
        name,
        source,
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// Shared by the reconciles of one scope.
pub struct Context {
    pub client: Client,
    pub settings: OperatorSettings,
}

/// Runs the migration controller for `namespaces` (empty: all) whenever the QuayEcosystem CRD is installed: it
/// starts when the CRD appears and stops when it is removed. Never returns.
pub async fn run_when_installed(
    client: Client,
    namespaces: Vec<String>,
    settings: OperatorSettings,
) {
    let crds: Api<PartialObjectMeta<CustomResourceDefinition>> = Api::all(client.clone());
    let config =
        watcher::Config::default().fields(&format!("metadata.name={QUAY_ECOSYSTEM_CRD_NAME}"));
    let mut events = watcher(crds, config).default_backoff().boxed();
    let mut installed = false;
    loop {
        installed = next_installed(&mut events, installed).await;
        if !installed {
            continue;
        }
        info!("QuayEcosystem CRD installed: starting the migration controller");
        let scopes: Vec<Option<String>> = if namespaces.is_empty() {
            vec![None]
        } else {
            namespaces.iter().cloned().map(Some).collect()
        };
        let controllers = future::join_all(
            scopes
                .into_iter()
                .map(|scope| run_scope(client.clone(), scope, settings.clone())),
        );
        tokio::select! {
            _ = controllers => return future::pending().await,
            now = next_installed(&mut events, true) => {
                installed = now;
                info!("QuayEcosystem CRD removed: migration controller stopped");
            }
        }
    }
}

/// Waits until the CRD's presence differs from `current` and returns the new state.
async fn next_installed<S>(events: &mut S, current: bool) -> bool
where
    S: futures::Stream<
            Item = Result<
                watcher::Event<PartialObjectMeta<CustomResourceDefinition>>,
                watcher::Error,
            >,
        > + Unpin,
{
    let mut listed = false;
    while let Some(event) = events.next().await {
        let now = match event {
            Ok(watcher::Event::Init) => {
                listed = false;
                continue;
            }
            Ok(watcher::Event::InitApply(_)) => {
                listed = true;
                continue;
            }
            Ok(watcher::Event::InitDone) => listed,
            Ok(watcher::Event::Apply(_)) => true,
            Ok(watcher::Event::Delete(_)) => false,
            Err(e) => {
                tracing::debug!(error = %e, "QuayEcosystem CRD watch interrupted");
                continue;
            }
        };
        if now != current {
            return now;
        }
    }
    future::pending().await
}

fn api_for<K>(client: &Client, scope: &Option<String>) -> Api<K>
where
    K: Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn run_scope(client: Client, scope: Option<String>, settings: OperatorSettings) {
    let ecosystems: Api<QuayEcosystem> = api_for(&client, &scope);
    // Only labelled QuayEcosystems are watched and cached: the others are none of this operator's business.
    let requested = watcher::Config::default().labels(&format!("{MIGRATE_LABEL}=true"));
    let ours = watcher::Config::default().labels(ECOSYSTEM_LABEL);
    let jobs: Api<Job> = api_for(&client, &scope);
    let deployments: Api<Deployment> = api_for(&client, &scope);
    let ctx = Arc::new(Context { client, settings });
    Controller::new(ecosystems, requested)
        .watches(jobs, ours.clone(), |job: Job| to_ecosystem(&job))
        .watches(deployments, ours, |d: Deployment| to_ecosystem(&d))
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            if let Err(e) = result {
                tracing::debug!(error = %e, "migration reconcile ended with an error");
            }
            future::ready(())
        })
        .await;
}

fn to_ecosystem<K: Resource>(object: &K) -> Option<ObjectRef<QuayEcosystem>> {
    let name = object.meta().labels.as_ref()?.get(ECOSYSTEM_LABEL)?;
    let namespace = object.meta().namespace.as_deref()?;
    Some(ObjectRef::new(name).within(namespace))
}

fn error_policy(_eco: Arc<QuayEcosystem>, error: &Error, _ctx: Arc<Context>) -> Action {
    warn!(error = %error, "QuayEcosystem migration step failed");
    Action::requeue(ERROR_BACKOFF)
}

/// Where one reconcile left the migration.
enum Step {
    /// Waiting for a watched object (rollout, Job).
    Waiting,
    /// Refused or failed: reported in the conditions.
    Failed(Vec<Failure>),
    Done,
}

pub async fn reconcile(eco: Arc<QuayEcosystem>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = eco.namespace().unwrap_or_default();
    let name = eco.name_any();
    let api: Api<QuayEcosystem> = Api::namespaced(ctx.client.clone(), &namespace);
    if !eco.migration_requested() {
        return Ok(Action::await_change());
    }
    if eco.migration_complete() {
        write_conditions(&api, &eco, without_failures(conditions(&eco))).await?;
        return Ok(Action::await_change());
    }
    match migrate(&eco, &ctx).await? {
        Step::Waiting => Ok(Action::await_change()),
        Step::Failed(failures) => {
            for f in &failures {
                warn!(quayecosystem = %name, namespace = %namespace, condition = f.type_.as_str(), reason = f.reason.as_str(), message = %f.message, "QuayEcosystem not migrated");
            }
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            write_conditions(&api, &eco, with_failures(conditions(&eco), &failures, &now)).await?;
            Ok(Action::requeue(INPUT_RECHECK))
        }
        Step::Done => {
            let patch = json!({"metadata": {"labels": {MIGRATION_COMPLETE_LABEL: "true"}}});
            if let Err(e) = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                let failure = Failure {
                    type_: ConditionType::MigrationFailure,
                    reason: FailureReason::QuayEcosystemLabelError,
                    message: format!(
                        "cannot label the QuayEcosystem `{MIGRATION_COMPLETE_LABEL}`: {e}"
                    ),
                };
                let now = k8s_openapi::jiff::Timestamp::now().to_string();
                write_conditions(
                    &api,
                    &eco,
                    with_failures(conditions(&eco), &[failure], &now),
                )
                .await?;
                return Err(api_err("label", "QuayEcosystem", &name)(e));
            }
            info!(quayecosystem = %name, namespace = %namespace, "QuayEcosystem migrated to QuayRegistry");
            // The label change brings the QuayEcosystem back, and its conditions are cleared then.
            Ok(Action::await_change())
        }
    }
}

fn conditions(eco: &QuayEcosystem) -> &[QuayEcosystemCondition] {
    eco.status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
}

/// Writes the conditions through `/status`, only when they changed.
async fn write_conditions(
    api: &Api<QuayEcosystem>,
    eco: &QuayEcosystem,
    next: Vec<QuayEcosystemCondition>,
) -> Result<(), Error> {
    if next.as_slice() == conditions(eco) {
        return Ok(());
    }
    let patch = json!({"status": {"conditions": next}});
    api.patch_status(
        &eco.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(api_err(
        "update status of",
        "QuayEcosystem",
        &eco.name_any(),
    ))?;
    Ok(())
}

fn refused(problems: Vec<Unsupported>) -> Step {
    Step::Failed(problems.iter().map(Unsupported::failure).collect())
}

fn creation_error(message: String) -> Step {
    Step::Failed(vec![Failure {
        type_: ConditionType::MigrationFailure,
        reason: FailureReason::QuayRegistryCreationError,
        message,
    }])
}

/// Whether an object was made by the migration of `ecosystem`.
fn is_ours<K: Resource>(object: &K, ecosystem: &str) -> bool {
    object
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(ECOSYSTEM_LABEL))
        .map(String::as_str)
        == Some(ecosystem)
}

async fn migrate(eco: &QuayEcosystem, ctx: &Context) -> Result<Step, Error> {
    let namespace = eco.namespace().unwrap_or_default();
    let name = eco.name_any();
    let client = &ctx.client;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let registries: Api<QuayRegistry> = Api::namespaced(client.clone(), &namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &namespace);
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    let jobs: Api<Job> = Api::namespaced(client.clone(), &namespace);

    // 1. Checks; nothing is written before they all pass.
    let config_name = crate::ecosystem::mapping::config_secret_name(eco);
    let config_secret =
        secrets
            .get_opt(&config_name)
            .await
            .map_err(api_err("get", "Secret", &config_name))?;
    let plan = match plan_migration(eco, config_secret.as_ref()) {
        Ok(plan) => plan,
        Err(problems) => return Ok(refused(problems)),
    };
    let cluster = cluster_facts(client).await?;
    let problems = check_registry(&plan, &cluster, &ctx.settings, std::time::SystemTime::now());
    if !problems.is_empty() {
        return Ok(refused(problems));
    }
    let registry =
        registries
            .get_opt(&name)
            .await
            .map_err(api_err("get", "QuayRegistry", &name))?;
    if let Some(registry) = registry {
        let ours = registry.annotations().get(MIGRATED_FROM_ANNOTATION) == Some(&name);
        // Created by an earlier run, which created it only after the data copy succeeded.
        return Ok(if ours {
            Step::Done
        } else {
            creation_error(format!(
                "a QuayRegistry named `{name}` already exists and was not created from this QuayEcosystem; nothing was changed"
            ))
        });
    }
    let bundle_name = bundle_secret_name(&name);
    let bundle =
        secrets
            .get_opt(&bundle_name)
            .await
            .map_err(api_err("get", "Secret", &bundle_name))?;
    if bundle.as_ref().is_some_and(|b| !is_ours(b, &name)) {
        return Ok(creation_error(format!(
            "Secret `{bundle_name}` already exists and was not created by this migration; nothing was changed"
        )));
    }
    let database = match &plan.database {
        None => None,
        Some(db) => {
            let credentials_name = credentials_secret_name(eco);
            let credentials = secrets.get_opt(&credentials_name).await.map_err(api_err(
                "get",
                "Secret",
                &credentials_name,
            ))?;
            if let Err(problem) = database_credentials(&credentials_name, credentials.as_ref()) {
                return Ok(refused(vec![problem]));
            }
            let old_name = old_database_name(&name);
            let Some(old) = deployments.get_opt(&old_name).await.map_err(api_err(
                "get",
                "Deployment",
                &old_name,
            ))?
            else {
                return Ok(Step::Failed(vec![Failure {
                    type_: ConditionType::ComponentMigrationFailure,
                    reason: FailureReason::ComponentUnsupported,
                    message: format!(
                        "the legacy database Deployment `{old_name}` to copy the data from was not found"
                    ),
                }]));
            };
            let pvc_name = new_database_pvc_name(&name);
            let pvc = pvcs.get_opt(&pvc_name).await.map_err(api_err(
                "get",
                "PersistentVolumeClaim",
                &pvc_name,
            ))?;
            if pvc.as_ref().is_some_and(|p| !is_ours(p, &name)) {
                return Ok(creation_error(format!(
                    "PersistentVolumeClaim `{pvc_name}` already exists and was not created by this migration; nothing was changed"
                )));
            }
            Some((db.clone(), old, pvc.is_some()))
        }
    };

    // 2. The config bundle.
    if bundle.is_none() {
        create(&secrets, &objects::bundle_secret(&plan), "Secret").await?;
    }

    // 3. The data copy.
    if let Some((db, old, pvc_exists)) = database {
        if let Some(updated) = objects::old_database_with_admin_password(&old, &db, &name) {
            info!(quayecosystem = %name, deployment = %old.name_any(), "restarting the legacy database with an admin password for the copy");
            deployments
                .replace(&old.name_any(), &PostParams::default(), &updated)
                .await
                .map_err(api_err("update", "Deployment", &old.name_any()))?;
            // Its rollout (watched through our label) brings us back.
            return Ok(Step::Waiting);
        }
        if !objects::rolled_out(&old) {
            return Ok(Step::Waiting);
        }
        if !pvc_exists {
            create(
                &pvcs,
                &objects::database_pvc(&plan, &db),
                "PersistentVolumeClaim",
            )
            .await?;
        }
        let job_name = migration_job_name(&name);
        let job = jobs
            .get_opt(&job_name)
            .await
            .map_err(api_err("get", "Job", &job_name))?;
        match job.as_ref().map(objects::job_outcome) {
            None => {
                let owner = eco
                    .controller_owner_ref(&())
                    .expect("a stored QuayEcosystem has a name and uid");
                let image = crate::render::images::resolve(&ctx.settings.images).postgres;
                create(
                    &jobs,
                    &objects::migration_job(&plan, &db, &image, owner),
                    "Job",
                )
                .await?;
                info!(quayecosystem = %name, job = %job_name, "copying the legacy database");
                return Ok(Step::Waiting);
            }
            Some(JobOutcome::Running) => return Ok(Step::Waiting),
            // Upstream reported a failed copy as a component failure too.
            Some(JobOutcome::Failed(message)) => {
                return Ok(Step::Failed(vec![Failure {
                    type_: ConditionType::ComponentMigrationFailure,
                    reason: FailureReason::ComponentUnsupported,
                    message: format!(
                        "database migration failed (Job `{job_name}`: {message}); the legacy database is unchanged and no QuayRegistry was created; delete the Job to try again"
                    ),
                }]));
            }
            Some(JobOutcome::Succeeded) => {}
        }
    }

    // 4. The QuayRegistry.
    match registries
        .create(&PostParams::default(), &objects::quay_registry(&plan))
        .await
    {
        Ok(_) => {}
        // Created concurrently (by us in an earlier run or by someone else): the next look decides.
        Err(e) if is_conflict(&e) => return Ok(Step::Waiting),
        Err(e) => {
            return Ok(creation_error(format!(
                "cannot create QuayRegistry `{name}`: {}",
                api_message(&e)
            )));
        }
    }
    log_plan(&plan);
    Ok(Step::Done)
}

/// What the planned QuayRegistry is validated against: whether Routes are served. The rest (bucket claims,
/// monitoring) only concerns components the migration leaves unmanaged or defaulted.
async fn cluster_facts(client: &Client) -> Result<ClusterFacts, Error> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(api_err("list", "APIGroup", "*"))?;
    Ok(ClusterFacts {
        routes: groups.groups.iter().any(|g| g.name == "route.openshift.io"),
        ..Default::default()
    })
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(status) => status.message.clone(),
        other => other.to_string(),
    }
}

fn log_plan(plan: &MigrationPlan) {
    let components: Vec<String> = plan
        .components
        .iter()
        .map(|c| {
            format!(
                "{}={}",
                c.kind,
                if c.managed { "managed" } else { "unmanaged" }
            )
        })
        .collect();
    info!(quayregistry = %plan.name, namespace = %plan.namespace, components = %components.join(","), "created QuayRegistry from QuayEcosystem");
}

/// Creates an object; one that appeared meanwhile (a concurrent run) is fine.
async fn create<K>(api: &Api<K>, object: &K, kind: &'static str) -> Result<(), Error>
where
    K: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = object.meta().name.clone().unwrap_or_default();
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(e) if is_conflict(&e) => Ok(()),
        Err(e) => Err(api_err("create", kind, &name)(e)),
    }
}
