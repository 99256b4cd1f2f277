//! cert-manager as a cluster has it once installed: the `cert-manager.io/v1` Certificate, Issuer and
//! ClusterIssuer CRDs, and an issuer that answers every Certificate the way cert-manager does when its issuer
//! works: it writes a `kubernetes.io/tls` Secret (`spec.secretName`) holding a real self-signed certificate for
//! `spec.dnsNames` and its key, and sets the Certificate's `Ready` condition. Issuers are not simulated (any
//! issuerRef issues). A renewal ([`CertManager::renew`]) writes a new key and certificate into the same Secret.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use base64::Engine;
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::gateway_api::open_crd;
use crate::server::Shared;
use crate::sim::Simulator;
use crate::store::{EventType, Managed, State, WriteOpts};
use crate::util::{name_of, namespace_of, now_rfc3339, str_at};

const GROUP: &str = "cert-manager.io";
const MANAGER: &str = "cert-manager-certificates-issuing";
/// Annotation cert-manager puts on the Secret: the names the certificate in it was issued for.
const ALT_NAMES: &str = "cert-manager.io/alt-names";

/// `cert-manager.io/v1` Certificate, Issuer and ClusterIssuer.
pub fn cert_manager_crds() -> Vec<Value> {
    let mut cluster_issuer = open_crd(GROUP, "clusterissuers", "ClusterIssuer", "v1", &[]);
    cluster_issuer["spec"]["scope"] = json!("Cluster");
    vec![
        open_crd(
            GROUP,
            "certificates",
            "Certificate",
            "v1",
            &["cert", "certs"],
        ),
        open_crd(GROUP, "issuers", "Issuer", "v1", &[]),
        cluster_issuer,
    ]
}

/// The simulated cert-manager: issues Certificates as they are created or changed, unless held.
pub struct CertManager {
    shared: Weak<Shared>,
    hold: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Installs cert-manager's CRDs and starts its issuer.
    pub fn install_cert_manager(&self) -> Result<CertManager, ApiError> {
        for c in cert_manager_crds() {
            self.install_crd(c)?;
        }
        let hold = Arc::new(AtomicBool::new(false));
        let shared = Arc::downgrade(self.shared());
        let mut events = self.shared().lock().tx.subscribe();
        let (task_shared, task_hold) = (shared.clone(), hold.clone());
        let task = tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(shared) = task_shared.upgrade() {
                            issue_all(&mut shared.lock(), &task_hold);
                        }
                        continue;
                    }
                    Err(_) => return,
                };
                if event.group != GROUP
                    || event.plural != "certificates"
                    || event.etype == EventType::Deleted
                    || task_hold.load(Ordering::SeqCst)
                {
                    continue;
                }
                let Some(shared) = task_shared.upgrade() else {
                    return;
                };
                issue(
                    &mut shared.lock(),
                    &event.namespace,
                    &name_of(&event.object),
                    false,
                );
            }
        });
        Ok(CertManager { shared, hold, task })
    }
}

impl CertManager {
    /// Holds issuance (an issuer that does not answer), or resumes it and issues what is outstanding.
    pub fn hold(&self, on: bool) {
        self.hold.store(on, Ordering::SeqCst);
        if !on && let Some(shared) = self.shared.upgrade() {
            issue_all(&mut shared.lock(), &self.hold);
        }
    }

    /// Renews a Certificate now: a new key and certificate in its Secret (cert-manager's renewal with
    /// `rotationPolicy: Always`).
    pub fn renew(&self, namespace: &str, name: &str) {
        if let Some(shared) = self.shared.upgrade() {
            issue(&mut shared.lock(), namespace, name, true);
        }
    }
}

