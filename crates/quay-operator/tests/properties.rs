//! Properties of the render that hold for any input: it is a pure function (same input, byte-identical output,
//! hashed Secret names included) and it never panics, whatever bytes the config bundle holds.

mod common;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::EnvVar;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;
use quay_operator::api::{Component, ComponentKind, Override, Resources};
use quay_operator::cli::{Inputs, objects_yaml};
use quay_operator::config::ConfigBundle;
use quay_operator::render::render;

fn render_yaml(inputs: &Inputs) -> Result<String, String> {
    render(&inputs.render_input(common::fixed_now()))
        .map(|r| objects_yaml(&r.objects))
        .map_err(|e| e.to_string())
}

/// Scalars as users write them, odd ones included (octal-looking, yes/no, empty, quoted numbers).
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("true".to_owned()),
        Just("yes".to_owned()),
        Just("0443".to_owned()),
        Just("1e3".to_owned()),
        Just("\"80\"".to_owned()),
        Just("~".to_owned()),
        Just("''".to_owned()),
        "[a-z0-9.:/-]{0,20}",
        any::<i64>().prop_map(|n| n.to_string()),
    ]
}

fn config_key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SERVER_HOSTNAME".to_owned()),
        Just("BUILDMAN_HOSTNAME".to_owned()),
        Just("DB_URI".to_owned()),
        Just("FEATURE_LISTEN_IP_VERSION".to_owned()),
        Just("EXTERNAL_TLS_TERMINATION".to_owned()),
        Just("PREFERRED_URL_SCHEME".to_owned()),
        Just("DISTRIBUTED_STORAGE_CONFIG".to_owned()),
        Just("BUILDLOGS_REDIS".to_owned()),
        Just("SECRET_KEY".to_owned()),
        Just("SSL_CIPHERS".to_owned()),
        "[A-Z_]{1,24}",
    ]
}

/// A `config.yaml` of top-level keys with scalar values.
fn config_yaml() -> impl Strategy<Value = String> {
    prop::collection::btree_map(config_key(), scalar(), 0..8)
        .prop_map(|entries| entries.iter().map(|(k, v)| format!("{k}: {v}\n")).collect())
}

fn components() -> impl Strategy<Value = Vec<Component>> {
    prop::collection::vec(
        (0..ComponentKind::ALL.len(), any::<bool>()),
        0..ComponentKind::ALL.len(),
    )
    .prop_map(|picks| {
        let mut seen = Vec::new();
        picks
            .into_iter()
            .filter_map(|(i, managed)| {
                let kind = ComponentKind::ALL[i];
                (!seen.contains(&kind)).then(|| {
                    seen.push(kind);
                    Component::new(kind, managed)
                })
            })
            .collect()
    })
}

/// Quantities as users type them, valid or not (`50Gi`, `1.5e3`, `-1Gi`, `Gi`, `lots`).
fn quantity() -> impl Strategy<Value = Quantity> {
    prop_oneof![
        Just("50Gi".to_owned()),
        Just("70Gi".to_owned()),
        Just("1Gi".to_owned()),
        Just("0".to_owned()),
        Just("-1Gi".to_owned()),
        Just("1.5e3".to_owned()),
        Just("99999999999999999999Ei".to_owned()),
        Just("500m".to_owned()),
        "[0-9]{0,4}(\\.[0-9]{1,3})?(Ki|Mi|Gi|Ti|m|k|M|G|E|e3)?",
        "[a-zA-Z -]{0,6}",
    ]
    .prop_map(Quantity)
}

