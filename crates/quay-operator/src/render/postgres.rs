//! The `postgres` component: Quay's PostgreSQL 13 database (Deployment, PVC, Service, credentials, the
//! `pg_trgm` bootstrap script). Also the pieces the Clair database shares with it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, ExecAction,
    PersistentVolumeClaimVolumeSource, PodSpec, Probe, SecretVolumeSource, ServiceAccount, Volume,
    VolumeMount,
};

use super::context::RenderContext;
use super::meta;
use super::object::DesiredObject;
use super::secrets::opaque_secret;
use super::workload::{self, env, env_from_secret, mount, port, service_port, sub_path_mount};
use crate::api::ComponentKind;
use crate::config::managed_keys::MANAGED_KEYS_SUFFIX;
use crate::config::{Reason, RenderError};

/// Default size of a database volume.
pub const DATABASE_VOLUME_SIZE: &str = "50Gi";
/// The database pods get ten minutes to shut down cleanly (a killed PostgreSQL replays its WAL on start).
/// Upstream's templates misspelled the field, so its pods got Kubernetes' default of 30 s.
pub const DATABASE_GRACE_PERIOD_SECONDS: i64 = 600;
/// `postgresql.conf.sample` of both databases: no huge pages (not available in most pods), daily log files.
pub const POSTGRES_CONF_SAMPLE: &str = "huge_pages = off\n\
logging_collector = on\n\
log_filename = 'postgresql-%a.log'\n\
log_truncate_on_rotation = on\n\
log_rotation_age = 1d\n\
log_rotation_size = 0\n";
const CONF_SAMPLE_KEY: &str = "postgresql.conf.sample";
const BOOTSTRAP_KEY: &str = "create-extensions.sh";

/// Keys of a database credentials Secret.
pub const DATABASE_USERNAME: &str = "database-username";
pub const DATABASE_PASSWORD: &str = "database-password";
pub const DATABASE_NAME: &str = "database-name";
pub const DATABASE_ROOT_PASSWORD: &str = "database-root-password";

/// What differs between Quay's and Clair's database.
pub(super) struct Database<'a> {
    /// Suffix of the Deployment, Service and ServiceAccount.
    pub name: &'a str,
    /// `quay-component` of every object (labels, selector, annotation).
    pub component: &'a str,
    pub container: &'a str,
    pub image: &'a str,
    pub pvc: &'a str,
    pub credentials_secret: &'a str,
    pub conf_sample: &'a str,
    /// The `pg_trgm` bootstrap Secret (Quay's database only).
    pub bootstrap_secret: Option<&'a str>,
}

/// Renders the Quay database when postgres is managed.
pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) -> Result<(), RenderError> {
    if !ctx.managed(ComponentKind::Postgres) {
        return Ok(());
    }
    let credentials = credentials_from_managed_keys(ctx)?;
    let credentials_secret = ctx.object_name("postgres-config-secret");
    out.push(DesiredObject::Secret(opaque_secret(
        ctx,
        &credentials_secret,
        "postgres",
        credentials,
    )));
    out.push(DesiredObject::Secret(opaque_secret(
        ctx,
        &ctx.names.postgres_bootstrap_secret,
        "postgres",
        ctx.secret_data.postgres_bootstrap.clone(),
    )));
    let conf_sample = ctx.object_name("postgres-conf-sample");
    render_database(
        ctx,
        &Database {
            name: "quay-database",
            component: "postgres",
            container: "postgres",
            image: &ctx.images.postgres,
            pvc: &ctx.object_name(&super::postgres_upgrade::QUAY_DATABASE.pvc()),
            credentials_secret: &credentials_secret,
            conf_sample: &conf_sample,
            bootstrap_secret: Some(&ctx.names.postgres_bootstrap_secret),
        },
        out,
    );
    Ok(())
}