impl Drop for CertManager {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn issue_all(st: &mut State, hold: &AtomicBool) {
    if hold.load(Ordering::SeqCst) {
        return;
    }
    let Some(rd) = st.find(GROUP, "certificates") else {
        return;
    };
    let all: Vec<(String, String)> = st
        .list(&rd, None)
        .into_iter()
        .map(|c| (namespace_of(c), name_of(c)))
        .collect();
    for (ns, name) in all {
        issue(st, &ns, &name, false);
    }
}

/// Issues a Certificate when its Secret is missing, holds no certificate, or was issued for other names; or
/// always when `renew`.
fn issue(st: &mut State, ns: &str, name: &str, renew: bool) {
    let (Some(rd), Some(secrets)) = (st.find(GROUP, "certificates"), st.find("", "secrets")) else {
        return;
    };
    let Some(certificate) = st.get_raw(&rd, ns, name).cloned() else {
        return;
    };
    if certificate.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let Some(secret_name) = str_at(&certificate, "/spec/secretName").map(str::to_owned) else {
        return;
    };
    let dns_names: Vec<String> = certificate
        .pointer("/spec/dnsNames")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let alt_names = dns_names.join(",");
    let existing = st.get_raw(&secrets, ns, &secret_name).cloned();
    let up_to_date = existing.as_ref().is_some_and(|s| {
        s.pointer("/data/tls.crt").is_some()
            && s.pointer(&format!(
                "/metadata/annotations/{}",
                ALT_NAMES.replace('/', "~1")
            ))
            .and_then(Value::as_str)
                == Some(alt_names.as_str())
    });
    let ready = certificate
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    if up_to_date && ready && !renew {
        return;
    }
    if !up_to_date || renew {
        let Some((cert, key)) = self_signed(&dns_names) else {
            return;
        };
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let data = json!({"tls.crt": b64(&cert), "tls.key": b64(&key), "ca.crt": b64(&cert)});
        let annotations = json!({
            ALT_NAMES: alt_names,
            "cert-manager.io/certificate-name": name,
            "cert-manager.io/issuer-name": str_at(&certificate, "/spec/issuerRef/name").unwrap_or(""),
            "cert-manager.io/issuer-kind": str_at(&certificate, "/spec/issuerRef/kind").unwrap_or("Issuer"),
        });
        let opts = WriteOpts {
            manager: MANAGER.into(),
            version: "v1".into(),
            ..Default::default()
        };
        let written = match existing {
            // Keep what others put on the Secret (labels), replace what cert-manager owns.
            Some(_) => st.update_with(&secrets, ns, &secret_name, &opts, Managed::Update, false, |old| {
                let mut new = old.clone();
                new["type"] = json!("kubernetes.io/tls");
                new["data"] = data;
                for (k, v) in annotations.as_object().into_iter().flatten() {
                    new["metadata"]["annotations"][k] = v.clone();
                }
                Ok(new)
            }),
            None => st.create(
                &secrets,
                ns,
                json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": secret_name, "namespace": ns, "annotations": annotations},
                       "type": "kubernetes.io/tls", "data": data}),
                &opts,
                Managed::Update,
            ),
        };
        if written.is_err() {
            return;
        }
    }
    let revision = certificate
        .pointer("/status/revision")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        + 1;
    let status_opts = WriteOpts {
        manager: "cert-manager-certificates-readiness".into(),
        version: "v1".into(),
        subresource: "status".into(),
        ..Default::default()
    };
    let now = now_rfc3339();
    let _ = st.update_with(&rd, ns, name, &status_opts, Managed::Update, false, |old| {
        let mut new = old.clone();
        new["status"] = json!({
            "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                            "message": "Certificate is up to date and has not expired",
                            "lastTransitionTime": now}],
            "revision": revision,
        });
        Ok(new)
    });
}

/// A fresh EC P-256 key and a self-signed certificate for `names`, PEM.
fn self_signed(names: &[String]) -> Option<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).ok()?;
    let params = rcgen::CertificateParams::new(names.to_vec()).ok()?;
    let cert = params.self_signed(&key).ok()?;
    Some((cert.pem(), key.serialize_pem()))
}
