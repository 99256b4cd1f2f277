//! Component kinds and their fixed properties.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The kinds of component a QuayRegistry is made of.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum ComponentKind {
    Quay,
    Postgres,
    Clair,
    Redis,
    #[serde(rename = "horizontalpodautoscaler")]
    HorizontalPodAutoscaler,
    #[serde(rename = "objectstorage")]
    ObjectStorage,
    Route,
    Mirror,
    Monitoring,
    Tls,
    #[serde(rename = "clairpostgres")]
    ClairPostgres,
}

/// A string that is not a component kind.
#[derive(Debug, thiserror::Error)]
#[error("unknown component kind {0:?}")]
pub struct ParseComponentKindError(pub String);

impl ComponentKind {
    /// Every kind, in upstream's defaulting order (`EnsureDefaultComponents`).
    pub const ALL: [ComponentKind; 11] = [
        ComponentKind::Quay,
        ComponentKind::Postgres,
        ComponentKind::Clair,
        ComponentKind::Redis,
        ComponentKind::HorizontalPodAutoscaler,
        ComponentKind::ObjectStorage,
        ComponentKind::Route,
        ComponentKind::Mirror,
        ComponentKind::Monitoring,
        ComponentKind::Tls,
        ComponentKind::ClairPostgres,
    ];

    /// The lowercase name used in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Quay => "quay",
            ComponentKind::Postgres => "postgres",
            ComponentKind::Clair => "clair",
            ComponentKind::Redis => "redis",
            ComponentKind::HorizontalPodAutoscaler => "horizontalpodautoscaler",
            ComponentKind::ObjectStorage => "objectstorage",
            ComponentKind::Route => "route",
            ComponentKind::Mirror => "mirror",
            ComponentKind::Monitoring => "monitoring",
            ComponentKind::Tls => "tls",
            ComponentKind::ClairPostgres => "clairpostgres",
        }
    }

    /// Components that, when unmanaged, must be configured in the bundle.
    pub fn is_required(self) -> bool {
        matches!(
            self,
            ComponentKind::Postgres
                | ComponentKind::ObjectStorage
                | ComponentKind::Route
                | ComponentKind::Redis
                | ComponentKind::Tls
        )
    }

    /// The Quay config field group a managed component contributes (`quay-managed-fieldgroups`).
    pub fn field_group(self) -> Option<&'static str> {
        match self {
            ComponentKind::Clair => Some("SecurityScanner"),
            ComponentKind::Postgres => Some("Database"),
            ComponentKind::Redis => Some("Redis"),
            ComponentKind::ObjectStorage => Some("DistributedStorage"),
            ComponentKind::Route => Some("HostSettings"),
            ComponentKind::Mirror => Some("RepoMirror"),
            _ => None,
        }
    }

    /// The status condition type reporting this component's health.
    pub fn condition_type(self) -> &'static str {
        match self {
            ComponentKind::Quay => "ComponentQuayReady",
            ComponentKind::Postgres => "ComponentPostgresReady",
            ComponentKind::Clair => "ComponentClairReady",
            ComponentKind::Redis => "ComponentRedisReady",
            ComponentKind::HorizontalPodAutoscaler => "ComponentHPAReady",
            ComponentKind::ObjectStorage => "ComponentObjectStorageReady",
            ComponentKind::Route => "ComponentRouteReady",
            ComponentKind::Mirror => "ComponentMirrorReady",
            ComponentKind::Monitoring => "ComponentMonitoringReady",
            ComponentKind::Tls => "ComponentTLSReady",
            ComponentKind::ClairPostgres => "ComponentClairPostgresReady",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ComponentKind {
    type Err = ParseComponentKindError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ComponentKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| ParseComponentKindError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_serde_and_from_str() {
        for kind in ComponentKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(kind.as_str().parse::<ComponentKind>().unwrap(), kind);
        }
        assert!("base".parse::<ComponentKind>().is_err());
    }
}
