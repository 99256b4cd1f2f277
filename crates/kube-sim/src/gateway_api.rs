//! The Gateway API as a cluster has it once installed: the `gateway.networking.k8s.io/v1` Gateway and
//! HTTPRoute CRDs (schemas open; no Gateway controller: routes get no status).

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::sim::Simulator;

/// A CRD of one served, stored version whose spec and status take any fields.
pub(crate) fn open_crd(
    group: &str,
    plural: &str,
    kind: &str,
    version: &str,
    short: &[&str],
) -> Value {
    let open = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind,
                      "listKind": format!("{kind}List"), "shortNames": short},
            "scope": "Namespaced",
            "versions": [{
                "name": version, "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                    "metadata": {"type": "object"}, "spec": open, "status": open,
                }}},
            }],
        }
    })
}

/// `gateway.networking.k8s.io/v1` Gateway and HTTPRoute.
pub fn gateway_api_crds() -> Vec<Value> {
    vec![
        open_crd(
            "gateway.networking.k8s.io",
            "gateways",
            "Gateway",
            "v1",
            &["gtw"],
        ),
        open_crd(
            "gateway.networking.k8s.io",
            "httproutes",
            "HTTPRoute",
            "v1",
            &[],
        ),
    ]
}

impl Simulator {
    /// Installs the Gateway API CRDs.
    pub fn install_gateway_api(&self) -> Result<(), ApiError> {
        for c in gateway_api_crds() {
            self.install_crd(c)?;
        }
        Ok(())
    }
}
