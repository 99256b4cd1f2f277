//! cert-manager as a cluster has it once installed: the `cert-manager.io/v1` Certificate, Issuer and
//! ClusterIssuer CRDs, and an issuer that answers every Certificate the way cert-manager does when its issuer
//! works: it writes a `kubernetes.io/tls` Secret (`spec.secretName`) holding a real self-signed certificate for
//! `spec.dnsNames` and its key, and sets the Certificate's `Ready` condition. Issuers are not simulated (any
//! issuerRef issues); [`IssuerMode`] makes the issuer slow or refuse. A renewal ([`CertManager::renew`]) writes
//! a new key and certificate into the same Secret.

use std::sync::{Arc, Mutex, Weak};

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

/// How the simulated issuer answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum IssuerMode {
    /// Issue every Certificate (the default).
    #[default]
    Issue,
    /// Do not answer (an issuer that is slow or not yet set up).
    Hold,
    /// Refuse: the Certificate gets `Ready=False` with this message and no Secret.
    Refuse(String),
}

type SharedMode = Arc<Mutex<IssuerMode>>;

fn mode_of(mode: &SharedMode) -> IssuerMode {
    mode.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The simulated cert-manager: answers Certificates as they are created or changed, as its mode says.
pub struct CertManager {
    shared: Weak<Shared>,
    mode: SharedMode,
    task: tokio::task::JoinHandle<()>,
}

impl Simulator {
    /// Installs cert-manager's CRDs and starts its issuer.
    pub fn install_cert_manager(&self) -> Result<CertManager, ApiError> {
        for c in cert_manager_crds() {
            self.install_crd(c)?;
        }
        let mode = SharedMode::default();
        let shared = Arc::downgrade(self.shared());
        let mut events = self.shared().lock().tx.subscribe();
        let (task_shared, task_mode) = (shared.clone(), mode.clone());
        let task = tokio::spawn(async move {
            loop {
                let event = match events.recv().await {
                    Ok(e) => e,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        if let Some(shared) = task_shared.upgrade() {
                            issue_all(&mut shared.lock(), &mode_of(&task_mode));
                        }
                        continue;
                    }
                    Err(_) => return,
                };
                if event.group != GROUP
                    || event.plural != "certificates"
                    || event.etype == EventType::Deleted
                {
                    continue;
                }
                let Some(shared) = task_shared.upgrade() else {
                    return;
                };
                answer(
                    &mut shared.lock(),
                    &mode_of(&task_mode),
                    &event.namespace,
                    &name_of(&event.object),
                );
            }
        });
        Ok(CertManager { shared, mode, task })
    }
}

