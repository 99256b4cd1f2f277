//! The migration's conditions on the QuayEcosystem: upstream's three failure types and their reasons. A condition
//! is only ever written for a failure; a successful migration removes them.

use crate::api::quayecosystem::QuayEcosystemCondition;

/// Condition types the migration writes (upstream's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConditionType {
    /// The old config Secret could not be turned into a config bundle.
    ConfigMigrationFailure,
    /// A component is configured in a way the migration cannot carry over.
    ComponentMigrationFailure,
    /// Creating the QuayRegistry (or copying its data, or labelling the QuayEcosystem) failed.
    MigrationFailure,
}

impl ConditionType {
    pub const ALL: [ConditionType; 3] = [
        ConditionType::ConfigMigrationFailure,
        ConditionType::ComponentMigrationFailure,
        ConditionType::MigrationFailure,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::ConfigMigrationFailure => "QuayEcosystemConfigMigrationFailure",
            ConditionType::ComponentMigrationFailure => "QuayEcosystemComponentMigrationFailure",
            ConditionType::MigrationFailure => "QuayEcosystemMigrationFailure",
        }
    }
}

/// Reasons of the failure conditions (upstream's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    ConfigBundleSecretInvalid,
    ComponentUnsupported,
    QuayRegistryCreationError,
    QuayEcosystemLabelError,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::ConfigBundleSecretInvalid => "ConfigBundleSecretInvalid",
            FailureReason::ComponentUnsupported => "ComponentUnsupported",
            FailureReason::QuayRegistryCreationError => "QuayRegistryCreationError",
            FailureReason::QuayEcosystemLabelError => "QuayEcosystemLabelError",
        }
    }
}

/// One failure to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub type_: ConditionType,
    pub reason: FailureReason,
    pub message: String,
}

/// The conditions after reporting `failures`: the migration's condition types are replaced by the failures (one
/// condition per type, messages of several failures of one type joined), other conditions kept as they are. A
/// condition whose status, reason and message did not change keeps its times, so reporting the same failure again
/// changes nothing (and the caller writes nothing).
pub fn with_failures(
    existing: &[QuayEcosystemCondition],
    failures: &[Failure],
    now: &str,
) -> Vec<QuayEcosystemCondition> {
    let mut out: Vec<QuayEcosystemCondition> = existing
        .iter()
        .filter(|c| !is_migration_condition(&c.type_))
        .cloned()
        .collect();
    for type_ in ConditionType::ALL {
        let of_type: Vec<&Failure> = failures.iter().filter(|f| f.type_ == type_).collect();
        let Some(first) = of_type.first() else {
            continue;
        };
        let message = of_type
            .iter()
            .map(|f| f.message.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let previous = existing.iter().find(|c| c.type_ == type_.as_str());
        let unchanged = previous.is_some_and(|p| {
            p.status == "True"
                && p.reason.as_deref() == Some(first.reason.as_str())
                && p.message.as_deref() == Some(message.as_str())
        });
        if unchanged {
            out.push(previous.cloned().expect("checked above"));
            continue;
        }
        let transition = match previous {
            Some(p) if p.status == "True" => p.last_transition_time.clone(),
            _ => Some(now.to_owned()),
        };
        out.push(QuayEcosystemCondition {
            type_: type_.as_str().to_owned(),
            status: "True".to_owned(),
            reason: Some(first.reason.as_str().to_owned()),
            message: Some(message),
            last_update_time: Some(now.to_owned()),
            last_transition_time: transition,
        });
    }
    out
}

/// The conditions without the migration's failure conditions (upstream removes them once migrated).
pub fn without_failures(existing: &[QuayEcosystemCondition]) -> Vec<QuayEcosystemCondition> {
    with_failures(existing, &[], "")
}

fn is_migration_condition(type_: &str) -> bool {
    ConditionType::ALL.iter().any(|t| t.as_str() == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(type_: ConditionType, reason: FailureReason, message: &str) -> Failure {
        Failure {
            type_,
            reason,
            message: message.to_owned(),
        }
    }

    fn legacy(type_: &str) -> QuayEcosystemCondition {
        QuayEcosystemCondition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn failures_of_one_type_share_a_condition_and_legacy_conditions_stay() {
        let existing = vec![legacy("QuayEcosystemProvisioningSuccess")];
        let out = with_failures(
            &existing,
            &[
                failure(
                    ConditionType::ComponentMigrationFailure,
                    FailureReason::ComponentUnsupported,
                    "a",
                ),
                failure(
                    ConditionType::ComponentMigrationFailure,
                    FailureReason::ComponentUnsupported,
                    "b",
                ),
            ],
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].type_, "QuayEcosystemProvisioningSuccess");
        assert_eq!(out[1].type_, "QuayEcosystemComponentMigrationFailure");
        assert_eq!(out[1].reason.as_deref(), Some("ComponentUnsupported"));
        assert_eq!(out[1].message.as_deref(), Some("a; b"));
    }

    #[test]
    fn reporting_the_same_failure_again_keeps_the_condition_byte_identical() {
        let failures = [failure(
            ConditionType::ConfigMigrationFailure,
            FailureReason::ConfigBundleSecretInvalid,
            "missing",
        )];
        let first = with_failures(&[], &failures, "t1");
        let second = with_failures(&first, &failures, "t2");
        assert_eq!(first, second);
    }

    #[test]
    fn a_changed_message_keeps_the_transition_time_and_updates_the_update_time() {
        let first = with_failures(
            &[],
            &[failure(
                ConditionType::MigrationFailure,
                FailureReason::QuayRegistryCreationError,
                "one",
            )],
            "t1",
        );
        let second = with_failures(
            &first,
            &[failure(
                ConditionType::MigrationFailure,
                FailureReason::QuayRegistryCreationError,
                "two",
            )],
            "t2",
        );
        assert_eq!(second[0].last_transition_time.as_deref(), Some("t1"));
        assert_eq!(second[0].last_update_time.as_deref(), Some("t2"));
    }

    #[test]
    fn success_removes_only_the_migration_conditions() {
        let mut existing = with_failures(
            &[],
            &[failure(
                ConditionType::MigrationFailure,
                FailureReason::QuayEcosystemLabelError,
                "x",
            )],
            "t",
        );
        existing.push(legacy("QuaySetupSuccess"));
        let out = without_failures(&existing);
        assert_eq!(out, vec![legacy("QuaySetupSuccess")]);
    }
}
