//! Leader election on a `coordination.k8s.io/v1` Lease, so several replicas can run and only one reconciles.
//!
//! kube-rs has no leader election of its own; this is the usual Lease protocol: take the Lease when it is free
//! or expired (a conditional write on its resourceVersion), renew it while leading, and stop leading (exit) as
//! soon as a renewal fails, so that two leaders never act at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tracing::{info, warn};

use super::run::{RunOptions, run};

/// Name of the Lease (the same for every replica).
pub const LEASE_NAME: &str = "quay-operator-lock";
const LEASE_DURATION: Duration = Duration::from_secs(15);
const RENEW_EVERY: Duration = Duration::from_secs(5);
const RETRY_EVERY: Duration = Duration::from_secs(2);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn identity() -> String {
    std::env::var("MY_POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("quay-operator-{}", std::process::id()))
}

fn now() -> MicroTime {
    MicroTime(Timestamp::now())
}

/// Whether `lease` may be taken by `me` at `at`.
pub fn is_free(lease: &Lease, me: &str, at: Timestamp) -> bool {
    let Some(spec) = lease.spec.as_ref() else {
        return true;
    };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == me => true,
        Some(_) => {
            let duration = spec
                .lease_duration_seconds
                .unwrap_or(LEASE_DURATION.as_secs() as i32);
            let renewed = spec
                .renew_time
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(Timestamp::UNIX_EPOCH);
            renewed.as_second() + i64::from(duration) < at.as_second()
        }
    }
}

fn held_by(me: &str, previous: Option<&Lease>) -> Lease {
    let transitions = previous
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.lease_transitions)
        .unwrap_or(0);
    let was_mine = previous
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.holder_identity.as_deref())
        .is_some_and(|h| h == me);
    Lease {
        metadata: ObjectMeta {
            name: Some(LEASE_NAME.to_owned()),
            resource_version: previous.and_then(|l| l.resource_version()),
            ..Default::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some(me.to_owned()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: if was_mine {
                previous
                    .and_then(|l| l.spec.as_ref())
                    .and_then(|s| s.acquire_time.clone())
            } else {
                Some(now())
            },
            renew_time: Some(now()),
            lease_transitions: Some(if was_mine {
                transitions
            } else {
                transitions + 1
            }),
            ..Default::default()
        }),
    }
}

/// One attempt to take or renew the Lease; `Ok(true)` when `me` holds it afterwards.
pub async fn try_hold(leases: &Api<Lease>, me: &str) -> Result<bool, kube::Error> {
    match leases.get_opt(LEASE_NAME).await? {
        None => match leases
            .create(&PostParams::default(), &held_by(me, None))
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        },
        Some(lease) if is_free(&lease, me, Timestamp::now()) => {
            // The resourceVersion makes the replace conditional: of two candidates only one wins.
            match leases
                .replace(
                    LEASE_NAME,
                    &PostParams::default(),
                    &held_by(me, Some(&lease)),
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            }
        }
        Some(_) => Ok(false),
    }
}

/// Waits to lead, then runs the operator while renewing; returns an error when leadership is lost.
pub async fn run_as_leader(
    client: Client,
    options: RunOptions,
    namespace: &str,
) -> Result<(), BoxError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let me = identity();
    loop {
        match try_hold(&leases, &me).await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "leader election: could not read or take the Lease"),
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
    info!(identity = %me, lease = %format!("{namespace}/{LEASE_NAME}"), "became leader");
    let renew = async {
        loop {
            tokio::time::sleep(RENEW_EVERY).await;
            match try_hold(&leases, &me).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err::<(), BoxError>("leadership lost to another replica".into());
                }
                Err(e) => {
                    return Err(format!("leadership lost: could not renew the Lease: {e}").into());
                }
            }
        }
    };
    tokio::select! {
        result = run(client.clone(), options) => result,
        result = renew => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(holder: &str, renewed_at: i64) -> Lease {
        Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some(holder.to_owned()),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(Timestamp::from_second(renewed_at).unwrap())),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn a_lease_held_by_another_is_free_only_after_it_expires() {
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(!is_free(&lease("other", 1_000), "me", at(1_010)));
        assert!(is_free(&lease("other", 1_000), "me", at(1_016)));
        assert!(is_free(&lease("me", 1_000), "me", at(1_001)));
        assert!(is_free(&Lease::default(), "me", at(1_001)));
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let taken = held_by("me", Some(&lease("other", 1_000)));
        assert_eq!(taken.spec.as_ref().unwrap().lease_transitions, Some(1));
        let renewed = held_by("me", Some(&taken));
        assert_eq!(renewed.spec.as_ref().unwrap().lease_transitions, Some(1));
        assert_eq!(
            renewed.spec.unwrap().acquire_time,
            taken.spec.unwrap().acquire_time
        );
    }
}