impl CertManager {
    /// Changes how the issuer answers, and answers every Certificate accordingly.
    pub fn set_mode(&self, mode: IssuerMode) {
        *self.mode.lock().unwrap_or_else(|e| e.into_inner()) = mode.clone();
        if let Some(shared) = self.shared.upgrade() {
            issue_all(&mut shared.lock(), &mode);
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

fn issue_all(st: &mut State, mode: &IssuerMode) {
    let Some(rd) = st.find(GROUP, "certificates") else {
        return;
    };
    let all: Vec<(String, String)> = st
        .list(&rd, None)
        .into_iter()
        .map(|c| (namespace_of(c), name_of(c)))
        .collect();
    for (ns, name) in all {
        answer(st, mode, &ns, &name);
    }
}

fn answer(st: &mut State, mode: &IssuerMode, ns: &str, name: &str) {
    match mode {
        IssuerMode::Issue => issue(st, ns, name, false),
        IssuerMode::Hold => {}
        IssuerMode::Refuse(message) => refuse(st, ns, name, message),
    }
}

/// `Ready=False` with the issuer's message, as cert-manager reports a failed issuance.
fn refuse(st: &mut State, ns: &str, name: &str, message: &str) {
    let Some(rd) = st.find(GROUP, "certificates") else {
        return;
    };
    let Some(certificate) = st.get_raw(&rd, ns, name) else {
        return;
    };
    let status = json!({"conditions": [{"type": "Ready", "status": "False", "reason": "Failed",
                                         "message": message, "lastTransitionTime": now_rfc3339()}]});
    let unchanged = certificate.pointer("/status/conditions/0/message")
        == status.pointer("/conditions/0/message")
        && certificate.pointer("/status/conditions/0/status")
            == status.pointer("/conditions/0/status");
    if unchanged {
        return;
    }
    write_status(st, ns, name, status);
}

fn write_status(st: &mut State, ns: &str, name: &str, status: Value) {
    let Some(rd) = st.find(GROUP, "certificates") else {
        return;
    };
    let opts = WriteOpts {
        manager: "cert-manager-certificates-readiness".into(),
        version: "v1".into(),
        subresource: "status".into(),
        ..Default::default()
    };
    let _ = st.update_with(&rd, ns, name, &opts, Managed::Update, false, |old| {
        let mut new = old.clone();
        new["status"] = status;
        Ok(new)
    });
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
    let status = json!({
        "conditions": [{"type": "Ready", "status": "True", "reason": "Ready",
                        "message": "Certificate is up to date and has not expired",
                        "lastTransitionTime": now_rfc3339()}],
        "revision": revision,
    });
    write_status(st, ns, name, status);
}

/// A fresh EC P-256 key and a self-signed certificate for `names`, PEM.
fn self_signed(names: &[String]) -> Option<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).ok()?;
    let params = rcgen::CertificateParams::new(names.to_vec()).ok()?;
    let cert = params.self_signed(&key).ok()?;
    Some((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sim::Options;

    const WAIT: Duration = Duration::from_secs(10);

    fn certificate(name: &str, secret: &str, dns: &[&str]) -> Value {
        json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
               "metadata": {"name": name, "namespace": "default"},
               "spec": {"secretName": secret, "dnsNames": dns,
                        "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}})
    }

    fn ready(sim: &Simulator, name: &str) -> Option<(String, String)> {
        let c = sim.get(GROUP, "certificates", "default", name)?;
        let cond = c.pointer("/status/conditions/0")?;
        Some((
            cond["status"].as_str()?.to_owned(),
            cond["message"].as_str()?.to_owned(),
        ))
    }

    #[tokio::test]
    async fn issues_renews_and_refuses_like_cert_manager() {
        let sim = Simulator::start(Options::default()).await.unwrap();
        let cert_manager = sim.install_cert_manager().unwrap();
        sim.create(certificate(
            "web",
            "web-tls",
            &["a.example.com", "b.example.com"],
        ))
        .unwrap();
        assert!(
            sim.wait_until(WAIT, || ready(&sim, "web")
                .is_some_and(|(s, _)| s == "True"))
                .await
        );
        let secret = sim.get("", "secrets", "default", "web-tls").unwrap();
        assert_eq!(secret["type"], "kubernetes.io/tls");
        assert_eq!(
            secret["metadata"]["annotations"][ALT_NAMES],
            "a.example.com,b.example.com"
        );
        let decode = |s: &Value, key: &str| {
            let b64 = s["data"][key].as_str().unwrap().to_owned();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .unwrap(),
            )
            .unwrap()
        };
        assert!(decode(&secret, "tls.crt").starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(decode(&secret, "tls.key").contains("PRIVATE KEY"));

        // A label someone else put on the Secret survives a renewal; the key pair is new.
        let rd = sim.shared().lock().find("", "secrets").unwrap();
        let opts = WriteOpts {
            manager: "someone".into(),
            version: "v1".into(),
            ..Default::default()
        };
        sim.shared()
            .lock()
            .update_with(
                &rd,
                "default",
                "web-tls",
                &opts,
                Managed::Update,
                false,
                |old| {
                    let mut new = old.clone();
                    new["metadata"]["labels"] = json!({"watched": "true"});
                    Ok(new)
                },
            )
            .unwrap();
        cert_manager.renew("default", "web");
        let renewed = sim.get("", "secrets", "default", "web-tls").unwrap();
        assert_ne!(decode(&renewed, "tls.key"), decode(&secret, "tls.key"));
        assert_ne!(decode(&renewed, "tls.crt"), decode(&secret, "tls.crt"));
        assert_eq!(renewed["metadata"]["labels"]["watched"], "true");

        // A refusing issuer: Ready=False with its message, no Secret.
        cert_manager.set_mode(IssuerMode::Refuse("issuer ca not found".into()));
        sim.create(certificate("other", "other-tls", &["c.example.com"]))
            .unwrap();
        assert!(
            sim.wait_until(WAIT, || ready(&sim, "other")
                == Some(("False".into(), "issuer ca not found".into())))
                .await
        );
        assert!(sim.get("", "secrets", "default", "other-tls").is_none());
        cert_manager.set_mode(IssuerMode::Issue);
        assert!(sim.get("", "secrets", "default", "other-tls").is_some());
    }
}
