//! Offline checks of the TLS certificate Quay serves: the PEM pair parses, the private key belongs to the
//! certificate, the certificate names the registry's hosts, and when it expires.
//!
//! The messages follow the wording of Go's `crypto/tls` and `crypto/x509` (which upstream reports verbatim), so
//! status messages read the same as with the upstream operator. No message ever contains key material.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a certificate/key pair is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("tls: failed to find any PEM data in certificate input")]
    NoCertificatePem,
    #[error("tls: failed to find \"CERTIFICATE\" PEM block in certificate input")]
    NoCertificateBlock,
    #[error("tls: failed to find any PEM data in key input")]
    NoKeyPem,
    #[error("tls: found a certificate rather than a key in the PEM for the private key")]
    CertificateInsteadOfKey,
    #[error("x509: malformed certificate: {0}")]
    MalformedCertificate(String),
    #[error("tls: failed to parse private key")]
    MalformedKey,
    #[error("tls: private key type does not match public key type")]
    KeyTypeMismatch,
    #[error("tls: private key does not match public key")]
    KeyMismatch,
    #[error(
        "tls: unsupported key type ({0}): cannot check that the private key matches the certificate"
    )]
    UnsupportedKey(&'static str),
}

/// Why a certificate is not valid for a host (Go's `x509.HostnameError` wording).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostnameError {
    #[error("x509: cannot validate certificate for {0} because it doesn't contain any IP SANs")]
    NoIpSans(String),
    #[error("x509: certificate relies on legacy Common Name field, use SANs instead")]
    LegacyCommonName,
    #[error("x509: certificate is not valid for any names, but wanted to match {0}")]
    NoNames(String),
    #[error("x509: certificate is valid for {valid}, not {host}")]
    NotValidFor { valid: String, host: String },
}

/// The leaf certificate of a checked pair: what hostname and expiry checks need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub dns_names: Vec<String>,
    pub ip_addresses: Vec<IpAddr>,
    /// The certificate has a subjectAltName extension (even an empty one).
    pub has_san_extension: bool,
    pub common_name: Option<String>,
    /// Validity bounds, seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Parses a PEM certificate chain and a PEM private key and checks that the key belongs to the first