/// ServiceAccount, conf-sample ConfigMap, PVC, Service and Deployment of one database.
pub(super) fn render_database(
    ctx: &RenderContext<'_>,
    db: &Database<'_>,
    out: &mut Vec<DesiredObject>,
) {
    out.push(DesiredObject::ServiceAccount(ServiceAccount {
        metadata: meta::object_meta(ctx, db.name, db.component),
        ..Default::default()
    }));
    out.push(DesiredObject::ConfigMap(ConfigMap {
        metadata: meta::named(ctx, db.conf_sample, db.component),
        data: Some(BTreeMap::from([(
            CONF_SAMPLE_KEY.to_owned(),
            POSTGRES_CONF_SAMPLE.to_owned(),
        )])),
        ..Default::default()
    }));
    out.push(DesiredObject::PersistentVolumeClaim(workload::pvc(
        meta::named(ctx, db.pvc, db.component),
        DATABASE_VOLUME_SIZE,
    )));
    let selector = meta::selector(ctx, db.component);
    out.push(DesiredObject::Service(workload::cluster_ip_service(
        meta::object_meta(ctx, db.name, db.component),
        selector.clone(),
        vec![service_port(Some("postgres"), 5432, 5432)],
    )));
    out.push(DesiredObject::Deployment(Box::new(database_deployment(
        ctx, db, selector,
    ))));
}

fn database_deployment(
    ctx: &RenderContext<'_>,
    db: &Database<'_>,
    selector: BTreeMap<String, String>,
) -> Deployment {
    let from_credentials =
        |name: &str, key: &str| env_from_secret(name, db.credentials_secret, key);
    let env: Vec<EnvVar> = vec![
        from_credentials("POSTGRESQL_USER", DATABASE_USERNAME),
        from_credentials("POSTGRESQL_DATABASE", DATABASE_NAME),
        from_credentials("POSTGRESQL_ADMIN_PASSWORD", DATABASE_ROOT_PASSWORD),
        from_credentials("POSTGRESQL_PASSWORD", DATABASE_PASSWORD),
        env("POSTGRESQL_SHARED_BUFFERS", "256MB"),
        env("POSTGRESQL_MAX_CONNECTIONS", "2000"),
    ];
    let mut mounts: Vec<VolumeMount> = vec![
        sub_path_mount(
            "postgres-conf-sample",
            "/usr/share/pgsql/postgresql.conf.sample",
            CONF_SAMPLE_KEY,
            false,
        ),
        mount("postgres-data", "/var/lib/pgsql/data", None),
    ];
    let mut volumes = vec![
        Volume {
            name: "postgres-conf-sample".to_owned(),
            config_map: Some(ConfigMapVolumeSource {
                name: db.conf_sample.to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        },
        Volume {
            name: "postgres-data".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: db.pvc.to_owned(),
                read_only: None,
            }),
            ..Default::default()
        },
    ];
    if let Some(bootstrap) = db.bootstrap_secret {
        mounts.push(sub_path_mount(
            "postgres-bootstrap",
            "/usr/share/container-scripts/postgresql/start/create-extensions.sh",
            BOOTSTRAP_KEY,
            true,
        ));
        volumes.push(Volume {
            name: "postgres-bootstrap".to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(bootstrap.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let container = Container {
        image_pull_policy: Some("IfNotPresent".to_owned()),
        ports: Some(vec![port(5432)]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["/usr/libexec/check-container".to_owned()]),
            }),
            initial_delay_seconds: Some(5),
            period_seconds: Some(10),
            timeout_seconds: Some(5),
            ..Default::default()
        }),
        env: Some(env),
        resources: Some(workload::resources(("500m", "2Gi"), None)),
        volume_mounts: Some(mounts),
        ..workload::container(db.container, db.image)
    };
    let pod = PodSpec {
        service_account_name: Some(ctx.object_name(db.name)),
        termination_grace_period_seconds: Some(DATABASE_GRACE_PERIOD_SECONDS),
        containers: vec![container],
        volumes: Some(volumes),
        ..Default::default()
    };
    workload::deployment(
        meta::object_meta(ctx, db.name, db.component),
        selector,
        Some(1),
        workload::recreate(),
        pod,
    )
}

