//! The command line: `render` and `validate` a registry offline from files, and print the `crd`.
//!
//! Everything here is a thin shell around the pure core: files are read into a [`RenderInput`], the render or
//! validation runs, and the result is written out. Nothing is printed on stdout unless the command succeeded, so
//! `quay-operator render ... | kubectl apply -f -` never applies half an answer.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use clap::{Args, Parser, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use serde::de::DeserializeOwned;

use crate::api::QuayRegistry;
use crate::config::{ConfigBundle, ManagedKeys, Problem, RenderError, Severity, ValidationReport};
use crate::render::{self, ClusterFacts, DesiredObject, OperatorSettings, RenderInput};

/// Namespace of a registry manifest that names none (as `kubectl apply` would use).
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, Parser)]
#[command(
    name = "quay-operator",
    version,
    about = "Kubernetes operator for Red Hat Quay registries (QuayRegistry, quay.redhat.com/v1)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// One variant per subcommand (the controller's `run` joins them as another variant).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the objects a registry needs, in apply order, as multi-document YAML.
    Render(RenderArgs),
    /// Run every check on a registry and its config bundle and print each problem with its field path.
    Validate(ValidateArgs),
    /// Print the QuayRegistry CustomResourceDefinition.
    Crd {
        /// Print the legacy QuayEcosystem CRD instead (served only to migrate QuayEcosystems).
        #[arg(long)]
        quayecosystem: bool,
    },
    /// Run the operator against a cluster (in-cluster config, $KUBECONFIG or --kubeconfig).
    Run(crate::controller::commands::RunArgs),
    /// Start a simulated OpenShift cluster in-process, run the operator on an example registry and show it
    /// become Available.
    Demo(crate::controller::commands::DemoArgs),
    /// Show what `run` would change for a registry on a cluster, object by object, without writing
    /// (exit 0: nothing to change, 2: changes pending).
    Diff(crate::controller::commands::DiffArgs),
    /// Print (or write to a directory) the operator's install manifests for an install mode.
    Manifests(ManifestsArgs),
    /// Write the OLM bundle (bundle/ and bundle.Dockerfile) under a directory.
    Bundle(BundleArgs),
    /// Print the API calls the operator makes and the RBAC rule count of each install mode.
    Rbac(RbacArgs),
}

/// Install modes of `manifests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Watch only the operator's own namespace.
    Own,
    /// Watch the namespaces given with --namespaces (one: single namespace).
    Multi,
    /// Watch all namespaces.
    All,
}

#[derive(Debug, Clone, Args)]
pub struct ManifestsArgs {
    #[arg(long, value_enum)]
    pub mode: ModeArg,
    /// Watched namespaces of `--mode multi` (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Namespace the operator runs in.
    #[arg(long, default_value = crate::install::DEFAULT_OPERATOR_NAMESPACE)]
    pub operator_namespace: String,
    /// The operator image.
    #[arg(long, default_value = crate::install::DEFAULT_IMAGE)]
    pub image: String,
    /// Write `operator.yaml` and `monitoring/servicemonitor.yaml` there instead of printing everything.
    #[arg(long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct BundleArgs {
    /// The operator image.
    #[arg(long, default_value = crate::install::DEFAULT_IMAGE)]
    pub image: String,
    /// Directory receiving bundle/ and bundle.Dockerfile (the repository root).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub output_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct RbacArgs {
    /// Print the Helm chart's rules template (charts/quay-operator-rs/templates/_rules.tpl) instead.
    #[arg(long)]
    pub helm: bool,
}

impl ManifestsArgs {
    pub fn install_spec(&self) -> Result<crate::install::InstallSpec, CliError> {
        use crate::install::InstallMode;
        let namespaces: Vec<String> = self
            .namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        let mode = match self.mode {
            ModeArg::Own | ModeArg::All if !namespaces.is_empty() => {
                return Err(CliError::Usage(
                    "--namespaces is only for --mode multi".to_owned(),
                ));
            }
            ModeArg::Own => InstallMode::OwnNamespace,
            ModeArg::All => InstallMode::AllNamespaces,
            ModeArg::Multi if namespaces.is_empty() => {
                return Err(CliError::Usage(
                    "--mode multi needs --namespaces a,b,...".to_owned(),
                ));
            }
            ModeArg::Multi => InstallMode::MultiNamespace(namespaces),
        };
        Ok(crate::install::InstallSpec {
            mode,
            operator_namespace: self.operator_namespace.clone(),
            image: self.image.clone(),
        })
    }
}

