//! The `clairpostgres` component: Clair's PostgreSQL 15 database.

use std::collections::BTreeMap;

use super::context::RenderContext;
use super::object::DesiredObject;
use super::postgres::{
    DATABASE_NAME, DATABASE_PASSWORD, DATABASE_ROOT_PASSWORD, DATABASE_USERNAME, Database,
    render_database,
};
use super::secrets::opaque_secret;
use crate::api::ComponentKind;
use crate::config::RenderError;

/// Renders Clair's database when clairpostgres is managed.
pub fn render(ctx: &RenderContext<'_>, out: &mut Vec<DesiredObject>) -> Result<(), RenderError> {
    if !ctx.managed(ComponentKind::ClairPostgres) {
        return Ok(());
    }
    let keys = ctx.input.managed_keys;
    let value = |v: Option<&str>| v.unwrap_or_default().as_bytes().to_vec();
    // The SCL image resets the `postgres` user's password to the admin one, so both are the same value.
    let credentials = BTreeMap::from([
        (DATABASE_USERNAME.to_owned(), value(keys.clair_db_user())),
        (
            DATABASE_PASSWORD.to_owned(),
            value(keys.clair_db_password()),
        ),
        (DATABASE_NAME.to_owned(), value(keys.clair_db_name())),
        (
            DATABASE_ROOT_PASSWORD.to_owned(),
            value(keys.clair_db_root_pw()),
        ),
    ]);
    let credentials_secret = ctx.object_name("clairpostgres-config-secret");
    out.push(DesiredObject::Secret(opaque_secret(
        ctx,
        &credentials_secret,
        "clair-postgres",
        credentials,
    )));
    let conf_sample = ctx.object_name("clair-postgres-conf-sample");
    render_database(
        ctx,
        &Database {
            name: "clair-postgres",
            component: "clair-postgres",
            container: "clair-postgres",
            image: &ctx.images.clairpostgres,
            pvc: &ctx.object_name(&super::postgres_upgrade::CLAIR_DATABASE.pvc()),
            credentials_secret: &credentials_secret,
            conf_sample: &conf_sample,
            bootstrap_secret: None,
        },
        out,
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::postgres::secret_text;
    use crate::render::testing::{Fixture, deployment, object, pvc};

    #[test]
    fn clair_database_uses_its_own_credentials_secret() {
        let fixture = Fixture::new();
        let rendered = fixture.render();
        let DesiredObject::Secret(secret) =
            object(&rendered, "Secret", "reg-clairpostgres-config-secret")
        else {
            unreachable!()
        };
        assert_eq!(secret_text(&secret, DATABASE_USERNAME), "postgres");
        assert_eq!(secret_text(&secret, DATABASE_NAME), "postgres");
        assert_eq!(
            secret_text(&secret, DATABASE_PASSWORD),
            fixture.keys.clair_db_password().unwrap()
        );
        let container = deployment(&rendered, "reg-clair-postgres")
            .spec
            .unwrap()
            .template
            .spec
            .unwrap()
            .containers
            .remove(0);
        assert_eq!(container.name, "clair-postgres");
        let env = container.env.unwrap();
        let user = env.iter().find(|e| e.name == "POSTGRESQL_USER").unwrap();
        let selector = user
            .value_from
            .as_ref()
            .unwrap()
            .secret_key_ref
            .as_ref()
            .unwrap();
        assert_eq!(selector.name, "reg-clairpostgres-config-secret");
        // No bootstrap script for Clair's database.
        assert!(container.volume_mounts.unwrap().len() == 2);
        assert!(pvc(&rendered, "reg-clair-postgres-15").spec.is_some());
    }

    #[test]
    fn unmanaged_clairpostgres_renders_nothing() {
        let rendered = Fixture::new()
            .component(ComponentKind::ClairPostgres, false, None)
            .bundle_file(
                "clair-config.yaml",
                "indexer:\n  connstring: host=db.example.com\n",
            )
            .render();
        assert!(
            !rendered
                .objects
                .iter()
                .any(|o| o.name().contains("clair-postgres") || o.name().contains("clairpostgres"))
        );
    }
}
