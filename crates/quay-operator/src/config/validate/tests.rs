//! One test per validation message (upstream's where it has one), per manual feature rule, and a sweep over bad
//! inputs that no message leaks a secret.

use k8s_openapi::api::core::v1::{EnvVar, SecurityContext};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{translate_tls_profile, validate};
use crate::api::{
    Component, ComponentKind, CustomTlsProfile, Override, SecretReference, TlsSecurityProfile,
};
use crate::config::certificates::testing::{Key, self_signed};
use crate::config::{ConfigBundle, Problem, Reason, Severity, ValidationReport};
use crate::render::context::ExternalTls;
use crate::render::testing::Fixture;

use ComponentKind::*;

const NOW: i64 = 1_790_000_000; // the fixture's `now`
const DAY: i64 = 86_400;

fn report(f: &Fixture) -> ValidationReport {
    validate(&f.input())
}

fn errors(f: &Fixture) -> Vec<Problem> {
    report(f).errors().cloned().collect()
}

/// Asserts a problem with exactly this reason and message is reported, and returns it.
#[track_caller]
fn expect(f: &Fixture, reason: Reason, message: &str) -> Problem {
    let r = report(f);
    r.problems
        .iter()
        .find(|p| p.message == message && p.reason == reason)
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "expected {reason}: {message}\nreported:\n{}",
                r.problems
                    .iter()
                    .map(|p| format!("  {p}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })
}

/// Asserts the first error (what status shows) is this one.
#[track_caller]
fn expect_first(f: &Fixture, reason: Reason, message: &str) {
    let r = report(f);
    let first = r
        .first_error()
        .unwrap_or_else(|| panic!("no error reported"));
    assert_eq!(
        (first.reason, first.message.as_str()),
        (reason, message),
        "all: {:#?}",
        r.problems
    );
}

#[track_caller]
fn expect_ok(f: &Fixture) {
    let r = report(f);
    assert!(r.is_ok(), "unexpected errors: {:#?}", r.problems);
}

fn with_overrides(f: Fixture, kind: ComponentKind, o: Override) -> Fixture {
    f.component(kind, true, Some(o))
}

fn size(q: &str) -> Option<Quantity> {
    Some(Quantity(q.to_owned()))
}

/// Replaces the bundle's whole `config.yaml`. Call it last: the fixture's own builders rebuild the bundle.
fn with_config(f: Fixture, yaml: &str) -> Fixture {
    let mut files = f.bundle.files().clone();
    files.insert("config.yaml".to_owned(), yaml.as_bytes().to_vec());
    let mut f = f;
    f.bundle = ConfigBundle::new(files);
    f
}

/// Unmanaged tls with a certificate pair in the bundle.
fn with_bundle_pair(f: Fixture, cert: &str, key: &str) -> Fixture {
    f.component(Tls, false, None)
        .bundle_file("ssl.cert", cert)
        .bundle_file("ssl.key", key)
}

// --- baseline ---------------------------------------------------------------------------------------------

#[test]
fn the_fixture_registry_is_valid() {
    let r = report(&Fixture::new());
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
    let r = report(&Fixture::new().kubernetes());
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
}

// --- 1. config parse --------------------------------------------------------------------------------------

#[test]
fn unparsable_config_yaml_is_config_invalid_with_the_parser_message() {
    let f = Fixture::new().config_line("BROKEN: [unclosed");
    let first = report(&f).first_error().cloned().unwrap();
    assert_eq!(first.reason, Reason::ConfigInvalid);
    assert_eq!(first.path, "configBundleSecret[config.yaml]");
    assert!(!first.message.is_empty());
    // Checks that need the config are skipped rather than reporting nonsense.
    assert_eq!(errors(&f).len(), 1, "{:#?}", errors(&f));
}

#[test]
fn host_settings_of_the_wrong_type_are_reported_like_upstream() {
    let f = Fixture::new().config_line("SERVER_HOSTNAME: 5");
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "unable to parse SERVER_HOSTNAME from config: SERVER_HOSTNAME must be of type string",
    );
    let f = Fixture::new().config_line("EXTERNAL_TLS_TERMINATION: \"yes\"");
    expect(
        &f,
        Reason::ConfigInvalid,
        "unable to parse SERVER_HOSTNAME from config: EXTERNAL_TLS_TERMINATION must be of type bool",
    );
    let f = Fixture::new().config_line("PREFERRED_URL_SCHEME: 443");
    let p = expect(
        &f,
        Reason::ConfigInvalid,
        "unable to parse SERVER_HOSTNAME from config: PREFERRED_URL_SCHEME must be of type string",
    );
    assert_eq!(
        p.path,
        "configBundleSecret[config.yaml].PREFERRED_URL_SCHEME"
    );
}

#[test]
fn buildman_hostname_must_be_a_string() {
    let f = Fixture::new().config_line("BUILDMAN_HOSTNAME: [a, b]");
    expect(
        &f,
        Reason::ConfigInvalid,
        "could not check for build manager support: BUILDMAN_HOSTNAME must be of type string",
    );
}

// --- 2. spec rules ----------------------------------------------------------------------------------------

#[test]
fn the_crd_cel_rules_are_checked_client_side() {
    let labels_only = Override {
        labels: Some([("team".to_owned(), "a".to_owned())].into()),
        ..Default::default()
    };
    let f = Fixture::new().component(Mirror, false, Some(labels_only));
    let p = expect(
        &f,
        Reason::ComponentOverrideInvalid,
        "spec.components[0]: Invalid value: \"object\": cannot set overrides on unmanaged component",
    );
    assert_eq!(p.path, "spec.components[0].overrides");

    let mut f = Fixture::new();
    f.registry.spec.components = Some(vec![Component {
        secret_ref: Some(SecretReference {
            name: "tls".to_owned(),
        }),
        ..Component::new(Tls, true)
    }]);
    expect(
        &f,
        Reason::ConfigInvalid,
        "spec.components[0]: Invalid value: \"object\": secretRef cannot be set on a managed component",
    );

    f.registry.spec.components = Some(vec![Component {
        secret_ref: Some(SecretReference {
            name: String::new(),
        }),
        ..Component::new(Tls, false)
    }]);
    expect(
        &f,
        Reason::ConfigInvalid,
        "spec.components[0]: Invalid value: \"object\": secretRef.name must not be empty",
    );
}

#[test]
fn a_secret_ref_on_another_kind_is_a_warning() {
    let mut f = Fixture::new();
    f.registry.spec.components = Some(vec![Component {
        secret_ref: Some(SecretReference {
            name: "x".to_owned(),
        }),
        ..Component::new(Redis, false)
    }]);
    let r = report(&f);
    let w: Vec<&Problem> = r.warnings().collect();
    assert_eq!(w.len(), 1, "{:#?}", r.problems);
    assert_eq!(
        w[0].message,
        "secretRef is only used by the tls component; it is ignored on component redis"
    );
}

#[test]
fn duplicate_component_kinds_are_an_error() {
    let mut f = Fixture::new();
    f.registry.spec.components = Some(vec![
        Component::new(Redis, true),
        Component::new(Mirror, true),
        Component::new(Redis, false),
    ]);
    let p = expect(
        &f,
        Reason::ConfigInvalid,
        "duplicate component kind redis: spec.components[2] repeats spec.components[0]; \
         declare each kind once (only the first entry would take effect)",
    );
    assert_eq!(p.path, "spec.components[2]");
}

#[test]
fn override_support_matrix_messages_match_upstream_unit_tests() {
    let cases: Vec<(ComponentKind, Override, &str)> = vec![
        (
            Tls,
            Override {
                volume_size: size("1Gi"),
                ..Default::default()
            },
            "invalid overrides: component tls does not support volumeSize overrides",
        ),
        (
            Redis,
            Override {
                replicas: Some(2),
                ..Default::default()
            },
            "invalid overrides: component redis does not support replicas overrides",
        ),
        (
            Tls,
            Override {
                env: Some(vec![EnvVar {
                    name: "A".to_owned(),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            "invalid overrides: component tls does not support env overrides",
        ),
        (
            Postgres,
            Override {
                affinity: Some(Default::default()),
                ..Default::default()
            },
            "invalid overrides: component postgres does not support affinity overrides",
        ),
        (
            Redis,
            Override {
                storage_class_name: Some("fast".to_owned()),
                ..Default::default()
            },
            "invalid overrides: component redis does not support storageClassName overrides",
        ),
        (
            Redis,
            Override {
                security_context: Some(SecurityContext::default()),
                ..Default::default()
            },
            "invalid overrides: component redis does not support securityContext overrides",
        ),
    ];
    for (kind, o, message) in cases {
        let f = with_overrides(
            Fixture::new().component(HorizontalPodAutoscaler, false, None),
            kind,
            o,
        );
        expect_first(&f, Reason::ComponentOverrideInvalid, message);
    }
}

#[test]
fn supported_overrides_are_accepted() {
    let class = Override {
        storage_class_name: Some("fast".to_owned()),
        ..Default::default()
    };
    expect_ok(&with_overrides(Fixture::new(), Clair, class.clone()));
    let both = Override {
        volume_size: size("30Gi"),
        ..class
    };
    expect_ok(&with_overrides(Fixture::new(), Clair, both));
    let sc = Override {
        security_context: Some(SecurityContext::default()),
        ..Default::default()
    };
    expect_ok(&with_overrides(Fixture::new(), Quay, sc.clone()));
    expect_ok(&with_overrides(Fixture::new(), Mirror, sc));
}

#[test]
fn workload_overrides_on_an_unmanaged_component_use_upstreams_message() {
    let o = Override {
        env: Some(vec![EnvVar {
            name: "A".to_owned(),
            value: Some("b".to_owned()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let f = Fixture::new()
        .config_line("DB_URI: postgresql://quay@db.example.com/quay")
        .component(Postgres, false, Some(o));
    expect_first(
        &f,
        Reason::ComponentOverrideInvalid,
        "invalid overrides: cannot set overrides on unmanaged postgres",
    );
}

#[test]
fn replicas_with_managed_hpa_only_allow_zero() {
    let f = with_overrides(
        Fixture::new(),
        Quay,
        Override {
            replicas: Some(3),
            ..Default::default()
        },
    );
    let p = expect(
        &f,
        Reason::ComponentOverrideInvalid,
        "invalid overrides: cannot override replicas with managed HPA",
    );
    assert_eq!(p.path, "spec.components[0].overrides.replicas");
    expect_ok(&with_overrides(
        Fixture::new(),
        Quay,
        Override {
            replicas: Some(0),
            ..Default::default()
        },
    ));
}

#[test]
fn override_errors_are_reported_in_spec_order_and_all_collected() {
    let f = Fixture::new()
        .component(HorizontalPodAutoscaler, false, None)
        .component(
            Redis,
            true,
            Some(Override {
                replicas: Some(1),
                affinity: Some(Default::default()),
                ..Default::default()
            }),
        )
        .component(
            Tls,
            true,
            Some(Override {
                volume_size: size("1Gi"),
                ..Default::default()
            }),
        );
    let r = report(&f);
    let messages: Vec<&str> = r.errors().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "invalid overrides: component redis does not support affinity overrides",
            "invalid overrides: component redis does not support replicas overrides",
            "invalid overrides: component tls does not support volumeSize overrides",
        ]
    );
}

#[test]
fn missing_cluster_capabilities_are_reported_in_status() {
    let mut f = Fixture::new()
        .kubernetes()
        .component(Route, true, None)
        .component(Tls, true, None);
    f.cluster.routes = false;
    // A managed route is exposed with an Ingress there (validate/exposure.rs); managed tls still needs Routes.
    expect_first(
        &f,
        Reason::RouteComponentDependencyError,
        "error validating component tls: Route API not available (route.openshift.io/v1 is only served \
         on OpenShift); set tls to managed: false",
    );

    let f = Fixture::new().component(ObjectStorage, true, None);
    let p = report(&f).first_error().cloned().unwrap();
    assert_eq!(p.reason, Reason::ObjectStorageComponentDependencyError);
    assert!(
        p.message.starts_with(
            "error checking for object storage support: unable to list object bucket claims: "
        ),
        "{}",
        p.message
    );

    let f = Fixture::new().component(Monitoring, true, None);
    let p = report(&f).first_error().cloned().unwrap();
    assert_eq!(p.reason, Reason::MonitoringComponentDependencyError);
    assert!(
        p.message
            .starts_with("could not check for monitoring support: "),
        "{}",
        p.message
    );
}

// --- 3. requirement matrix --------------------------------------------------------------------------------

fn managed_but_configured(kind: &str) -> String {
    format!("{kind} component marked as managed, but `configBundleSecret` contains required fields")
}

fn unmanaged_but_missing(kind: &str) -> String {
    format!(
        "required component `{kind}` marked as unmanaged, but `configBundleSecret` is missing necessary fields"
    )
}

#[test]
fn managed_components_must_not_be_configured_by_the_user() {
    let f = Fixture::new().config_line("DB_URI: postgresql://u@h/db");
    let p = expect(
        &f,
        Reason::ConfigInvalid,
        &managed_but_configured("postgres"),
    );
    assert_eq!(p.path, "configBundleSecret[config.yaml].DB_URI");

    let f = Fixture::new().config_line("SECURITY_SCANNER_V4_ENDPOINT: http://clair");
    expect(&f, Reason::ConfigInvalid, &managed_but_configured("clair"));

    let mut f = Fixture::new();
    f.cluster.object_bucket_claims = true; // objectstorage defaults to managed; the fixture configures storage
    expect(
        &f,
        Reason::ConfigInvalid,
        &managed_but_configured("objectstorage"),
    );

    let f = Fixture::new()
        .bundle_file("ssl.cert", "")
        .bundle_file("ssl.key", "")
        .component(Tls, true, None);
    expect(&f, Reason::ConfigInvalid, &managed_but_configured("tls"));

    let f = Fixture::new().bundle_file(
        "clair-config.yaml",
        "indexer:\n  connstring: host=db user=clair\n",
    );
    expect(
        &f,
        Reason::ConfigInvalid,
        &managed_but_configured("clairpostgres"),
    );
}

#[test]
fn components_that_accept_user_config_while_managed_are_fine() {
    expect_ok(&Fixture::new().config_line("PULL_METRICS_REDIS: {host: r, port: 6379}"));
    expect_ok(&Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com"));
    expect_ok(&Fixture::new().config_line("REPO_MIRROR_INTERVAL: 60"));
}

#[test]
fn required_unmanaged_components_need_user_config() {
    for kind in [Postgres, Redis, Route] {
        let f = Fixture::new().component(kind, false, None);
        let p = expect_first_matching(&f, &unmanaged_but_missing(kind.as_str()));
        assert_eq!(p.path, "spec.components[0]");
    }
    let f = with_config(Fixture::new().component(ObjectStorage, false, None), "");
    expect(
        &f,
        Reason::ConfigInvalid,
        &unmanaged_but_missing("objectstorage"),
    );
    let f = Fixture::new().component(Tls, false, None);
    expect(&f, Reason::ConfigInvalid, &unmanaged_but_missing("tls"));
    // Optional components need nothing.
    expect_ok(&Fixture::new().component(Mirror, false, None));
    expect_ok(
        &Fixture::new()
            .component(Clair, false, None)
            .component(ClairPostgres, false, None),
    );
}

#[track_caller]
fn expect_first_matching(f: &Fixture, message: &str) -> Problem {
    let first = report(f).first_error().cloned().unwrap();
    assert_eq!(first.message, message);
    assert_eq!(first.reason, Reason::ConfigInvalid);
    first
}

#[test]
fn tls_with_secret_ref_needs_no_bundle_pair() {
    let mut f = Fixture::new();
    f.registry.spec.components = Some(vec![Component {
        secret_ref: Some(SecretReference {
            name: "quay-tls".to_owned(),
        }),
        ..Component::new(Tls, false)
    }]);
    let (cert, key) = self_signed(Key::EcP256, &["reg-quay-ns.apps.example.com"], None);
    f.cluster.external_tls = Some(ExternalTls {
        name: "quay-tls".to_owned(),
        type_: "kubernetes.io/tls".to_owned(),
        cert: Some(cert),
        key: Some(key),
    });
    expect_ok(&f);
}

#[test]
fn clairpostgres_rules() {
    let f = Fixture::new().component(ClairPostgres, false, None);
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "clairpostgres component unmanaged but no clair postgres config provided",
    );
    let f = Fixture::new()
        .component(ClairPostgres, false, None)
        .bundle_file(
            "clair-config.yaml",
            "matcher:\n  connstring: host=db user=clair\n",
        );
    expect_ok(&f);
    let f = Fixture::new()
        .component(ClairPostgres, false, None)
        .bundle_file("clair-config.yaml", "indexer:\n  connstring: \"\"\n");
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "clairpostgres component unmanaged but no clair postgres config provided",
    );
    let f = Fixture::new().bundle_file("clair-config.yaml", "indexer: [unclosed\n");
    let p = report(&f).first_error().cloned().unwrap();
    assert_eq!(p.reason, Reason::ConfigInvalid);
    assert!(
        p.message.starts_with(
            "unable to verify component config: clair-config.yaml in configBundleSecret is not valid YAML (line "
        ),
        "{}",
        p.message
    );
}

// --- 4. external TLS secret -------------------------------------------------------------------------------

fn with_secret_ref(f: Fixture, secret: Option<ExternalTls>) -> Fixture {
    let mut f = f;
    f.registry.spec.components = Some(vec![Component {
        secret_ref: Some(SecretReference {
            name: "quay-tls".to_owned(),
        }),
        ..Component::new(Tls, false)
    }]);
    f.cluster.external_tls = secret;
    f
}

fn tls_secret(type_: &str, cert: Option<&str>, key: Option<&str>) -> Option<ExternalTls> {
    Some(ExternalTls {
        name: "quay-tls".to_owned(),
        type_: type_.to_owned(),
        cert: cert.map(str::to_owned),
        key: key.map(str::to_owned),
    })
}

#[test]
fn external_tls_secret_errors() {
    let (cert, key) = self_signed(Key::EcP256, &["reg-quay-ns.apps.example.com"], None);
    let ok = tls_secret("kubernetes.io/tls", Some(&cert), Some(&key));

    let f = with_secret_ref(Fixture::new().bundle_file("ssl.cert", &cert), ok.clone());
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "external TLS secret error: tls component secretRef and ssl.cert in configBundleSecret are mutually exclusive",
    );
    let f = with_secret_ref(Fixture::new().bundle_file("ssl.key", &key), ok);
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "external TLS secret error: tls component secretRef and ssl.key in configBundleSecret are mutually exclusive",
    );

    let f = with_secret_ref(Fixture::new(), None);
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "external TLS secret error: unable to get TLS secret \"quay-tls\": secrets \"quay-tls\" not found",
    );
    let f = with_secret_ref(
        Fixture::new(),
        tls_secret("Opaque", Some(&cert), Some(&key)),
    );
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "external TLS secret error: TLS secret \"quay-tls\" must be type \"kubernetes.io/tls\", got \"Opaque\"",
    );
    let f = with_secret_ref(
        Fixture::new(),
        tls_secret("kubernetes.io/tls", None, Some(&key)),
    );
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "external TLS secret error: TLS secret \"quay-tls\" missing or empty tls.crt",
    );
    let f = with_secret_ref(
        Fixture::new(),
        tls_secret("kubernetes.io/tls", Some(&cert), Some("")),
    );
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "external TLS secret error: TLS secret \"quay-tls\" missing or empty tls.key",
    );
}

// --- 5. certificates --------------------------------------------------------------------------------------

#[test]
fn a_matching_certificate_for_server_and_builder_hosts_is_accepted() {
    let (cert, key) = self_signed(
        Key::RsaA,
        &["quay.example.com", "*.builds.example.com"],
        None,
    );
    let f = with_bundle_pair(
        Fixture::new()
            .config_line("SERVER_HOSTNAME: quay.example.com:8443")
            .config_line("BUILDMAN_HOSTNAME: b1.builds.example.com:443"),
        &cert,
        &key,
    );
    let r = report(&f);
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
}

#[test]
fn a_certificate_not_valid_for_a_host_names_the_host_and_the_x509_reason() {
    let (cert, key) = self_signed(Key::EcP256, &["quay.example.com"], None);
    let f = with_bundle_pair(
        Fixture::new().config_line("SERVER_HOSTNAME: registry.example.com"),
        &cert,
        &key,
    );
    let p = expect(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: provided certificate pair not valid for host \
         'registry.example.com': x509: certificate is valid for quay.example.com, not registry.example.com",
    );
    assert_eq!(p.path, "configBundleSecret[ssl.cert]");

    let f = with_bundle_pair(
        Fixture::new()
            .config_line("SERVER_HOSTNAME: quay.example.com")
            .config_line("BUILDMAN_HOSTNAME: builder.example.com:443"),
        &cert,
        &key,
    );
    expect_first(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: provided certificate pair not valid for host \
         'builder.example.com': x509: certificate is valid for quay.example.com, not builder.example.com",
    );
}

#[test]
fn the_derived_server_hostname_and_ip_sans_are_checked() {
    let (cert, key) = self_signed(Key::EcP384, &["*.apps.example.com"], None);
    expect_ok(&with_bundle_pair(Fixture::new(), &cert, &key));
    let (cert, key) = self_signed(Key::EcP256, &["10.1.2.3"], None);
    expect_ok(&with_bundle_pair(
        Fixture::new().config_line("SERVER_HOSTNAME: 10.1.2.3:443"),
        &cert,
        &key,
    ));
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_refused() {
    let (cert, _) = self_signed(Key::RsaA, &["quay.example.com"], None);
    let (_, other_key) = self_signed(Key::RsaB, &["quay.example.com"], None);
    let f = with_bundle_pair(
        Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com"),
        &cert,
        &other_key,
    );
    expect_first(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: provided certificate pair not valid for host \
         'quay.example.com': tls: private key does not match public key",
    );
    let f = with_bundle_pair(
        Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com"),
        "garbage",
        &other_key,
    );
    expect_first(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: provided certificate pair not valid for host \
         'quay.example.com': tls: failed to find any PEM data in certificate input",
    );
}

#[test]
fn a_certificate_without_server_hostname_is_an_error() {
    let (cert, key) = self_signed(Key::EcP256, &["quay.example.com"], None);
    let f = Fixture::new()
        .kubernetes()
        .bundle_file("ssl.cert", &cert)
        .bundle_file("ssl.key", &key);
    expect_first(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: provided certificate pair not valid for host '': \
         SERVER_HOSTNAME is not set: set SERVER_HOSTNAME in config.yaml to the hostname the certificate is issued for",
    );
}

#[test]
fn an_expired_certificate_is_an_error_and_one_expiring_soon_a_warning() {
    let (cert, key) = self_signed(
        Key::EcP256,
        &["quay.example.com"],
        Some((NOW - 400 * DAY, NOW - DAY)),
    );
    let f = with_bundle_pair(
        Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com"),
        &cert,
        &key,
    );
    expect_first(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: provided certificate expired on 2026-09-20T14:13:20Z: \
         renew the certificate",
    );

    let (cert, key) = self_signed(
        Key::EcP256,
        &["quay.example.com"],
        Some((NOW - 400 * DAY, NOW + 10 * DAY)),
    );
    let f = with_bundle_pair(
        Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com"),
        &cert,
        &key,
    );
    let r = report(&f);
    assert!(r.is_ok(), "{:#?}", r.problems);
    let warnings: Vec<&Problem> = r.warnings().collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert_eq!(warnings[0].severity, Severity::Warning);
    assert_eq!(
        warnings[0].message,
        "provided certificate expires on 2026-10-01T14:13:20Z (in 10 days): renew it before then"
    );
    // And rendering goes ahead, carrying the warning.
    let rendered = f.render();
    assert_eq!(rendered.warnings.len(), 1);
}

#[test]
fn the_secret_ref_certificate_is_checked_too() {
    let (cert, key) = self_signed(Key::EcP256, &["elsewhere.example.com"], None);
    let f = with_secret_ref(
        Fixture::new(),
        tls_secret("kubernetes.io/tls", Some(&cert), Some(&key)),
    );
    let p = report(&f).first_error().cloned().unwrap();
    assert_eq!(p.reason, Reason::ComponentCreationFailed);
    assert_eq!(p.path, "TLS secret \"quay-tls\"");
    assert!(
        p.message.contains("'reg-quay-ns.apps.example.com'"),
        "{}",
        p.message
    );
}

// --- 6. TLS security profile ------------------------------------------------------------------------------

fn profile(type_: &str, custom: Option<CustomTlsProfile>) -> TlsSecurityProfile {
    TlsSecurityProfile {
        type_: Some(type_.to_owned()),
        custom,
    }
}

#[test]
fn tls_profiles_translate_like_upstream() {
    let (p, c) = translate_tls_profile(None);
    assert_eq!(p, ["TLSv1.2", "TLSv1.3"]);
    assert_eq!(c.len(), 11);
    assert_eq!(c[0], "TLS_AES_128_GCM_SHA256");
    assert_eq!(c[10], "DHE-RSA-AES256-GCM-SHA384");

    let (p, c) = translate_tls_profile(Some(&profile("Old", None)));
    assert_eq!(p, ["TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"]);
    assert_eq!(c.len(), 29);
    assert_eq!(c.last().unwrap(), "DES-CBC3-SHA");

    let (p, c) = translate_tls_profile(Some(&profile("Intermediate", None)));
    assert_eq!((p.len(), c.len()), (2, 11));

    let (p, c) = translate_tls_profile(Some(&profile("Modern", None)));
    assert_eq!(p, ["TLSv1.3"]);
    assert_eq!(
        c,
        [
            "TLS_AES_128_GCM_SHA256",
            "TLS_AES_256_GCM_SHA384",
            "TLS_CHACHA20_POLY1305_SHA256"
        ]
    );

    let custom = CustomTlsProfile {
        ciphers: vec!["ECDHE-RSA-AES128-GCM-SHA256".to_owned()],
        min_tls_version: Some("VersionTLS11".to_owned()),
    };
    let (p, c) = translate_tls_profile(Some(&profile("Custom", Some(custom))));
    assert_eq!(p, ["TLSv1.1", "TLSv1.2", "TLSv1.3"]);
    assert_eq!(c, ["ECDHE-RSA-AES128-GCM-SHA256"]);

    let custom = CustomTlsProfile {
        ciphers: vec![],
        min_tls_version: None,
    };
    let (p, _) = translate_tls_profile(Some(&profile("Custom", Some(custom))));
    assert_eq!(p, ["TLSv1.2", "TLSv1.3"]);
    let (p, c) = translate_tls_profile(Some(&profile("Custom", None)));
    assert_eq!((p.len(), c.len()), (2, 11));
    let (p, c) = translate_tls_profile(Some(&profile("Bogus", None)));
    assert_eq!((p.len(), c.len()), (2, 11));
}

#[test]
fn tls_profile_settings_apply_only_to_unmanaged_tls_without_user_settings() {
    let (cert, key) = self_signed(Key::EcP256, &["*.apps.example.com"], None);
    let mut f = with_bundle_pair(Fixture::new(), &cert, &key);
    f.cluster.tls_security_profile = Some(profile("Modern", None));
    let settings = f.with_context(super::tls_profile_settings);
    assert_eq!(settings.unwrap().0, ["TLSv1.3"]);

    let mut managed = Fixture::new();
    managed.cluster.tls_security_profile = Some(profile("Modern", None));
    assert_eq!(managed.with_context(super::tls_profile_settings), None);

    let mut user = with_bundle_pair(
        Fixture::new().config_line("SSL_CIPHERS: [AES128-SHA]"),
        &cert,
        &key,
    );
    user.cluster.tls_security_profile = Some(profile("Modern", None));
    assert_eq!(user.with_context(super::tls_profile_settings), None);

    // No APIServer profile (plain Kubernetes): nothing injected.
    let plain = with_bundle_pair(Fixture::new(), &cert, &key);
    assert_eq!(plain.with_context(super::tls_profile_settings), None);
}

// --- 7. manual feature rules ------------------------------------------------------------------------------

const GEO_CONFIG: &str = "DISTRIBUTED_STORAGE_CONFIG:\n  usstorage:\n    - GoogleCloudStorage\n    - bucket_name: us\n      storage_path: /quay\n  eustorage:\n    - GoogleCloudStorage\n    - bucket_name: eu\n      storage_path: /quay\nDISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [usstorage, eustorage]\nDISTRIBUTED_STORAGE_PREFERENCE: [usstorage, eustorage]\nFEATURE_STORAGE_REPLICATION: true\nDB_URI: postgresql://quay@db.example.com/quay\nBUILDLOGS_REDIS: {host: redis.example.com, port: 6379}\nSERVER_HOSTNAME: quay.example.com\n";

fn geo_fixture() -> Fixture {
    let (cert, key) = self_signed(Key::EcP256, &["quay.example.com"], None);
    let f = with_bundle_pair(
        Fixture::new()
            .bundle_file(
                "clair-config.yaml",
                "indexer:\n  connstring: host=clairdb user=clair\n",
            )
            .component(Postgres, false, None)
            .component(Redis, false, None)
            .component(ClairPostgres, false, None),
        &cert,
        &key,
    );
    with_config(f, GEO_CONFIG)
}

#[test]
fn a_complete_geo_replication_setup_is_valid() {
    let f = geo_fixture();
    let r = report(&f);
    assert!(r.problems.is_empty(), "{:#?}", r.problems);
}

#[test]
fn geo_replication_names_each_missing_requirement() {
    // The manual's QuayRegistry without the unmanaged postgres/redis/clairpostgres and with managed tls.
    let f = with_config(
        Fixture::new(),
        &GEO_CONFIG
            .replace("DB_URI: postgresql://quay@db.example.com/quay\n", "")
            .replace(
                "BUILDLOGS_REDIS: {host: redis.example.com, port: 6379}\n",
                "",
            ),
    );
    let messages: Vec<String> = errors(&f).into_iter().map(|p| p.message).collect();
    let feature = "geo-replication (FEATURE_STORAGE_REPLICATION: true)";
    for expected in [
        format!(
            "{feature} requires the postgres component to be unmanaged: all sites share one external database"
        ),
        format!(
            "{feature} requires the redis component to be unmanaged: all sites share one external Redis"
        ),
        format!(
            "{feature} requires the clairpostgres component to be unmanaged: the registries of all sites must \
             use the same Clair database"
        ),
        format!(
            "{feature} requires an SSL/TLS certificate and key: set the tls component to managed: false and \
             provide ssl.cert and ssl.key in the config bundle (or a tls secretRef)"
        ),
    ] {
        assert!(
            messages.contains(&expected),
            "missing {expected:?} in {messages:#?}"
        );
    }
    assert!(
        !messages
            .iter()
            .any(|m| m.contains("objectstorage component to be unmanaged"))
    );

    let f = with_config(
        geo_fixture(),
        &GEO_CONFIG.replace("GoogleCloudStorage", "LocalStorage"),
    );
    expect(
        &f,
        Reason::ConfigInvalid,
        "geo-replication (FEATURE_STORAGE_REPLICATION: true) does not work with LocalStorage: storage \
         location \"eustorage\" must be object storage reachable from every site",
    );
}

#[test]
fn storage_preference_and_default_locations_must_be_defined() {
    let f = with_config(
        geo_fixture(),
        &GEO_CONFIG.replace(
            "DISTRIBUTED_STORAGE_PREFERENCE: [usstorage, eustorage]",
            "DISTRIBUTED_STORAGE_PREFERENCE: [usstorage, apstorage]",
        ),
    );
    let p = expect(
        &f,
        Reason::ConfigInvalid,
        "DISTRIBUTED_STORAGE_PREFERENCE names storage location \"apstorage\" that DISTRIBUTED_STORAGE_CONFIG \
         does not define (defined: usstorage, eustorage)",
    );
    assert_eq!(
        p.path,
        "configBundleSecret[config.yaml].DISTRIBUTED_STORAGE_PREFERENCE[1]"
    );
    let f = with_config(
        Fixture::new(),
        "DISTRIBUTED_STORAGE_CONFIG:\n  default: [LocalStorage, {storage_path: /x}]\nDISTRIBUTED_STORAGE_DEFAULT_LOCATIONS: [nowhere]\n",
    );
    expect(
        &f,
        Reason::ConfigInvalid,
        "DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS names storage location \"nowhere\" that \
         DISTRIBUTED_STORAGE_CONFIG does not define (defined: default)",
    );
}

#[test]
fn a_site_storage_preference_env_override_must_name_a_location() {
    let env = |v: &str| Override {
        env: Some(vec![EnvVar {
            name: "QUAY_DISTRIBUTED_STORAGE_PREFERENCE".to_owned(),
            value: Some(v.to_owned()),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let f = geo_fixture()
        .component(HorizontalPodAutoscaler, false, None)
        .component(Quay, true, Some(env("usstorage")))
        .component(Mirror, true, Some(env("eustorage")));
    expect_ok(&f);
    let f = geo_fixture().component(Quay, true, Some(env("asiastorage")));
    let p = expect(
        &f,
        Reason::ConfigInvalid,
        "QUAY_DISTRIBUTED_STORAGE_PREFERENCE override on component quay names storage location \
         \"asiastorage\" that DISTRIBUTED_STORAGE_CONFIG does not define (defined: usstorage, eustorage)",
    );
    assert!(p.path.ends_with(".overrides.env[0]"), "{}", p.path);
}

#[test]
fn builders_are_unsupported_with_managed_tls() {
    let f = Fixture::new()
        .config_line("FEATURE_BUILD_SUPPORT: True")
        .config_line("BUILDMAN_HOSTNAME: reg-quay-builder-ns.apps.example.com:443");
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "FEATURE_BUILD_SUPPORT: builders are not supported while the tls component is managed: set tls to \
         managed: false and provide a certificate valid for SERVER_HOSTNAME and BUILDMAN_HOSTNAME",
    );
    let (cert, key) = self_signed(Key::EcP256, &["*.apps.example.com"], None);
    let f = with_bundle_pair(
        Fixture::new()
            .config_line("FEATURE_BUILD_SUPPORT: true")
            .config_line("BUILDMAN_HOSTNAME: reg-quay-builder-ns.apps.example.com:443"),
        &cert,
        &key,
    );
    expect_ok(&f);
}

#[test]
fn listen_ip_version_must_be_written_as_the_manual_does() {
    for ok in ["IPv4", "IPv6", "dual-stack"] {
        expect_ok(&Fixture::new().config_line(&format!("FEATURE_LISTEN_IP_VERSION: {ok}")));
    }
    let f = Fixture::new().config_line("FEATURE_LISTEN_IP_VERSION: ipv6");
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "FEATURE_LISTEN_IP_VERSION must be IPv4, IPv6 or dual-stack, got \"ipv6\"",
    );
    let f = Fixture::new().config_line("FEATURE_LISTEN_IP_VERSION: 6");
    expect_first(
        &f,
        Reason::ConfigInvalid,
        "FEATURE_LISTEN_IP_VERSION must be a string: IPv4, IPv6 or dual-stack",
    );
}

#[test]
fn sts_storage_requires_its_fields() {
    let f = with_config(
        Fixture::new(),
        "DISTRIBUTED_STORAGE_CONFIG:\n  default:\n    - STSS3Storage\n    - sts_role_arn: arn:aws:iam::1:role/quay\n      s3_bucket: quay\n      storage_path: /datastorage\nDISTRIBUTED_STORAGE_PREFERENCE: [default]\n",
    );
    let p = expect(
        &f,
        Reason::ConfigInvalid,
        "storage location \"default\" (STSS3Storage) requires sts_user_access_key",
    );
    assert_eq!(
        p.path,
        "configBundleSecret[config.yaml].DISTRIBUTED_STORAGE_CONFIG.default[1].sts_user_access_key"
    );
    expect(
        &f,
        Reason::ConfigInvalid,
        "storage location \"default\" (STSS3Storage) requires sts_user_secret_key",
    );
    assert_eq!(
        errors(&f).len(),
        2,
        "s3_region is optional: {:#?}",
        errors(&f)
    );
}

#[test]
fn cloudfront_storage_requires_its_fields_and_signing_key_file() {
    let config = "DISTRIBUTED_STORAGE_CONFIG:\n  default:\n    - CloudFrontedS3Storage\n    - cloudfront_distribution_domain: d1.cloudfront.net\n      cloudfront_key_id: K1\n      cloudfront_privatekey_filename: default-cloudfront-signing-key.pem\n      s3_bucket: quay\n      storage_path: /datastorage\n";
    let f = with_config(Fixture::new(), config);
    expect(
        &f,
        Reason::ConfigInvalid,
        "storage location \"default\" (CloudFrontedS3Storage): cloudfront_privatekey_filename \
         \"default-cloudfront-signing-key.pem\" is not in the config bundle: add the CloudFront signing key \
         to the configBundleSecret as \"default-cloudfront-signing-key.pem\"",
    );
    expect_ok(&with_config(
        Fixture::new().bundle_file("default-cloudfront-signing-key.pem", "KEY"),
        config,
    ));

    let f = with_config(
        Fixture::new(),
        &config.replace("      cloudfront_key_id: K1\n", ""),
    );
    expect(
        &f,
        Reason::ConfigInvalid,
        "storage location \"default\" (CloudFrontedS3Storage) requires cloudfront_key_id",
    );
}

#[test]
fn read_only_mode_needs_the_service_key_files() {
    let f = Fixture::new().config_line("REGISTRY_STATE: readonly");
    expect(
        &f,
        Reason::ConfigInvalid,
        "REGISTRY_STATE: readonly requires INSTANCE_SERVICE_KEY_KID_LOCATION (e.g. \
         'conf/stack/quay-readonly.kid') and that file in the config bundle",
    );
    expect(
        &f,
        Reason::ConfigInvalid,
        "REGISTRY_STATE: readonly requires INSTANCE_SERVICE_KEY_LOCATION (e.g. \
         'conf/stack/quay-readonly.pem') and that file in the config bundle",
    );
    let f = Fixture::new()
        .config_line("REGISTRY_STATE: readonly")
        .config_line("INSTANCE_SERVICE_KEY_KID_LOCATION: 'conf/stack/quay-readonly.kid'")
        .config_line("INSTANCE_SERVICE_KEY_LOCATION: 'conf/stack/quay-readonly.pem'");
    expect(
        &f,
        Reason::ConfigInvalid,
        "REGISTRY_STATE: readonly: INSTANCE_SERVICE_KEY_LOCATION is 'conf/stack/quay-readonly.pem' but \
         the config bundle has no \"quay-readonly.pem\": add the read-only service key file to the \
         configBundleSecret",
    );
    expect_ok(
        &f.bundle_file("quay-readonly.kid", "kid")
            .bundle_file("quay-readonly.pem", "pem"),
    );
}

// --- 8. images, 9. volumes --------------------------------------------------------------------------------

#[test]
fn image_overrides_must_have_a_tag_or_digest() {
    let mut f = Fixture::new();
    f.settings.images.quay = Some("quay.io/projectquay/quay".to_owned());
    let p = expect(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: image override must be reference by tag or digest: \
         quay.io/projectquay/quay",
    );
    assert_eq!(p.path, "operator env RELATED_IMAGE_COMPONENT_QUAY");
    f.settings.images.quay = Some("registry.local:5000/quay/quay:v3.11".to_owned());
    expect_ok(&f);
}

fn with_pvc(f: Fixture, name: &str, live: &str) -> Fixture {
    let mut f = f;
    f.cluster
        .pvc_sizes
        .insert(name.to_owned(), Quantity(live.to_owned()));
    f
}

#[test]
fn a_volume_size_override_cannot_shrink_the_live_pvc() {
    let o = |s: &str| Override {
        volume_size: size(s),
        ..Default::default()
    };
    let f = with_pvc(
        Fixture::new().component(Postgres, true, Some(o("60G"))),
        "reg-quay-postgres-13",
        "100Gi",
    );
    let p = expect(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: cannot shrink volume override size from 100Gi to 60G",
    );
    assert_eq!(p.path, "spec.components[0].overrides.volumeSize");

    let f = with_pvc(
        Fixture::new().component(ClairPostgres, true, Some(o("50G"))),
        "reg-clair-postgres-15",
        "50Gi",
    );
    expect(
        &f,
        Reason::ComponentCreationFailed,
        "could not inflate kubernetes objects: cannot shrink volume override size from 50Gi to 50G",
    );
    // Growing, equal sizes in another notation, and new PVCs of any size are fine (upstream refused < 50Gi).
    expect_ok(&with_pvc(
        Fixture::new().component(Postgres, true, Some(o("200Gi"))),
        "reg-quay-postgres-13",
        "100Gi",
    ));
    expect_ok(&with_pvc(
        Fixture::new().component(Postgres, true, Some(o("53687091200"))),
        "reg-quay-postgres-13",
        "50Gi",
    ));
    expect_ok(&Fixture::new().component(Postgres, true, Some(o("10Gi"))));

    let f = Fixture::new().component(Postgres, true, Some(o("lots")));
    expect(
        &f,
        Reason::ComponentOverrideInvalid,
        "invalid overrides: volumeSize \"lots\" of component postgres is not a valid quantity",
    );
}

// --- order and secrets ------------------------------------------------------------------------------------

#[test]
fn the_first_error_follows_upstreams_reconcile_order() {
    let mut f = with_secret_ref(
        Fixture::new()
            .config_line("DB_URI: postgresql://u@h/db")
            .bundle_file("ssl.cert", "x"),
        None,
    );
    let comps = f.registry.spec.components.as_mut().unwrap();
    comps.push(Component {
        overrides: Some(Override {
            affinity: Some(Default::default()),
            ..Default::default()
        }),
        ..Component::new(Redis, true)
    });
    f.settings.images.redis = Some("redis".to_owned());
    let r = report(&f);
    let reasons: Vec<Reason> = r.errors().map(|p| p.reason).collect();
    assert_eq!(
        reasons,
        [
            Reason::ConfigInvalid,            // secretRef vs ssl.cert
            Reason::ConfigInvalid,            // secret not found
            Reason::ComponentOverrideInvalid, // redis affinity
            Reason::ConfigInvalid,            // managed postgres with DB_URI
            Reason::ComponentCreationFailed,  // image
        ],
        "{:#?}",
        r.problems
    );
    assert!(r.problems[0].message.contains("mutually exclusive"));
}

#[test]
fn no_message_contains_a_secret() {
    let (cert, key) = self_signed(Key::RsaA, &["other.example.com"], None);
    let (_, wrong_key) = self_signed(Key::RsaB, &["other.example.com"], None);
    let db_password = "s3cr3t-db-pa55word";
    let sts_secret = "STS-SECRET-abcdef123";
    let connstring_password = "clair-db-pw-987";
    let bad_inputs: Vec<Fixture> = vec![
        Fixture::new().config_line(&format!(
            "DB_URI: postgresql://quay:{db_password}@db.example.com/quay"
        )),
        Fixture::new()
            .config_line(&format!(
                "DB_URI: postgresql://quay:{db_password}@db.example.com/quay"
            ))
            .config_line("BROKEN: [unclosed"),
        Fixture::new().config_line(&format!("SERVER_HOSTNAME: {{password: {db_password}}}")),
        Fixture::new().bundle_file(
            "clair-config.yaml",
            &format!("indexer:\n  connstring: password={connstring_password} [unclosed\n  x: ["),
        ),
        Fixture::new()
            .component(ClairPostgres, true, None)
            .bundle_file(
                "clair-config.yaml",
                &format!("indexer:\n  connstring: password={connstring_password}\n"),
            ),
        with_bundle_pair(
            Fixture::new().config_line("SERVER_HOSTNAME: quay.example.com"),
            &cert,
            &key,
        ),
        with_bundle_pair(
            Fixture::new().config_line("SERVER_HOSTNAME: other.example.com"),
            &cert,
            &wrong_key,
        ),
        with_secret_ref(
            Fixture::new().bundle_file("ssl.key", &key),
            tls_secret("Opaque", Some(&cert), Some(&key)),
        ),
        with_config(
            Fixture::new(),
            &format!(
                "DISTRIBUTED_STORAGE_CONFIG:\n  default:\n    - STSS3Storage\n    - sts_user_secret_key: {sts_secret}\nFEATURE_STORAGE_REPLICATION: true\n"
            ),
        ),
        Fixture::new()
            .config_line(&format!("SECURITY_SCANNER_V4_PSK: {db_password}"))
            .config_line("SECURITY_SCANNER_V4_ENDPOINT: http://clair"),
        // YAML errors located on a line that holds a secret.
        Fixture::new().config_line(&format!(
            "DB_URI: \"postgresql://quay:{db_password}@db.example.com/quay"
        )),
        Fixture::new()
            .config_line(&format!(
                "DB_URI: postgresql://quay:{db_password}@db.example.com/quay"
            ))
            .config_line("  nested: value"),
        Fixture::new()
            .config_line(&format!("SECRET_KEY: {db_password}"))
            .config_line(&format!("SECRET_KEY: {db_password}")),
    ];
    let mut secrets: Vec<String> = vec![
        db_password.to_owned(),
        sts_secret.to_owned(),
        connstring_password.to_owned(),
    ];
    let fixture = Fixture::new();
    for name in [
        "DATABASE_SECRET_KEY",
        "SECRET_KEY",
        "DB_URI",
        "DB_ROOT_PW",
        "SECURITY_SCANNER_V4_PSK",
        "CLAIR_DB_PASSWORD",
        "CLAIR_DB_ROOT_PW",
    ] {
        secrets.extend(fixture.keys.get(name).map(str::to_owned));
    }
    assert!(secrets.len() >= 10, "the fixture's managed keys are seeded");
    // Any line of the PEM key bodies.
    for pem in [&key, &wrong_key] {
        secrets.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_owned),
        );
    }
    let mut seen = 0;
    for f in &bad_inputs {
        let r = report(f);
        assert!(!r.problems.is_empty(), "a bad input reported nothing");
        for p in &r.problems {
            seen += 1;
            let text = format!("{p} {p:?}");
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "secret leaked in {text}");
            }
        }
    }
    assert!(seen >= bad_inputs.len());
}