/// Files describing one registry.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// The QuayRegistry manifest (YAML).
    #[arg(long, value_name = "FILE")]
    pub registry: PathBuf,
    /// What the cluster offers (YAML, `ClusterFacts` in camelCase); without it: plain Kubernetes.
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// The `<reg>-quay-registry-managed-secret-keys` Secret manifest; without it keys are generated.
    #[arg(long, value_name = "FILE")]
    pub managed_keys: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The config bundle Secret manifest (`data` base64 or `stringData`); without it an empty bundle.
    #[arg(long, value_name = "FILE")]
    pub config_bundle: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// The config bundle Secret manifest (`data` base64 or `stringData`).
    #[arg(long, value_name = "FILE")]
    pub config_bundle: PathBuf,
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid {what}: {message}")]
    Parse {
        path: PathBuf,
        what: &'static str,
        message: String,
    },
    /// The registry cannot roll out: the message is what its status would say.
    #[error("rollout blocked ({reason}): {message}", reason = .0.reason(), message = .0.message())]
    Blocked(RenderError),
    #[error("{0} blocking problem(s) found")]
    Invalid(usize),
    #[error("{0}")]
    Usage(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes files given relative to `dir`, creating directories.
fn write_files(dir: &Path, files: &[(String, String)]) -> Result<String, CliError> {
    let mut written = String::new();
    for (relative, content) in files {
        let path = dir.join(relative);
        let write = || -> std::io::Result<()> {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, content)
        };
        write().map_err(|source| CliError::Write {
            path: path.clone(),
            source,
        })?;
        written.push_str(&format!("wrote {}\n", path.display()));
    }
    Ok(written)
}

fn manifests_outcome(args: &ManifestsArgs) -> Result<String, CliError> {
    use crate::install::manifests;
    let spec = args.install_spec()?;
    let command = manifests::command_line(&spec);
    match &args.output_dir {
        Some(dir) => write_files(dir, &manifests::files(&spec, &command)),
        None => {
            let m = manifests::manifests(&spec);
            let all: Vec<serde_json::Value> = m.operator.into_iter().chain(m.monitoring).collect();
            Ok(manifests::yaml(&all, &command))
        }
    }
}

fn rbac_text() -> String {
    use crate::install::{InstallMode, rbac};
    let mut out = rbac::table_text();
    let ns = crate::install::DEFAULT_OPERATOR_NAMESPACE;
    for (name, mode) in [
        ("own namespace", InstallMode::OwnNamespace),
        (
            "multi namespace (2)",
            InstallMode::MultiNamespace(vec!["a".to_owned(), "b".to_owned()]),
        ),
        ("all namespaces", InstallMode::AllNamespaces),
    ] {
        let roles = rbac::roles(&mode, ns);
        out.push_str(&format!(
            "\n{name}: {} rules in {} Roles/ClusterRoles",
            rbac::rule_count(&roles),
            roles.len()
        ));
    }
    out.push('\n');
    out
}

/// Everything read from the files of one registry.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub registry: QuayRegistry,
    pub bundle: ConfigBundle,
    pub managed_keys: ManagedKeys,
    pub cluster: ClusterFacts,
    pub settings: OperatorSettings,
}

impl Inputs {
    /// Reads the files; operator settings come from `env` (the process environment in the binary).
    pub fn load(
        input: &InputArgs,
        config_bundle: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, CliError> {
        let mut registry: QuayRegistry = read_yaml(&input.registry, "QuayRegistry manifest")?;
        if registry.metadata.namespace.is_none() {
            registry.metadata.namespace = Some(DEFAULT_NAMESPACE.to_owned());
        }
        let bundle = match config_bundle {
            Some(path) => ConfigBundle::from_secret(&read_secret(path, "config bundle Secret")?),
            None => ConfigBundle::default(),
        };
        let managed_keys = match &input.managed_keys {
            Some(path) => ManagedKeys::from_secret(&read_secret(path, "managed keys Secret")?),
            None => {
                let mut keys = ManagedKeys::default();
                keys.complete(registry.metadata.name.as_deref().unwrap_or_default());
                keys
            }
        };
        let cluster = match &input.cluster {
            Some(path) => read_yaml(path, "cluster facts file")?,
            None => ClusterFacts::default(),
        };
        Ok(Self {
            registry,
            bundle,
            managed_keys,
            cluster,
            settings: OperatorSettings::from_env(env),
        })
    }

    pub fn render_input(&self, now: SystemTime) -> RenderInput<'_> {
        RenderInput {
            registry: &self.registry,
            bundle: &self.bundle,
            managed_keys: &self.managed_keys,
            cluster: &self.cluster,
            settings: &self.settings,
            now,
        }
    }
}

