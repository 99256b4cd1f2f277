//! Container images: the defaults and the operator's `RELATED_IMAGE_COMPONENT_*` overrides.

use super::context::{ImageSettings, Images};

pub const DEFAULT_QUAY_IMAGE: &str = "quay.io/projectquay/quay:latest";
pub const DEFAULT_CLAIR_IMAGE: &str = "quay.io/projectquay/clair:4.8.0";
pub const DEFAULT_POSTGRES_IMAGE: &str = "quay.io/sclorg/postgresql-13-c9s:latest";
pub const DEFAULT_CLAIRPOSTGRES_IMAGE: &str = "quay.io/sclorg/postgresql-15-c9s:latest";
pub const DEFAULT_REDIS_IMAGE: &str = "quay.io/sclorg/redis-7-c9s:latest";
pub const DEFAULT_POSTGRES_PREVIOUS_IMAGE: &str = "centos/postgresql-10-centos7:latest";
pub const DEFAULT_CLAIRPOSTGRES_PREVIOUS_IMAGE: &str = "quay.io/sclorg/postgresql-13-c9s:latest";

/// The image of every container. Each previous-version image has its own setting (upstream's collided).
pub fn resolve(settings: &ImageSettings) -> Images {
    let pick = |o: &Option<String>, d: &str| o.clone().unwrap_or_else(|| d.to_owned());
    Images {
        quay: pick(&settings.quay, DEFAULT_QUAY_IMAGE),
        clair: pick(&settings.clair, DEFAULT_CLAIR_IMAGE),
        postgres: pick(&settings.postgres, DEFAULT_POSTGRES_IMAGE),
        clairpostgres: pick(&settings.clairpostgres, DEFAULT_CLAIRPOSTGRES_IMAGE),
        redis: pick(&settings.redis, DEFAULT_REDIS_IMAGE),
        postgres_previous: pick(&settings.postgres_previous, DEFAULT_POSTGRES_PREVIOUS_IMAGE),
        clairpostgres_previous: pick(
            &settings.clairpostgres_previous,
            DEFAULT_CLAIRPOSTGRES_PREVIOUS_IMAGE,
        ),
    }
}

/// Why an image reference is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image override must be reference by tag or digest: {0}")]
pub struct InvalidImageReference(pub String);

/// Checks an image reference: `[registry[:port]/]path[:tag][@sha256:digest]`, with a tag or a digest.
/// Unlike upstream, a registry with a port and a tag (`host:5000/img:tag`) is accepted.
pub fn check_reference(reference: &str) -> Result<(), InvalidImageReference> {
    let bad = || InvalidImageReference(reference.to_owned());
    if reference.is_empty() || reference.chars().any(char::is_whitespace) {
        return Err(bad());
    }
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (reference, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d.split_once(':').ok_or_else(bad)?;
        if algo.is_empty() || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(bad());
        }
    }
    // The tag is after the last ':' that comes after the last '/'.
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let tag = last_segment.split_once(':').map(|(_, t)| t);
    let path_ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.ends_with('/')
        && !last_segment.starts_with(':');
    match (tag, digest) {
        (Some(t), _) if t.is_empty() || t.len() > 128 => Err(bad()),
        (None, None) => Err(bad()),
        _ if !path_ok => Err(bad()),
        _ => Ok(()),
    }
}

/// The last path segment of an image's repository, without tag or digest (PostgreSQL major-version detection).
/// Registry ports are handled, unlike upstream's split on `:`.
pub fn repository_basename(reference: &str) -> &str {
    let name = reference.split('@').next().unwrap_or(reference);
    let last = name.rsplit('/').next().unwrap_or(name);
    last.split(':').next().unwrap_or(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_with_tag_digest_and_registry_port_are_accepted() {
        for ok in [
            "quay.io/projectquay/quay:3.11.1",
            "registry.local:5000/quay/quay:v3.11",
            "quay.io/projectquay/quay@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "registry.local:5000/quay@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert_eq!(check_reference(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn references_without_tag_or_digest_are_refused_with_upstream_message() {
        for bad in [
            "quay.io/projectquay/quay",
            "registry.local:5000/quay",
            "",
            "quay:",
            "img@sha256:xyz",
        ] {
            let err = check_reference(bad).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("image override must be reference by tag or digest: {bad}")
            );
        }
    }

    #[test]
    fn basename_ignores_registry_port_tag_and_digest() {
        assert_eq!(
            repository_basename("registry.local:5000/sclorg/postgresql-13-c9s:latest"),
            "postgresql-13-c9s"
        );
        assert_eq!(
            repository_basename("centos/postgresql-10-centos7@sha256:abc"),
            "postgresql-10-centos7"
        );
        assert_eq!(repository_basename("postgres"), "postgres");
    }
}
