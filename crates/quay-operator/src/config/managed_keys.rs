//! `<reg>-quay-registry-managed-secret-keys`: secrets the operator generated for a registry. A value is generated
//! once, with a CSPRNG, and from then on only ever read back: never regenerated, never overwritten.

use std::collections::BTreeMap;

use base64::Engine;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use rand::Rng;
use rand::TryRngCore;
use rand::rngs::OsRng;

/// Name suffix of the managed keys Secret.
pub const MANAGED_KEYS_SUFFIX: &str = "quay-registry-managed-secret-keys";

/// Keys of the managed keys Secret, in upstream's order.
pub const MANAGED_KEY_NAMES: [&str; 9] = [
    "DATABASE_SECRET_KEY",
    "SECRET_KEY",
    "DB_URI",
    "DB_ROOT_PW",
    "SECURITY_SCANNER_V4_PSK",
    "CLAIR_DB_USER",
    "CLAIR_DB_PASSWORD",
    "CLAIR_DB_ROOT_PW",
    "CLAIR_DB_NAME",
];

/// The managed keys of one registry. An empty string means "not generated (yet)".
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ManagedKeys {
    values: BTreeMap<String, String>,
    /// Keys present in the Secret that this version does not know (e.g. `CONFIG_EDITOR_PW`): kept as they are.
    others: BTreeMap<String, Vec<u8>>,
}

impl std::fmt::Debug for ManagedKeys {
    // Never print the values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set: Vec<&str> = self
            .values
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, _)| k.as_str())
            .collect();
        f.debug_struct("ManagedKeys")
            .field("set", &set)
            .finish_non_exhaustive()
    }
}

/// Alphabet of generated secrets (upstream's: 63 symbols).
pub const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-";
/// Length of generated passwords: 43 symbols of 63 carry 257 bits, at least 256 (upstream's 32 carried 191).
pub const PASSWORD_LENGTH: usize = 43;

impl ManagedKeys {
    /// Reads the keys from the Secret's data (unknown keys are kept).
    pub fn from_files(files: &BTreeMap<String, Vec<u8>>) -> Self {
        let mut keys = Self::default();
        for (k, v) in files {
            if MANAGED_KEY_NAMES.contains(&k.as_str()) {
                keys.values
                    .insert(k.clone(), String::from_utf8_lossy(v).into_owned());
            } else {
                keys.others.insert(k.clone(), v.clone());
            }
        }
        keys
    }

    pub fn from_secret(secret: &Secret) -> Self {
        Self::from_files(&super::bundle::secret_files(secret))
    }

    /// A value, `None` when empty or absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn database_secret_key(&self) -> Option<&str> {
        self.get("DATABASE_SECRET_KEY")
    }
    pub fn secret_key(&self) -> Option<&str> {
        self.get("SECRET_KEY")
    }
    pub fn db_uri(&self) -> Option<&str> {
        self.get("DB_URI")
    }
    pub fn db_root_pw(&self) -> Option<&str> {
        self.get("DB_ROOT_PW")
    }
    pub fn security_scanner_psk(&self) -> Option<&str> {
        self.get("SECURITY_SCANNER_V4_PSK")
    }
    pub fn clair_db_user(&self) -> Option<&str> {
        self.get("CLAIR_DB_USER")
    }
    pub fn clair_db_password(&self) -> Option<&str> {
        self.get("CLAIR_DB_PASSWORD")
    }
    pub fn clair_db_root_pw(&self) -> Option<&str> {
        self.get("CLAIR_DB_ROOT_PW")
    }
    pub fn clair_db_name(&self) -> Option<&str> {
        self.get("CLAIR_DB_NAME")
    }

    /// Every non-empty value (to check that none leaks into a message).
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.values
            .values()
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Fills in every missing key with a freshly generated value from the OS CSPRNG; existing values are kept.
    /// Returns whether anything was added (the Secret then needs writing).
    pub fn complete(&mut self, registry: &str) -> bool {
        self.complete_with(registry, &mut OsRng.unwrap_err())
    }

    /// [`Self::complete`] with a given random source (tests use a seeded one).
    pub fn complete_with(&mut self, registry: &str, rng: &mut impl Rng) -> bool {
        let before = self.clone();
        // An install that predates stored Clair credentials used the literal `postgres` password; keep it working.
        let upgraded_without_clair_creds =
            self.db_root_pw().is_some() && self.clair_db_password().is_none();
        self.fill("DATABASE_SECRET_KEY", || random_string(rng, 80));
        self.fill("SECRET_KEY", || random_string(rng, 80));
        self.fill("DB_URI", || {
            let db = format!("{registry}-quay-database");
            format!(
                "postgresql://{db}:{}@{db}:5432/{db}",
                random_string(rng, 80)
            )
        });
        self.fill("DB_ROOT_PW", || random_string(rng, PASSWORD_LENGTH));
        self.fill("SECURITY_SCANNER_V4_PSK", || {
            base64::engine::general_purpose::STANDARD.encode(random_string(rng, PASSWORD_LENGTH))
        });
        self.fill("CLAIR_DB_USER", || "postgres".to_owned());
        self.fill("CLAIR_DB_NAME", || "postgres".to_owned());
        self.fill("CLAIR_DB_PASSWORD", || {
            if upgraded_without_clair_creds {
                "postgres".to_owned()
            } else {
                random_string(rng, PASSWORD_LENGTH)
            }
        });
        let clair_password = self.clair_db_password().unwrap_or_default().to_owned();
        self.fill("CLAIR_DB_ROOT_PW", || clair_password);
        *self != before
    }

    fn fill(&mut self, key: &str, generate: impl FnOnce() -> String) {
        let slot = self.values.entry(key.to_owned()).or_default();
        if slot.is_empty() {
            *slot = generate();
        }
    }

    /// The Secret holding these keys (all keys present, possibly empty, as upstream writes them).
    pub fn to_secret(
        &self,
        registry: &str,
        namespace: &str,
        owner: Option<OwnerReference>,
    ) -> Secret {
        let mut data: BTreeMap<String, ByteString> = self
            .others
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.clone())))
            .collect();
        for key in MANAGED_KEY_NAMES {
            let value = self.values.get(key).cloned().unwrap_or_default();
            data.insert(key.to_owned(), ByteString(value.into_bytes()));
        }
        let mut labels = BTreeMap::new();
        labels.insert(crate::api::REGISTRY_LABEL.to_owned(), registry.to_owned());
        Secret {
            metadata: ObjectMeta {
                name: Some(format!("{registry}-{MANAGED_KEYS_SUFFIX}")),
                namespace: Some(namespace.to_owned()),
                labels: Some(labels),
                owner_references: owner.map(|o| vec![o]),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Default::default()
        }
    }
}