fn read_text(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_yaml<T: DeserializeOwned>(path: &Path, what: &'static str) -> Result<T, CliError> {
    let text = read_text(path)?;
    serde_saphyr::from_str(&text).map_err(|e| CliError::Parse {
        path: path.to_owned(),
        what,
        message: e.without_snippet().to_string(),
    })
}

/// Reads a Secret manifest. Parse errors name only the location: the text around it may be a secret.
fn read_secret(path: &Path, what: &'static str) -> Result<Secret, CliError> {
    let text = read_text(path)?;
    serde_saphyr::from_str(&text).map_err(|e| CliError::Parse {
        path: path.to_owned(),
        what,
        message: match e.location() {
            Some(at) => format!("malformed at line {}, column {}", at.line(), at.column()),
            None => "malformed YAML or wrong field types".to_owned(),
        },
    })
}

/// The objects as multi-document YAML, in the given order.
pub fn objects_yaml(objects: &[DesiredObject]) -> String {
    let docs: Vec<serde_json::Value> = objects.iter().map(DesiredObject::to_json).collect();
    serde_saphyr::to_string_multiple(&docs).expect("JSON values always serialize to YAML")
}

/// `render`: the YAML of the desired objects, and the warnings.
pub fn render_yaml(inputs: &Inputs, now: SystemTime) -> Result<(String, Vec<Problem>), CliError> {
    let rendered = render::render(&inputs.render_input(now)).map_err(CliError::Blocked)?;
    Ok((objects_yaml(&rendered.objects), rendered.warnings))
}

/// `validate`: every problem of the input. A render is attempted when the checks pass, so that a problem only
/// found while rendering is reported too: "valid" means "renders".
pub fn validate_report(inputs: &Inputs, now: SystemTime) -> ValidationReport {
    let input = inputs.render_input(now);
    let mut report = crate::config::validate(&input);
    if report.is_ok()
        && let Err(RenderError(problem)) = render::render(&input)
    {
        report.push(problem);
    }
    report
}

/// What a command printed and how it exits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub stdout: String,
    pub stderr: String,
    pub code: u8,
}

impl Outcome {
    fn failure(error: &CliError) -> Self {
        Self {
            stdout: String::new(),
            stderr: format!("error: {error}\n"),
            code: 1,
        }
    }
}

/// Runs a command without touching the process: files are read, output is returned.
pub fn execute(cli: &Cli, env: impl Fn(&str) -> Option<String>, now: SystemTime) -> Outcome {
    match &cli.command {
        Command::Run(args) => Outcome {
            code: crate::controller::commands::run_command(args),
            ..Default::default()
        },
        Command::Demo(args) => Outcome {
            code: crate::controller::commands::demo_command(args),
            ..Default::default()
        },
        Command::Diff(args) => Outcome {
            code: crate::controller::commands::diff_command(args),
            ..Default::default()
        },
        Command::Crd { quayecosystem } => Outcome {
            stdout: if *quayecosystem {
                crate::api::quayecosystem::quay_ecosystem_crd_yaml()
            } else {
                crate::api::crd_yaml()
            },
            ..Default::default()
        },
        Command::Manifests(args) => match manifests_outcome(args) {
            Ok(stdout) => Outcome {
                stdout,
                ..Default::default()
            },
            Err(e) => Outcome::failure(&e),
        },
        Command::Bundle(args) => {
            match write_files(
                &args.output_dir,
                &crate::install::bundle::files(&args.image),
            ) {
                Ok(stdout) => Outcome {
                    stdout,
                    ..Default::default()
                },
                Err(e) => Outcome::failure(&e),
            }
        }
        Command::Rbac(args) => Outcome {
            stdout: if args.helm {
                crate::install::chart::rules_template()
            } else {
                rbac_text()
            },
            ..Default::default()
        },
        Command::Render(args) => {
            let result = Inputs::load(&args.input, args.config_bundle.as_deref(), env)
                .and_then(|inputs| render_yaml(&inputs, now));
            match result {
                Ok((yaml, warnings)) => Outcome {
                    stdout: yaml,
                    stderr: warnings.iter().map(|w| format!("{w}\n")).collect(),
                    code: 0,
                },
                Err(e) => Outcome::failure(&e),
            }
        }
        Command::Validate(args) => {
            let inputs = match Inputs::load(&args.input, Some(&args.config_bundle), env) {
                Ok(inputs) => inputs,
                Err(e) => return Outcome::failure(&e),
            };
            let report = validate_report(&inputs, now);
            let errors = report.errors().count();
            let mut stdout: String = report.problems.iter().map(|p| format!("{p}\n")).collect();
            let warnings = report
                .problems
                .iter()
                .filter(|p| p.severity == Severity::Warning)
                .count();
            if errors == 0 {
                stdout.push_str(&format!("valid ({warnings} warning(s))\n"));
                Outcome {
                    stdout,
                    ..Default::default()
                }
            } else {
                Outcome {
                    stdout,
                    stderr: format!("error: {}\n", CliError::Invalid(errors)),
                    code: 1,
                }
            }
        }
    }
}

/// The binary's entry point: parses arguments, runs, prints.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = execute(&cli, |k| std::env::var(k).ok(), SystemTime::now());
    // A closed pipe (e.g. `| head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(outcome.stdout.as_bytes());
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    ExitCode::from(outcome.code)
}
