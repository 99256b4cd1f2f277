//! Every check that must pass before a registry rolls out. Each problem carries the field path and the exact
//! message the QuayRegistry status shows. (Being extended: see the render issue.)

use super::{Problem, Reason, ValidationReport};
use crate::render::context::{RenderContext, RenderInput};

/// Runs every check on the input, collecting all problems (the first error is what status reports).
pub fn validate(input: &RenderInput<'_>) -> ValidationReport {
    let mut report = ValidationReport::default();
    if let Err(e) = input.bundle.quay_config() {
        report.push(Problem::error(
            Reason::ConfigInvalid,
            "configBundleSecret[config.yaml]",
            e.to_string(),
        ));
    }
    report
}

/// `SSL_PROTOCOLS` and `SSL_CIPHERS` from the OpenShift APIServer TLS security profile (tls unmanaged only).
pub fn tls_profile_settings(_ctx: &RenderContext<'_>) -> Option<(Vec<String>, Vec<String>)> {
    None
}