fn random_string(rng: &mut impl Rng, len: usize) -> String {
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn complete_generates_every_key_once_and_never_again() {
        let mut keys = ManagedKeys::default();
        assert!(keys.complete_with("reg", &mut StdRng::seed_from_u64(1)));
        for k in MANAGED_KEY_NAMES {
            assert!(keys.get(k).is_some(), "{k} generated");
        }
        assert_eq!(keys.secret_key().unwrap().len(), 80);
        assert!(
            keys.db_uri()
                .unwrap()
                .starts_with("postgresql://reg-quay-database:")
        );
        assert!(
            keys.db_uri()
                .unwrap()
                .ends_with("@reg-quay-database:5432/reg-quay-database")
        );
        let first = keys.clone();
        assert!(
            !keys.complete_with("reg", &mut StdRng::seed_from_u64(2)),
            "nothing to add the second time"
        );
        assert_eq!(keys, first);
    }

    #[test]
    fn existing_values_survive_a_round_trip_through_the_secret() {
        let mut files = BTreeMap::new();
        files.insert("SECRET_KEY".to_owned(), b"kept-secret".to_vec());
        files.insert("CONFIG_EDITOR_PW".to_owned(), b"legacy".to_vec());
        let mut keys = ManagedKeys::from_files(&files);
        keys.complete_with("reg", &mut StdRng::seed_from_u64(3));
        assert_eq!(keys.secret_key(), Some("kept-secret"));
        let secret = keys.to_secret("reg", "ns", None);
        let back = ManagedKeys::from_secret(&secret);
        assert_eq!(back, keys);
        assert_eq!(secret.data.unwrap()["CONFIG_EDITOR_PW"].0, b"legacy");
    }

    #[test]
    fn upgrade_from_operator_without_clair_credentials_keeps_postgres_password() {
        let mut files = BTreeMap::new();
        files.insert("DB_ROOT_PW".to_owned(), b"root".to_vec());
        let mut keys = ManagedKeys::from_files(&files);
        keys.complete_with("reg", &mut StdRng::seed_from_u64(4));
        assert_eq!(keys.clair_db_password(), Some("postgres"));
        assert_eq!(keys.clair_db_root_pw(), Some("postgres"));
    }

    #[test]
    fn debug_output_has_no_values() {
        let mut keys = ManagedKeys::default();
        keys.complete_with("reg", &mut StdRng::seed_from_u64(5));
        let dbg = format!("{keys:?}");
        for v in keys.secret_values() {
            if v != "postgres" {
                assert!(!dbg.contains(v));
            }
        }
    }
}
