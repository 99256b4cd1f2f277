//! Checks upstream makes while rendering (`could not inflate kubernetes objects: ...`): image overrides and
//! volume sizes.

use std::cmp::Ordering;

use super::{Facts, INFLATE_PREFIX};
use crate::api::ComponentKind;
use crate::config::{Problem, Reason, ValidationReport};
use crate::render::images::check_reference;

/// Each `RELATED_IMAGE_COMPONENT_*` setting must be a reference by tag or digest.
pub(super) fn check_images(facts: &Facts<'_>, report: &mut ValidationReport) {
    let images = &facts.input.settings.images;
    for (env, value) in [
        ("RELATED_IMAGE_COMPONENT_QUAY", &images.quay),
        ("RELATED_IMAGE_COMPONENT_CLAIR", &images.clair),
        ("RELATED_IMAGE_COMPONENT_POSTGRES", &images.postgres),
        (
            "RELATED_IMAGE_COMPONENT_CLAIRPOSTGRES",
            &images.clairpostgres,
        ),
        ("RELATED_IMAGE_COMPONENT_REDIS", &images.redis),
        (
            "RELATED_IMAGE_COMPONENT_POSTGRES_PREVIOUS",
            &images.postgres_previous,
        ),
        (
            "RELATED_IMAGE_COMPONENT_CLAIRPOSTGRES_PREVIOUS",
            &images.clairpostgres_previous,
        ),
    ] {
        let Some(reference) = value.as_deref() else {
            continue;
        };
        if let Err(e) = check_reference(reference) {
            report.push(Problem::error(
                Reason::ComponentCreationFailed,
                format!("operator env {env}"),
                format!("{INFLATE_PREFIX}{e}"),
            ));
        } else if repository_has_upper_case(reference) {
            report.push(Problem::error(
                Reason::ComponentCreationFailed,
                format!("operator env {env}"),
                format!(
                    "{INFLATE_PREFIX}image reference {reference:?} ({env}) has upper-case letters in its repository \
                     path: repository names are lower-case, no registry would find it"
                ),
            ));
        }
    }
}

/// Whether the repository path of an image reference (after the registry host, before tag and digest) has
/// upper-case letters, which the reference grammar forbids (only the registry host may have them).
fn repository_has_upper_case(reference: &str) -> bool {
    let name = reference.split('@').next().unwrap_or(reference);
    let mut components: Vec<&str> = name.split('/').collect();
    if let Some(last) = components.last_mut() {
        *last = last.split(':').next().unwrap_or(last);
    }
    let host = components.len() > 1
        && (components[0].contains(['.', ':']) || components[0] == "localhost");
    components
        .iter()
        .skip(usize::from(host))
        .any(|c| c.chars().any(|ch| ch.is_ascii_uppercase()))
}

/// `volumeSize` overrides: a valid quantity, and never smaller than the live PVC (a PVC cannot shrink). Unlike
/// upstream, which compared with the 50Gi template, a PVC that does not exist yet may have any size.
pub(super) fn check_volume_sizes(facts: &Facts<'_>, report: &mut ValidationReport) {
    for (kind, pvc_suffix) in [
        (ComponentKind::Postgres, Some("quay-postgres-13")),
        (ComponentKind::Clair, None),
        (ComponentKind::ClairPostgres, Some("clair-postgres-15")),
    ] {
        let component = facts.component(kind);
        if !component.managed {
            continue;
        }
        let Some(size) = component
            .overrides
            .as_ref()
            .and_then(|o| o.volume_size.as_ref())
        else {
            continue;
        };
        let path = format!("{}.overrides.volumeSize", facts.component_path(kind));
        let Some(wanted) = parse_quantity(&size.0) else {
            report.push(Problem::error(
                Reason::ComponentOverrideInvalid,
                path,
                format!(
                    "invalid overrides: volumeSize {:?} of component {kind} is not a valid quantity",
                    size.0
                ),
            ));
            continue;
        };
        if wanted.is_negative() {
            report.push(Problem::error(
                Reason::ComponentOverrideInvalid,
                path,
                format!(
                    "invalid overrides: volumeSize {:?} of component {kind} must not be negative",
                    size.0
                ),
            ));
            continue;
        }
        let Some(suffix) = pvc_suffix else { continue };
        let pvc = format!("{}-{suffix}", facts.name);
        let live = facts.input.cluster.pvc_sizes.get(&pvc);
        let Some((live_text, live)) = live.and_then(|q| Some((&q.0, parse_quantity(&q.0)?))) else {
            continue;
        };
        if wanted.cmp(&live) == Ordering::Less {
            report.push(Problem::error(
                Reason::ComponentCreationFailed,
                path,
                format!(
                    "{INFLATE_PREFIX}cannot shrink volume override size from {live_text} to {}",
                    size.0
                ),
            ));
        }
    }
}