fn overrides() -> impl Strategy<Value = Override> {
    (
        prop::option::of(quantity()),
        prop::option::of("[a-z-]{0,10}"),
        prop::option::of(any::<i32>()),
        prop::option::of(prop::collection::vec(("[A-Z_]{0,8}", "[ -~]{0,12}"), 0..3)),
        prop::option::of(prop::collection::btree_map(
            "[a-z./-]{0,12}",
            "[ -~]{0,8}",
            0..3,
        )),
        prop::option::of((quantity(), quantity())),
    )
        .prop_map(
            |(volume_size, storage_class_name, replicas, env, labels, resources)| Override {
                volume_size,
                storage_class_name,
                replicas,
                env: env.map(|vars| {
                    vars.into_iter()
                        .map(|(name, value)| EnvVar {
                            name,
                            value: Some(value),
                            value_from: None,
                        })
                        .collect()
                }),
                annotations: labels.clone(),
                labels,
                resources: resources.map(|(cpu, memory)| Resources {
                    limits: None,
                    requests: Some(
                        [("cpu".to_owned(), cpu), ("memory".to_owned(), memory)]
                            .into_iter()
                            .collect(),
                    ),
                }),
                ..Default::default()
            },
        )
}

fn example() -> impl Strategy<Value = String> {
    prop::sample::select(common::example_names())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn rendering_twice_gives_byte_identical_yaml(
        name in example(),
        extra_config in config_yaml(),
        components in prop::option::of(components()),
    ) {
        let mut inputs = common::load_example(&name);
        let mut files = inputs.bundle.files().clone();
        let config = files.entry("config.yaml".to_owned()).or_default();
        // Appending keys to a YAML map: a duplicate key is a parse error, also fine for this property.
        config.extend_from_slice(b"\n");
        config.extend_from_slice(extra_config.as_bytes());
        inputs.bundle = ConfigBundle::new(files);
        if let Some(components) = components {
            inputs.registry.spec.components = Some(components);
        }
        let first = render_yaml(&inputs);
        let reloaded = inputs.clone();
        let second = render_yaml(&reloaded);
        prop_assert_eq!(first, second);
    }

    #[test]
    fn arbitrary_config_yaml_text_never_panics(name in example(), text in ".{0,200}") {
        let mut inputs = common::load_example(&name);
        inputs.bundle = ConfigBundle::from_config_yaml(&text);
        let _ = render_yaml(&inputs);
    }

    #[test]
    fn arbitrary_bundle_bytes_never_panic(
        name in example(),
        files in prop::collection::btree_map(
            prop_oneof![
                Just("config.yaml".to_owned()),
                Just("ssl.cert".to_owned()),
                Just("ssl.key".to_owned()),
                Just("clair-config.yaml".to_owned()),
                Just("extra_ca_cert_x.pem".to_owned()),
                "[a-z._-]{1,12}",
            ],
            prop::collection::vec(any::<u8>(), 0..256),
            0..6,
        ),
    ) {
        let mut inputs = common::load_example(&name);
        inputs.bundle = ConfigBundle::new(files.into_iter().collect::<BTreeMap<_, _>>());
        let _ = render_yaml(&inputs);
    }

    #[test]
    fn arbitrary_overrides_never_panic(
        name in example(),
        picks in prop::collection::vec(
            (0..ComponentKind::ALL.len(), any::<bool>(), prop::option::of(overrides())),
            0..5,
        ),
    ) {
        let mut inputs = common::load_example(&name);
        inputs.registry.spec.components = Some(
            picks
                .into_iter()
                .map(|(i, managed, overrides)| {
                    let mut c = Component::new(ComponentKind::ALL[i], managed);
                    c.overrides = overrides;
                    c
                })
                .collect(),
        );
        // Errors (invalid quantities, duplicates, unsupported overrides) are fine; panics are not.
        let first = render_yaml(&inputs);
        prop_assert_eq!(first, render_yaml(&inputs));
    }

    #[test]
    fn structured_but_odd_config_never_panics(name in example(), config in config_yaml()) {
        let mut inputs = common::load_example(&name);
        let mut files = inputs.bundle.files().clone();
        files.insert("config.yaml".to_owned(), config.into_bytes());
        inputs.bundle = ConfigBundle::new(files);
        let _ = render_yaml(&inputs);
    }
}