/// The four keys of `<reg>-postgres-config-secret`, from the managed `DB_URI` and `DB_ROOT_PW`.
fn credentials_from_managed_keys(
    ctx: &RenderContext<'_>,
) -> Result<BTreeMap<String, Vec<u8>>, RenderError> {
    let keys = ctx.input.managed_keys;
    let keys_secret = ctx.object_name(MANAGED_KEYS_SUFFIX);
    let uri = keys.db_uri().ok_or_else(|| {
        RenderError::new(
            Reason::ComponentCreationFailed,
            format!("{keys_secret}[DB_URI]"),
            format!("managed database has no DB_URI in {keys_secret}"),
        )
    })?;
    let parsed = DatabaseUri::parse(uri).map_err(|what| {
        // The URI carries the password: name only the part that is wrong.
        RenderError::new(
            Reason::ComponentCreationFailed,
            format!("{keys_secret}[DB_URI]"),
            format!("DB_URI in {keys_secret} is not a postgresql:// URI: {what}"),
        )
    })?;
    let root_password = keys.db_root_pw().unwrap_or_default();
    Ok(BTreeMap::from([
        (DATABASE_USERNAME.to_owned(), parsed.user.into_bytes()),
        (DATABASE_PASSWORD.to_owned(), parsed.password.into_bytes()),
        (DATABASE_NAME.to_owned(), parsed.database.into_bytes()),
        (
            DATABASE_ROOT_PASSWORD.to_owned(),
            root_password.as_bytes().to_vec(),
        ),
    ]))
}

/// The parts of `postgresql://user:password@host[:port]/database[?params]` the database container needs.
#[derive(PartialEq, Eq)]
pub struct DatabaseUri {
    pub user: String,
    pub password: String,
    pub database: String,
}

impl std::fmt::Debug for DatabaseUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseUri")
            .field("user", &self.user)
            .field("database", &self.database)
            .finish_non_exhaustive()
    }
}

impl DatabaseUri {
    /// Parses a URI; the error names the missing part and never contains the URI itself.
    pub fn parse(uri: &str) -> Result<Self, &'static str> {
        let rest = uri
            .strip_prefix("postgresql://")
            .or_else(|| uri.strip_prefix("postgres://"))
            .ok_or("missing postgresql:// scheme")?;
        // The password may contain '@' in percent-encoded form only; the last '@' ends the user info.
        let (userinfo, host_and_path) = rest.rsplit_once('@').ok_or("missing user")?;
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let path = host_and_path
            .split_once('/')
            .map(|(_, p)| p)
            .ok_or("missing database name")?;
        let database = path.split(['?', '#']).next().unwrap_or_default();
        if user.is_empty() {
            return Err("missing user");
        }
        if database.is_empty() {
            return Err("missing database name");
        }
        Ok(Self {
            user: percent_decode(user).ok_or("invalid percent-encoding in user")?,
            password: percent_decode(password).ok_or("invalid percent-encoding in password")?,
            database: percent_decode(database)
                .ok_or("invalid percent-encoding in database name")?,
        })
    }
}

