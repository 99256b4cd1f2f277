//! `quay-operator diff`: what `run` would change for one registry, object by object, without writing. The
//! pre-flight an admin runs before switching from the upstream operator.

use std::collections::HashMap;
use std::sync::Arc;

use kube::api::{Api, ListParams};

use super::cache::WatchCache;
use super::commands::{DiffArgs, diff_client, registry_names};
use super::context::Context;
use super::diff::{changed_paths, needs_apply, stamp_hash};
use super::kinds::{key, owned_kinds};
use super::metrics::Metrics;
use super::reconcile::{Mode, plan};
use super::run::discover;
use crate::api::{QuayRegistry, REGISTRY_LABEL};
use crate::render::OperatorSettings;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Prints the plan; returns how many objects would be written.
pub async fn diff(args: &DiffArgs) -> Result<usize, BoxError> {
    let client = diff_client(args).await?;
    let registries: Api<QuayRegistry> = Api::namespaced(client.clone(), &args.namespace);
    let Some(registry) = registries.get_opt(&args.name).await? else {
        let names = registry_names(&client, &args.namespace).await;
        return Err(format!(
            "QuayRegistry {}/{} not found (registries there: {})",
            args.namespace,
            args.name,
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(", ")
            }
        )
        .into());
    };
    let capabilities = discover(&client).await?;
    let kinds: Vec<_> = owned_kinds()
        .into_iter()
        .filter(|k| k.requires.is_none_or(|c| capabilities.has(c)))
        .collect();

    // One list per kind of what the registry owns fills the same caches `run` reads.
    let mut stores = HashMap::new();
    let selector = format!("{REGISTRY_LABEL}={}", args.name);
    for kind in &kinds {
        let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &kind.resource);
        let objects = api
            .list(&ListParams::default().labels(&selector))
            .await?
            .items;
        stores.insert(
            key(&kind.resource),
            Arc::new(WatchCache::from_whole_objects(&kind.resource.kind, objects)),
        );
    }
    let ctx = Context {
        client,
        settings: OperatorSettings::from_env(|k| std::env::var(k).ok()),
        capabilities,
        all_namespaces: true,
        kinds,
        stores,
        provisioning_failures: None,
        caches_waited: Default::default(),
        metrics: Arc::new(Metrics::default()),
        written_status: Default::default(),
        verified_content: Default::default(),
    };

    let plan = plan(&registry, &ctx, Mode::Preview).await?;
    let objects = match plan.objects {
        Ok(objects) => objects,
        Err(e) => {
            println!("rollout blocked ({}): {}", e.reason(), e.message());
            return Ok(0);
        }
    };
    let mut writes = 0;
    for object in &objects {
        let (api_version, kind) = object.api_version_kind();
        let namespace = object.namespace().unwrap_or_default().to_owned();
        let Some(owned) = ctx
            .kinds
            .iter()
            .find(|k| k.resource.api_version == api_version && k.resource.kind == kind)
        else {
            println!(
                "skip     {kind} {namespace}/{} (API not served)",
                object.name()
            );
            continue;
        };
        let mut desired = object.to_json();
        stamp_hash(&mut desired);
        let live = ctx.cached(&owned.resource, &namespace, object.name());
        let live_json = live.map(|l| serde_json::to_value(l.as_ref()).unwrap_or_default());
        match &live_json {
            None => {
                writes += 1;
                println!("create   {kind} {namespace}/{}", object.name());
            }
            Some(live) if needs_apply(&desired, Some(live)) => {
                writes += 1;
                let mut paths = changed_paths(&desired, live, 12);
                paths.retain(|p| !p.contains("quay-operator.rs/applied-hash"));
                let what = if paths.is_empty() {
                    "fields it no longer sets".to_owned()
                } else {
                    paths.join(", ")
                };
                println!("update   {kind} {namespace}/{}: {what}", object.name());
            }
            Some(_) => println!("same     {kind} {namespace}/{}", object.name()),
        }
    }
    println!("{writes} of {} objects would be written", objects.len());
    Ok(writes)
}
