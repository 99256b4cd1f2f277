//! Problems found in a registry's input, and the error that blocks a rollout.

use std::fmt;

/// The `RolloutBlocked` reason a problem is reported with (upstream's reasons, so dashboards keep working).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    ConfigInvalid,
    ComponentOverrideInvalid,
    ComponentCreationFailed,
    RouteComponentDependencyError,
    ObjectStorageComponentDependencyError,
    MonitoringComponentDependencyError,
    UpgradeUnsupported,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::ConfigInvalid => "ConfigInvalid",
            Reason::ComponentOverrideInvalid => "ComponentOverrideInvalid",
            Reason::ComponentCreationFailed => "ComponentCreationFailed",
            Reason::RouteComponentDependencyError => "RouteComponentDependencyError",
            Reason::ObjectStorageComponentDependencyError => {
                "ObjectStorageComponentDependencyError"
            }
            Reason::MonitoringComponentDependencyError => "MonitoringComponentDependencyError",
            Reason::UpgradeUnsupported => "UpgradeUnsupported",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a problem blocks the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem with a registry's input. `message` is exactly what the QuayRegistry status carries; it never
/// contains a secret value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub reason: Reason,
    /// Where the problem is, e.g. `spec.components[2].overrides.replicas` or `configBundleSecret[config.yaml].DB_URI`.
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn error(reason: Reason, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            reason,
            path: path.into(),
            message: message.into(),
        }
    }

    pub fn warning(reason: Reason, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            reason,
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{level}: {} ({}): {}",
            self.path, self.reason, self.message
        )
    }
}

/// All problems found by [`crate::config::validate`], in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationReport {
    pub problems: Vec<Problem>,
}

impl ValidationReport {
    pub fn push(&mut self, problem: Problem) {
        self.problems.push(problem);
    }

    /// The problem that is reported in status: the first error found.
    pub fn first_error(&self) -> Option<&Problem> {
        self.problems.iter().find(|p| p.severity == Severity::Error)
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Problem> {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Warning)
    }

    pub fn is_ok(&self) -> bool {
        self.first_error().is_none()
    }
}

/// A problem that blocks the rollout: nothing was rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.message)]
pub struct RenderError(pub Problem);

impl RenderError {
    pub fn new(reason: Reason, path: impl Into<String>, message: impl Into<String>) -> Self {
        Self(Problem::error(reason, path, message))
    }

    pub fn reason(&self) -> Reason {
        self.0.reason
    }

    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl From<Problem> for RenderError {
    fn from(p: Problem) -> Self {
        Self(p)
    }
}
