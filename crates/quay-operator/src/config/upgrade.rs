//! Quay version upgrade paths (3.11 manual §12.2): the operator deploys one Quay version (its `QUAY_VERSION`);
//! a registry whose `status.currentVersion` differs is upgraded only along a supported path.
//!
//! Supported: a z-stream change, the next minor version (N-1), and the listed N-2/N-3 single-step exceptions.
//! Refused: a downgrade, a skipped minor outside the exceptions (e.g. 3.8 → 3.11), another major version.
//! A refusal blocks the rollout before anything is touched.

use std::cmp::Ordering;
use std::fmt;

use super::{Problem, Reason};

/// `major.minor.patch` of a Quay version such as `v3.11.2`, `3.10.0` or `v3.99.0-dev`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct QuayVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl QuayVersion {
    /// Parses `[v]MAJOR.MINOR[.PATCH][-suffix]`; `None` for anything else (e.g. a development tag).
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().trim_start_matches('v');
        let core = s.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            major,
            minor,
            patch,
        })
    }
}

impl fmt::Display for QuayVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Single-step upgrades the manuals allow beyond N-1: `(target major, target minor) → source minors`.
const EXTRA_PATHS: &[((u32, u32), &[u32])] = &[((3, 11), &[9, 10])];

/// The minor versions (of the target's major) a registry may upgrade from, straight to `target`.
pub fn supported_sources(target: QuayVersion) -> Vec<u32> {
    let mut minors = vec![target.minor.saturating_sub(1), target.minor];
    for ((major, minor), extra) in EXTRA_PATHS {
        if (*major, *minor) == (target.major, target.minor) {
            minors.extend_from_slice(extra);
        }
    }
    minors.sort_unstable();
    minors.dedup();
    minors
}

/// Whether the registry at `current` may be upgraded to `target`. `None` or an empty `current` is a first
/// install. Versions that do not parse (development builds) are not judged.
pub fn check_upgrade(current: Option<&str>, target: &str) -> Result<(), Problem> {
    let Some(current_raw) = current.filter(|c| !c.is_empty()) else {
        return Ok(());
    };
    if current_raw == target {
        return Ok(());
    }
    let (Some(from), Some(to)) = (QuayVersion::parse(current_raw), QuayVersion::parse(target))
    else {
        return Ok(());
    };
    let refuse = |why: String| {
        Err(Problem::error(
            Reason::UpgradeUnsupported,
            "status.currentVersion",
            format!("cannot upgrade Quay from {current_raw} to {target}: {why}"),
        ))
    };
    match from.cmp(&to) {
        Ordering::Equal => Ok(()),
        Ordering::Greater => refuse(format!(
            "downgrades are not supported; run an operator that deploys {}.{} (or later) again",
            from.major, from.minor
        )),
        Ordering::Less if from.major != to.major => refuse(format!(
            "upgrades across major versions are not supported; upgrade within {}.x first",
            from.major
        )),
        Ordering::Less => {
            let sources = supported_sources(to);
            if sources.contains(&from.minor) {
                return Ok(());
            }
            let listed: Vec<String> = sources
                .iter()
                .map(|m| format!("{}.{m}.z", to.major))
                .collect();
            let next = from.minor + 1;
            refuse(format!(
                "Quay {}.{} supports upgrades from {} only; upgrade to {}.{next} first",
                to.major,
                to.minor,
                listed.join(", "),
                from.major
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(current: &str, target: &str) -> String {
        check_upgrade(Some(current), target).unwrap_err().message
    }

    #[test]
    fn first_install_same_version_and_z_stream_are_allowed() {
        assert!(check_upgrade(None, "v3.11.0").is_ok());
        assert!(check_upgrade(Some(""), "v3.11.0").is_ok());
        assert!(check_upgrade(Some("v3.11.0"), "v3.11.0").is_ok());
        assert!(check_upgrade(Some("v3.11.0"), "v3.11.4").is_ok());
    }

    #[test]
    fn next_minor_and_the_manuals_exceptions_are_allowed() {
        assert!(check_upgrade(Some("v3.10.3"), "v3.11.0").is_ok());
        assert!(
            check_upgrade(Some("3.9.7"), "v3.11.1").is_ok(),
            "3.9.z → 3.11.z is listed in §12.2"
        );
        assert!(check_upgrade(Some("v3.4.5"), "v3.5.0").is_ok());
    }

    #[test]
    fn skipped_minor_is_refused_with_the_next_step() {
        let m = message("v3.8.12", "v3.11.0");
        assert_eq!(
            m,
            "cannot upgrade Quay from v3.8.12 to v3.11.0: Quay 3.11 supports upgrades from 3.9.z, 3.10.z, 3.11.z \
             only; upgrade to 3.9 first"
        );
        assert_eq!(
            check_upgrade(Some("v3.8.12"), "v3.11.0")
                .unwrap_err()
                .reason,
            Reason::UpgradeUnsupported
        );
        assert!(message("v3.3.4", "v3.5.0").contains("upgrade to 3.4 first"));
    }

    #[test]
    fn downgrade_and_major_change_are_refused() {
        assert!(message("v3.11.2", "v3.10.0").contains("downgrades are not supported"));
        assert!(message("v3.11.2", "v3.11.1").contains("downgrades are not supported"));
        assert!(message("v2.9.0", "v3.0.0").contains("across major versions"));
    }

    #[test]
    fn render_refuses_an_unsupported_upgrade_before_anything_else() {
        let mut fixture = crate::render::testing::Fixture::new();
        fixture.settings.quay_version = "v3.11.0".into();
        fixture
            .registry
            .status
            .get_or_insert_with(Default::default)
            .current_version = Some("v3.8.2".into());
        let err = fixture.try_render().unwrap_err();
        assert_eq!(err.reason(), Reason::UpgradeUnsupported);
        assert!(
            err.message().contains("from v3.8.2 to v3.11.0"),
            "{}",
            err.message()
        );
        fixture.registry.status.as_mut().unwrap().current_version = Some("v3.10.1".into());
        assert!(
            fixture.try_render().is_ok(),
            "3.10 → 3.11 renders (with the migration Job)"
        );
    }

    #[test]
    fn development_versions_are_not_judged() {
        assert!(check_upgrade(Some("dev"), "v3.11.0").is_ok());
        assert!(check_upgrade(Some("v3.11.0"), "latest").is_ok());
        assert_eq!(
            QuayVersion::parse("v3.99.0-dev"),
            Some(QuayVersion {
                major: 3,
                minor: 99,
                patch: 0
            })
        );
    }
}