/// An exact Kubernetes quantity: `nano` billionths of a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity {
    nano: i128,
}

impl Quantity {
    pub fn is_negative(self) -> bool {
        self.nano < 0
    }

    /// The value in whole units, rounded down.
    pub fn whole_units(self) -> i128 {
        self.nano.div_euclid(1_000_000_000)
    }
}

/// Parses a Kubernetes quantity (`50Gi`, `1.5G`, `100Mi`, `1e3`, `500m`, `1073741824`): a signed decimal
/// number with a binary suffix (`Ki`..`Ei`), a decimal suffix (`n`, `u`, `m`, `k`, `M`..`E`) or an exponent.
/// Values finer than a nano-unit are truncated.
pub fn parse_quantity(text: &str) -> Option<Quantity> {
    let s = text.trim();
    let (negative, s) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let (int_part, frac_part) = number.split_once('.').unwrap_or((number, ""));
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return None;
    }
    let digits = format!("{int_part}{frac_part}");
    let mantissa: i128 = digits.parse().ok()?;
    // value = mantissa * 10^(pow10 - frac) * 2^pow2, in nano-units (+9).
    let (pow2, pow10): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "n" => (0, -9),
        "u" => (0, -6),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        exp if exp.starts_with(['e', 'E']) => (0, exp[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    let scale = pow10 + 9 - i32::try_from(frac_part.len()).ok()?;
    let mut nano = mantissa.checked_mul(1i128.checked_shl(pow2)?)?;
    if scale >= 0 {
        nano = nano.checked_mul(10i128.checked_pow(u32::try_from(scale).ok()?)?)?;
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-scale).ok()?);
        nano = match divisor {
            Some(d) => nano / d,
            None => 0,
        };
    }
    Some(Quantity {
        nano: if negative { -nano } else { nano },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(s: &str) -> i128 {
        parse_quantity(s)
            .unwrap_or_else(|| panic!("{s} parses"))
            .whole_units()
    }

    #[test]
    fn quantities_in_every_notation_are_exact() {
        assert_eq!(bytes("50Gi"), 50 * (1 << 30));
        assert_eq!(bytes("1.5Gi"), 3 * (1 << 29));
        assert_eq!(bytes("10G"), 10_000_000_000);
        assert_eq!(bytes("100Mi"), 100 * (1 << 20));
        assert_eq!(bytes("2Ti"), 2 * (1i128 << 40));
        assert_eq!(bytes("53687091200"), 50 * (1 << 30));
        assert_eq!(bytes("1e3"), 1000);
        assert_eq!(bytes("1.5E3"), 1500);
        assert_eq!(bytes("0.5Ki"), 512);
        assert_eq!(bytes("+1k"), 1000);
        assert_eq!(parse_quantity("500m").unwrap().nano, 500_000_000);
        assert!(parse_quantity("-1Gi").unwrap().is_negative());
        assert_eq!(parse_quantity("50Gi"), parse_quantity("53687091200"));
        assert!(parse_quantity("50Gi") > parse_quantity("50G"));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in [
            "", "Gi", "1.2.3Gi", "10 Gi", "10gi", "abc", "1e", "1Xi", ".",
        ] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }
}