fn percent_decode(s: &str) -> Option<String> {
    if !s.contains('%') {
        return Some(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The Secret data as `ByteString`s (tests read it back).
#[cfg(test)]
pub(crate) fn secret_text(secret: &k8s_openapi::api::core::v1::Secret, key: &str) -> String {
    let data = secret.data.as_ref().expect("secret data");
    String::from_utf8(data[key].0.clone()).expect("utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testing::{Fixture, deployment, object, pvc};

    #[test]
    fn db_grace_period_is_600s() {
        let rendered = Fixture::new().render();
        for name in ["reg-quay-database", "reg-clair-postgres"] {
            let pod = deployment(&rendered, name)
                .spec
                .unwrap()
                .template
                .spec
                .unwrap();
            assert_eq!(pod.termination_grace_period_seconds, Some(600), "{name}");
        }
    }

    #[test]
    fn database_is_recreated_not_rolled() {
        let rendered = Fixture::new().render();
        let spec = deployment(&rendered, "reg-quay-database").spec.unwrap();
        assert_eq!(spec.strategy.unwrap().type_.as_deref(), Some("Recreate"));
        assert_eq!(spec.replicas, Some(1));
    }

    #[test]
    fn database_pod_template_has_no_hostname_or_ca_annotations() {
        let rendered = Fixture::new().render();
        for name in ["reg-quay-database", "reg-clair-postgres"] {
            let template = deployment(&rendered, name).spec.unwrap().template;
            let annotations = template.metadata.unwrap().annotations.unwrap_or_default();
            for key in [
                "quay-registry-hostname",
                "quay-buildmanager-hostname",
                "quay-operator-service-endpoint",
                "quay-managed-fieldgroups",
                // Databases mount neither CA bundles nor the TLS pair: their rotation must not restart them.
                "cluster-trusted-ca",
                "cluster-service-ca",
            ] {
                assert!(!annotations.contains_key(key), "{name} has {key}");
            }
        }
    }

    #[test]
    fn credentials_come_from_the_managed_db_uri() {
        let fixture = Fixture::new();
        let rendered = fixture.render();
        let DesiredObject::Secret(secret) =
            object(&rendered, "Secret", "reg-postgres-config-secret")
        else {
            unreachable!()
        };
        let uri = fixture.keys.db_uri().unwrap();
        let parsed = DatabaseUri::parse(uri).unwrap();
        assert_eq!(secret_text(&secret, DATABASE_USERNAME), "reg-quay-database");
        assert_eq!(secret_text(&secret, DATABASE_NAME), "reg-quay-database");
        assert_eq!(secret_text(&secret, DATABASE_PASSWORD), parsed.password);
        assert_eq!(parsed.password.len(), 80);
        assert_eq!(
            secret_text(&secret, DATABASE_ROOT_PASSWORD),
            fixture.keys.db_root_pw().unwrap()
        );
    }

    #[test]
    fn bootstrap_secret_is_rendered_with_its_hash_name_and_mounted() {
        let rendered = Fixture::new().render();
        let name = rendered
            .objects
            .iter()
            .map(DesiredObject::name)
            .find(|n| n.starts_with("reg-postgres-bootstrap-"))
            .expect("bootstrap secret")
            .to_owned();
        let pod = deployment(&rendered, "reg-quay-database")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let volumes = pod.volumes.unwrap();
        assert!(volumes.iter().any(|v| {
            v.secret
                .as_ref()
                .is_some_and(|s| s.secret_name.as_deref() == Some(&name))
        }));
    }

    #[test]
    fn database_pvc_defaults_to_50gi() {
        let rendered = Fixture::new().render();
        let claim = pvc(&rendered, "reg-quay-postgres-13");
        let spec = claim.spec.unwrap();
        assert_eq!(
            spec.resources.unwrap().requests.unwrap()["storage"].0,
            "50Gi"
        );
        assert_eq!(spec.access_modes.unwrap(), vec!["ReadWriteOnce".to_owned()]);
    }

    #[test]
    fn unmanaged_postgres_renders_nothing() {
        let rendered = Fixture::new()
            .component(ComponentKind::Postgres, false, None)
            .config_line("DB_URI: postgresql://u:p@db.example.com/quay")
            .render();
        assert!(!rendered.objects.iter().any(|o| {
            o.name().starts_with("reg-quay-database")
                || o.name().starts_with("reg-postgres-")
                || o.name() == "reg-quay-postgres-13"
        }));
    }

    #[test]
    fn uri_errors_never_echo_the_uri() {
        for bad in [
            "mysql://u:secretpw@h/db",
            "postgresql://h/db",
            "postgresql://u:secretpw@h",
        ] {
            let err = DatabaseUri::parse(bad).unwrap_err();
            assert!(!err.contains("secretpw"));
        }
        let ok = DatabaseUri::parse("postgresql://u%40x:p%2Fw@h:5432/db?sslmode=require").unwrap();
        assert_eq!(ok.user, "u@x");
        assert_eq!(ok.password, "p/w");
        assert_eq!(ok.database, "db");
        assert!(!format!("{ok:?}").contains("p/w"));
    }
}
