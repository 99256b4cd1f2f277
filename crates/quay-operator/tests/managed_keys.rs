//! The managed keys are inputs the render must carry through untouched, and must never reveal.

mod common;

use std::collections::BTreeMap;

use quay_operator::api::{Component, ComponentKind, Override};
use quay_operator::cli::Inputs;
use quay_operator::config::ConfigBundle;
use quay_operator::config::managed_keys::MANAGED_KEY_NAMES;
use quay_operator::render::{DesiredObject, render};

fn managed_keys_file(name: &str) -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(common::examples_dir().join(name).join("managed-keys.yaml"))
        .unwrap();
    let secret: k8s_openapi::api::core::v1::Secret = serde_saphyr::from_str(&text).unwrap();
    quay_operator::config::bundle::secret_files(&secret)
}

#[test]
fn managed_keys_given_as_input_come_out_unchanged() {
    for name in common::example_names() {
        let inputs = common::load_example(&name);
        let rendered = render(&inputs.render_input(common::fixed_now()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let reg = inputs.registry.metadata.name.clone().unwrap();
        let secret = rendered
            .objects
            .iter()
            .find_map(|o| match o {
                DesiredObject::Secret(s)
                    if s.metadata.name.as_deref()
                        == Some(&format!("{reg}-quay-registry-managed-secret-keys")) =>
                {
                    Some(s)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("{name}: no managed keys Secret"));
        let rendered_data: BTreeMap<String, Vec<u8>> = secret
            .data
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect();
        let given = managed_keys_file(&name);
        assert_eq!(rendered_data, given, "{name}: managed keys changed");
        for key in MANAGED_KEY_NAMES {
            assert!(rendered_data.contains_key(key), "{name}: {key} missing");
        }
    }
}

/// Inputs that must be refused, each built from the all-managed example.
fn bad_inputs() -> Vec<(&'static str, Inputs)> {
    let base = common::load_example("all-managed");
    let with_config = |yaml: &str| {
        let mut i = base.clone();
        let mut files = i.bundle.files().clone();
        files.insert("config.yaml".to_owned(), yaml.as_bytes().to_vec());
        i.bundle = ConfigBundle::new(files);
        i
    };
    let with_components = |components: Vec<Component>| {
        let mut i = base.clone();
        i.registry.spec.components = Some(components);
        i
    };
    let mut unmanaged_with_overrides = Component::new(ComponentKind::Postgres, false);
    unmanaged_with_overrides.overrides = Some(Override {
        replicas: Some(3),
        ..Default::default()
    });
    let mut bad_volume = Component::new(ComponentKind::Postgres, true);
    bad_volume.overrides = Some(Override {
        volume_size: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
            "1Gi".to_owned(),
        )),
        ..Default::default()
    });
    let mut bad_cert = base.clone();
    let mut files = bad_cert.bundle.files().clone();
    files.insert("ssl.cert".to_owned(), b"not a certificate".to_vec());
    files.insert("ssl.key".to_owned(), b"not a key".to_vec());
    bad_cert.bundle = ConfigBundle::new(files);
    vec![
        (
            "config.yaml is not YAML",
            with_config("SERVER_HOSTNAME: [unclosed"),
        ),
        ("config.yaml is a list", with_config("- a\n- b\n")),
        (
            "SERVER_HOSTNAME is a map",
            with_config("SERVER_HOSTNAME: {a: b}\n"),
        ),
        (
            "unmanaged postgres without DB_URI",
            with_components(vec![Component::new(ComponentKind::Postgres, false)]),
        ),
        (
            "managed postgres with DB_URI",
            with_config("DB_URI: postgresql://u:p@h/db\n"),
        ),
        (
            "unmanaged component with overrides",
            with_components(vec![unmanaged_with_overrides]),
        ),
        ("postgres volume shrink", with_components(vec![bad_volume])),
        ("certificate that does not parse", bad_cert),
    ]
}

#[test]
fn no_managed_key_appears_in_any_error_message() {
    let keys = common::load_example("all-managed").managed_keys;
    let secrets: Vec<String> = keys.secret_values().map(str::to_owned).collect();
    assert!(secrets.len() >= 5);
    let mut refused = 0;
    for (case, inputs) in bad_inputs() {
        let input = inputs.render_input(common::fixed_now());
        let mut texts = Vec::new();
        if let Err(e) = render(&input) {
            refused += 1;
            texts.push(e.to_string());
            texts.push(format!("{e:?}"));
            texts.push(e.0.to_string());
        }
        for problem in quay_operator::config::validate(&input).problems {
            texts.push(problem.to_string());
            texts.push(format!("{problem:?}"));
        }
        texts.push(format!("{:?}", inputs.managed_keys));
        texts.push(format!("{:?}", inputs.bundle));
        for text in &texts {
            for secret in &secrets {
                // Short fixed values (the Clair DB user `postgres`) are not secrets.
                if secret.len() >= 12 {
                    assert!(
                        !text.contains(secret.as_str()),
                        "{case}: a managed key leaked into: {text}"
                    );
                }
            }
        }
    }
    assert!(refused >= 1, "none of the bad inputs was refused");
}