/// certificate (RSA, ECDSA P-256/P-384, Ed25519; PKCS#1, SEC1 or PKCS#8 keys), as `tls.X509KeyPair` does.
pub fn check_pair(cert_pem: &str, key_pem: &str) -> Result<Certificate, CertificateError> {
    let cert_blocks = pem::parse_many(cert_pem.as_bytes()).unwrap_or_default();
    if cert_blocks.is_empty() {
        return Err(CertificateError::NoCertificatePem);
    }
    let leaf_der = cert_blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or(CertificateError::NoCertificateBlock)?
        .contents()
        .to_vec();

    let key_blocks = pem::parse_many(key_pem.as_bytes()).unwrap_or_default();
    let key_block = key_blocks
        .iter()
        .find(|b| b.tag() == "PRIVATE KEY" || b.tag().ends_with(" PRIVATE KEY"));
    let key_block = match key_block {
        Some(b) => b,
        None if key_blocks.iter().any(|b| b.tag() == "CERTIFICATE") => {
            return Err(CertificateError::CertificateInsteadOfKey);
        }
        None => return Err(CertificateError::NoKeyPem),
    };
    let key = PrivateKey::parse(key_block.tag(), key_block.contents())?;

    let (_, cert) = x509_parser::parse_x509_certificate(&leaf_der)
        .map_err(|e| CertificateError::MalformedCertificate(e.to_string()))?;
    let public_key = PublicKey::parse(cert.public_key().raw)
        .ok_or_else(|| CertificateError::MalformedCertificate("subject public key".to_owned()))?;
    key.check_matches(&public_key)?;

    let san = cert
        .subject_alternative_name()
        .map_err(|e| CertificateError::MalformedCertificate(e.to_string()))?;
    let mut dns_names = Vec::new();
    let mut ip_addresses = Vec::new();
    if let Some(san) = &san {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(n) => dns_names.push((*n).to_owned()),
                x509_parser::extensions::GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_addresses.push(ip);
                    }
                }
                _ => {}
            }
        }
    }
    let common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned);
    Ok(Certificate {
        dns_names,
        ip_addresses,
        has_san_extension: san.is_some(),
        common_name,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

impl Certificate {
    /// Checks that the certificate is valid for `host` (no port): DNS SANs with a leading `*` label matching
    /// exactly one label, or IP SANs for an IP literal; the Common Name is ignored, as Go does.
    pub fn verify_hostname(&self, host: &str) -> Result<(), HostnameError> {
        let candidate_ip = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = candidate_ip.parse::<IpAddr>() {
            if self.ip_addresses.contains(&ip) {
                return Ok(());
            }
            if self.ip_addresses.is_empty() {
                return Err(HostnameError::NoIpSans(host.to_owned()));
            }
            let valid = self
                .ip_addresses
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            return Err(HostnameError::NotValidFor {
                valid,
                host: host.to_owned(),
            });
        }
        let candidate = host.to_ascii_lowercase();
        if self
            .dns_names
            .iter()
            .any(|pattern| matches_hostname(pattern, &candidate))
        {
            return Ok(());
        }
        if !self.has_san_extension
            && self
                .common_name
                .as_deref()
                .is_some_and(|cn| valid_hostname(cn, false))
        {
            return Err(HostnameError::LegacyCommonName);
        }
        if self.dns_names.is_empty() {
            return Err(HostnameError::NoNames(host.to_owned()));
        }
        Err(HostnameError::NotValidFor {
            valid: self.dns_names.join(", "),
            host: host.to_owned(),
        })
    }

    /// `notAfter` as a point in time.
    pub fn expires_at(&self) -> SystemTime {
        system_time(self.not_after)
    }

    /// `notBefore` as a point in time.
    pub fn valid_from(&self) -> SystemTime {
        system_time(self.not_before)
    }
}

fn system_time(unix_seconds: i64) -> SystemTime {
    if unix_seconds >= 0 {
        UNIX_EPOCH + std::time::Duration::from_secs(unix_seconds as u64)
    } else {
        UNIX_EPOCH - std::time::Duration::from_secs(unix_seconds.unsigned_abs())
    }
}

/// `2026-11-24T09:14:16Z` (UTC, seconds precision) for messages.
pub fn format_rfc3339(time: SystemTime) -> String {
    let secs = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Go's `matchHostnames`/`matchExactly`: a valid pattern matches label by label, `*` only as the whole first
/// label; anything else must match exactly (case-insensitively).
fn matches_hostname(pattern: &str, host: &str) -> bool {
    let pattern = pattern.to_ascii_lowercase();
    if !valid_hostname(host, false) || !valid_hostname(&pattern, true) {
        return !host.is_empty() && !pattern.is_empty() && pattern == host;
    }
    let pattern = pattern.trim_end_matches('.');
    let host = host.trim_end_matches('.');
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let h: Vec<&str> = host.split('.').collect();
    p.len() == h.len()
        && p.iter()
            .zip(&h)
            .enumerate()
            .all(|(i, (pl, hl))| (i == 0 && *pl == "*") || pl == hl)
}

/// Go's `validHostname`: letters, digits, `-`, `_`, `.`-separated non-empty labels; `*` allowed as the whole
/// first label of a pattern.
fn valid_hostname(host: &str, is_pattern: bool) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() || host == "*" {
        return false;
    }
    host.split('.').enumerate().all(|(i, label)| {
        if label.is_empty() {
            return false;
        }
        if is_pattern && i == 0 && label == "*" {
            return true;
        }
        label
            .char_indices()
            .all(|(j, c)| c.is_ascii_alphanumeric() || c == '_' || (c == '-' && j != 0))
    })
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

// --- Keys -------------------------------------------------------------------------------------------------

const OID_RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_RSASSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

const TAG_INTEGER: u8 = 0x02;
const TAG_BIT_STRING: u8 = 0x03;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_OID: u8 = 0x06;
const TAG_SEQUENCE: u8 = 0x30;
const TAG_CONTEXT_0: u8 = 0xa0;

/// A certificate's subject public key.
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Curve OID and uncompressed point.
    Ec {
        curve: Vec<u8>,
        point: Vec<u8>,
    },
    Ed25519(Vec<u8>),
    Other,
}

impl PublicKey {
    /// Parses a DER SubjectPublicKeyInfo.
    fn parse(spki: &[u8]) -> Option<Self> {
        let (_, body, _) = read_tlv(spki).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
        let (_, alg, rest) = read_tlv(body).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
        let (_, bits, _) = read_tlv(rest).filter(|(t, _, _)| *t == TAG_BIT_STRING)?;
        let key = bits.get(1..)?; // skip the unused-bits count
        let (_, oid, params) = read_tlv(alg).filter(|(t, _, _)| *t == TAG_OID)?;
        Some(if oid == OID_RSA_ENCRYPTION || oid == OID_RSASSA_PSS {
            let (_, seq, _) = read_tlv(key).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
            let (n, rest) = read_integer(seq)?;
            let (e, _) = read_integer(rest)?;
            PublicKey::Rsa { n, e }
        } else if oid == OID_EC_PUBLIC_KEY {
            let (_, curve, _) = read_tlv(params).filter(|(t, _, _)| *t == TAG_OID)?;
            PublicKey::Ec {
                curve: curve.to_vec(),
                point: key.to_vec(),
            }
        } else if oid == OID_ED25519 {
            PublicKey::Ed25519(key.to_vec())
        } else {
            PublicKey::Other
        })
    }
}

/// A private key, as far as the match check needs it. Never printed.
enum PrivateKey {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Private scalar; the curve when the key names one.
    Ec {
        curve: Option<Vec<u8>>,
        scalar: Vec<u8>,
    },
    Ed25519 {
        seed: Vec<u8>,
    },
}

impl PrivateKey {
    /// Parses a PKCS#1 (`RSA PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`) or PKCS#8 (`PRIVATE KEY`) DER key.
    fn parse(pem_tag: &str, der: &[u8]) -> Result<Self, CertificateError> {
        let parsed = match pem_tag {
            "RSA PRIVATE KEY" => parse_pkcs1(der),
            "EC PRIVATE KEY" => parse_sec1(der, None),
            _ => parse_pkcs8(der)
                .or_else(|| parse_pkcs1(der))
                .or_else(|| parse_sec1(der, None)),
        };
        parsed.ok_or(CertificateError::MalformedKey)
    }

    fn check_matches(&self, public: &PublicKey) -> Result<(), CertificateError> {
        match (self, public) {
            (PrivateKey::Rsa { n, e }, PublicKey::Rsa { n: pn, e: pe }) => {
                if n == pn && e == pe {
                    Ok(())
                } else {
                    Err(CertificateError::KeyMismatch)
                }
            }
            (PrivateKey::Ec { curve, scalar }, PublicKey::Ec { curve: pc, point }) => {
                if curve.as_ref().is_some_and(|c| c != pc) {
                    return Err(CertificateError::KeyMismatch);
                }
                let alg = if pc == OID_P256 {
                    &ring::signature::ECDSA_P256_SHA256_ASN1_SIGNING
                } else if pc == OID_P384 {
                    &ring::signature::ECDSA_P384_SHA384_ASN1_SIGNING
                } else {
                    return Err(CertificateError::UnsupportedKey(
                        "ECDSA curve other than P-256/P-384",
                    ));
                };
                // ring recomputes the public point from the scalar and rejects the pair if they differ.
                let rng = ring::rand::SystemRandom::new();
                ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
                    alg, scalar, point, &rng,
                )
                .map(|_| ())
                .map_err(|_| CertificateError::KeyMismatch)
            }
            (PrivateKey::Ed25519 { seed }, PublicKey::Ed25519(public)) => {
                ring::signature::Ed25519KeyPair::from_seed_and_public_key(seed, public)
                    .map(|_| ())
                    .map_err(|_| CertificateError::KeyMismatch)
            }
            (_, PublicKey::Other) => Err(CertificateError::UnsupportedKey(
                "certificate public key algorithm",
            )),
            _ => Err(CertificateError::KeyTypeMismatch),
        }
    }
}

/// RSAPrivateKey ::= SEQUENCE { version, modulus, publicExponent, ... }
fn parse_pkcs1(der: &[u8]) -> Option<PrivateKey> {
    let (_, seq, _) = read_tlv(der).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
    let (_, rest) = read_integer(seq)?;
    let (n, rest) = read_integer(rest)?;
    let (e, rest) = read_integer(rest)?;
    // The private exponent must follow; a public key is not a private key.
    read_integer(rest)?;
    Some(PrivateKey::Rsa { n, e })
}

/// ECPrivateKey ::= SEQUENCE { version 1, privateKey OCTET STRING, [0] parameters OPTIONAL, [1] publicKey OPTIONAL }
fn parse_sec1(der: &[u8], curve_from_pkcs8: Option<Vec<u8>>) -> Option<PrivateKey> {
    let (_, seq, _) = read_tlv(der).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
    let (version, rest) = read_integer(seq)?;
    if version != [1] {
        return None;
    }
    let (_, scalar, rest) = read_tlv(rest).filter(|(t, _, _)| *t == TAG_OCTET_STRING)?;
    let curve = match read_tlv(rest) {
        Some((TAG_CONTEXT_0, params, _)) => read_tlv(params)
            .filter(|(t, _, _)| *t == TAG_OID)
            .map(|(_, oid, _)| oid.to_vec()),
        _ => None,
    }
    .or(curve_from_pkcs8);
    Some(PrivateKey::Ec {
        curve,
        scalar: scalar.to_vec(),
    })
}

/// PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier, privateKey OCTET STRING, ... }
fn parse_pkcs8(der: &[u8]) -> Option<PrivateKey> {
    let (_, seq, _) = read_tlv(der).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
    let (_, rest) = read_integer(seq)?;
    let (_, alg, rest) = read_tlv(rest).filter(|(t, _, _)| *t == TAG_SEQUENCE)?;
    let (_, inner, _) = read_tlv(rest).filter(|(t, _, _)| *t == TAG_OCTET_STRING)?;
    let (_, oid, params) = read_tlv(alg).filter(|(t, _, _)| *t == TAG_OID)?;
    if oid == OID_RSA_ENCRYPTION || oid == OID_RSASSA_PSS {
        parse_pkcs1(inner)
    } else if oid == OID_EC_PUBLIC_KEY {
        let curve = read_tlv(params)
            .filter(|(t, _, _)| *t == TAG_OID)
            .map(|(_, c, _)| c.to_vec());
        parse_sec1(inner, curve)
    } else if oid == OID_ED25519 {
        let (_, seed, _) = read_tlv(inner).filter(|(t, _, _)| *t == TAG_OCTET_STRING)?;
        Some(PrivateKey::Ed25519 {
            seed: seed.to_vec(),
        })
    } else {
        None
    }
}

/// One DER TLV: (tag, value, rest). Definite lengths up to 4 length bytes.
fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[count..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// An INTEGER's magnitude without leading zero bytes, and the rest.
fn read_integer(input: &[u8]) -> Option<(Vec<u8>, &[u8])> {
    let (_, value, rest) = read_tlv(input).filter(|(t, _, _)| *t == TAG_INTEGER)?;
    let start = value.iter().position(|b| *b != 0).unwrap_or(value.len());
    Some((value[start..].to_vec(), rest))
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test certificates: fixed RSA keys (ring cannot generate RSA) and freshly generated ECDSA keys, signed
    //! with rcgen.

    use rcgen::{CertificateParams, KeyPair, SanType};
    use std::net::IpAddr;

    pub const RSA_KEY_A: &str = include_str!("testdata/rsa-a.key.pem");
    pub const RSA_KEY_B: &str = include_str!("testdata/rsa-b.key.pem");

    pub enum Key {
        RsaA,
        RsaB,
        EcP256,
        EcP384,
        Ed25519,
    }

    /// A self-signed certificate for `names` (DNS names or IP literals) and its private key (PKCS#8 PEM).
    /// `validity` is (notBefore, notAfter) in Unix seconds.
    pub fn self_signed(key: Key, names: &[&str], validity: Option<(i64, i64)>) -> (String, String) {
        let key_pair = match key {
            Key::RsaA => KeyPair::from_pem(RSA_KEY_A).unwrap(),
            Key::RsaB => KeyPair::from_pem(RSA_KEY_B).unwrap(),
            Key::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
            Key::EcP384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
            Key::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        };
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName((*n).try_into().unwrap()),
            })
            .collect();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ignored-common-name.example.com");
        if let Some((from, to)) = validity {
            params.not_before = time::OffsetDateTime::from_unix_timestamp(from).unwrap();
            params.not_after = time::OffsetDateTime::from_unix_timestamp(to).unwrap();
        }
        let cert = params.self_signed(&key_pair).unwrap();
        (cert.pem(), key_pair.serialize_pem())
    }

    /// The DER inside a PKCS#8 PEM key: the PKCS#1 / SEC1 key, re-armoured with its traditional PEM label.
    pub fn traditional_pem(pkcs8_pem: &str) -> String {
        let block = pem::parse(pkcs8_pem).unwrap();
        let (_, seq, _) = super::read_tlv(block.contents()).unwrap();
        let (_, rest) = super::read_integer(seq).unwrap();
        let (_, alg, rest) = super::read_tlv(rest).unwrap();
        let (_, inner, _) = super::read_tlv(rest).unwrap();
        let (_, oid, _) = super::read_tlv(alg).unwrap();
        let tag = if oid == super::OID_RSA_ENCRYPTION {
            "RSA PRIVATE KEY"
        } else {
            "EC PRIVATE KEY"
        };
        pem::encode(&pem::Pem::new(tag, inner.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn rsa_and_ecdsa_pairs_in_every_key_encoding_are_accepted() {
        for key in [Key::RsaA, Key::EcP256, Key::EcP384, Key::Ed25519] {
            let (cert, key_pem) = self_signed(key, &["quay.example.com"], None);
            check_pair(&cert, &key_pem).expect("PKCS#8 key");
        }
        let (cert, key) = self_signed(Key::RsaA, &["quay.example.com"], None);
        check_pair(&cert, &traditional_pem(&key)).expect("PKCS#1 RSA key");
        let (cert, key) = self_signed(Key::EcP256, &["quay.example.com"], None);
        check_pair(&cert, &traditional_pem(&key)).expect("SEC1 EC key");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (cert, _) = self_signed(Key::RsaA, &["quay.example.com"], None);
        let (_, other) = self_signed(Key::RsaB, &["quay.example.com"], None);
        assert_eq!(
            check_pair(&cert, &other),
            Err(CertificateError::KeyMismatch)
        );
        assert_eq!(
            check_pair(&cert, &traditional_pem(&other)),
            Err(CertificateError::KeyMismatch)
        );

        let (cert, _) = self_signed(Key::EcP256, &["quay.example.com"], None);
        let (_, other) = self_signed(Key::EcP256, &["quay.example.com"], None);
        assert_eq!(
            check_pair(&cert, &other),
            Err(CertificateError::KeyMismatch)
        );
        assert_eq!(
            check_pair(&cert, &traditional_pem(&other)),
            Err(CertificateError::KeyMismatch)
        );

        let (_, p384) = self_signed(Key::EcP384, &["quay.example.com"], None);
        assert_eq!(check_pair(&cert, &p384), Err(CertificateError::KeyMismatch));

        let (_, rsa) = self_signed(Key::RsaA, &["quay.example.com"], None);
        assert_eq!(
            check_pair(&cert, &rsa),
            Err(CertificateError::KeyTypeMismatch)
        );
    }

    #[test]
    fn pem_problems_have_go_messages() {
        let (cert, key) = self_signed(Key::EcP256, &["quay.example.com"], None);
        assert_eq!(
            check_pair("not pem", &key).unwrap_err().to_string(),
            "tls: failed to find any PEM data in certificate input"
        );
        assert_eq!(
            check_pair(&cert, "").unwrap_err().to_string(),
            "tls: failed to find any PEM data in key input"
        );
        assert_eq!(
            check_pair(&cert, &cert).unwrap_err().to_string(),
            "tls: found a certificate rather than a key in the PEM for the private key"
        );
        let garbage = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![1, 2, 3]));
        assert_eq!(
            check_pair(&cert, &garbage).unwrap_err().to_string(),
            "tls: failed to parse private key"
        );
    }

    #[test]
    fn hostnames_match_sans_with_wildcards_and_ips_but_not_the_common_name() {
        let (cert, key) = self_signed(
            Key::EcP256,
            &["quay.example.com", "*.apps.example.com", "10.0.0.1", "::1"],
            None,
        );
        let c = check_pair(&cert, &key).unwrap();
        for ok in [
            "quay.example.com",
            "QUAY.example.com",
            "builder.apps.example.com",
            "10.0.0.1",
            "[::1]",
        ] {
            assert_eq!(c.verify_hostname(ok), Ok(()), "{ok}");
        }
        assert_eq!(
            c.verify_hostname("a.b.apps.example.com")
                .unwrap_err()
                .to_string(),
            "x509: certificate is valid for quay.example.com, *.apps.example.com, not a.b.apps.example.com"
        );
        assert_eq!(
            c.verify_hostname("10.0.0.2").unwrap_err().to_string(),
            "x509: certificate is valid for 10.0.0.1, ::1, not 10.0.0.2"
        );
        assert!(
            c.verify_hostname("ignored-common-name.example.com")
                .is_err()
        );

        let (cert, key) = self_signed(Key::EcP256, &["quay.example.com"], None);
        let c = check_pair(&cert, &key).unwrap();
        assert_eq!(
            c.verify_hostname("10.0.0.1").unwrap_err().to_string(),
            "x509: cannot validate certificate for 10.0.0.1 because it doesn't contain any IP SANs"
        );
    }

    #[test]
    fn validity_bounds_are_read() {
        let (cert, key) = self_signed(
            Key::EcP256,
            &["q.example.com"],
            Some((1_700_000_000, 1_800_000_000)),
        );
        let c = check_pair(&cert, &key).unwrap();
        assert_eq!((c.not_before, c.not_after), (1_700_000_000, 1_800_000_000));
        assert_eq!(format_rfc3339(c.expires_at()), "2027-01-15T08:00:00Z");
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }
}
