//! Hashes that name and annotate rendered objects.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Last 8 hex characters of sha256 over the concatenated parts (upstream's CA and TLS-secret hash annotations).
pub fn short_sha256(parts: &[&[u8]]) -> String {
    let mut hasher = Sha256::new();
    for p in parts {
        hasher.update(p);
    }
    let hex = hex_lower(&hasher.finalize());
    hex[hex.len() - 8..].to_owned()
}

/// The 10-character content-hash suffix kustomize gives generated Secrets, so that a registry taken over from the
/// upstream operator keeps the same rendered Secret names: sha256 of the compact, key-sorted JSON
/// `{"data":{k: base64(v)},"kind":"Secret","name":"","type":"Opaque"}`, first 10 hex characters, with
/// `0→g 1→h 3→k a→m e→t` so the suffix never looks like a number or a bad word.
pub fn kustomize_secret_suffix(data: &BTreeMap<String, Vec<u8>>) -> String {
    let digest = hex_lower(&kustomize_digest(data));
    digest[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            other => other,
        })
        .collect()
}

/// sha256 of [`kustomize_json`], fed to the hasher piece by piece: the JSON of the config bundle is kilobytes,
/// and building it took a large allocation per Secret (each one made glibc consolidate its free lists).
fn kustomize_digest(data: &BTreeMap<String, Vec<u8>>) -> [u8; 32] {
    // Whole base64 quanta per chunk, so only the last chunk of a value is padded.
    const CHUNK: usize = 3 * 256;
    let mut encoded = [0u8; CHUNK / 3 * 4];
    let mut hasher = Sha256::new();
    hasher.update(b"{\"data\":{");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            hasher.update(b",");
        }
        if k.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            hasher.update(serde_json::to_string(k).expect("string keys serialize"));
        } else {
            // What serde_json writes for a string that needs no escaping.
            hasher.update(b"\"");
            hasher.update(k.as_bytes());
            hasher.update(b"\"");
        }
        hasher.update(b":\"");
        for chunk in v.chunks(CHUNK) {
            let n = STANDARD
                .encode_slice(chunk, &mut encoded)
                .expect("the buffer holds a whole chunk's base64");
            hasher.update(&encoded[..n]);
        }
        hasher.update(b"\"");
    }
    hasher.update(b"},\"kind\":\"Secret\",\"name\":\"\",\"type\":\"Opaque\"}");
    hasher.finalize().into()
}

/// The JSON kustomize hashes for a Secret with `data` (what [`kustomize_digest`] hashes without building it).
#[cfg(test)]
fn kustomize_json(data: &BTreeMap<String, Vec<u8>>) -> String {
    let size: usize = data
        .iter()
        .map(|(k, v)| k.len() + v.len().div_ceil(3) * 4 + 6)
        .sum();
    let mut json = String::with_capacity(64 + size);
    json.push_str("{\"data\":{");
    for (i, (k, v)) in data.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        if k.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            json.push_str(&serde_json::to_string(k).expect("string keys serialize"));
        } else {
            // What serde_json writes for a string that needs no escaping, without a String per key.
            json.push('"');
            json.push_str(k);
            json.push('"');
        }
        json.push_str(":\"");
        STANDARD.encode_string(v, &mut json);
        json.push('"');
    }
    json.push_str("},\"kind\":\"Secret\",\"name\":\"\",\"type\":\"Opaque\"}");
    json
}

fn hex_lower(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xf) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secret_suffix_matches_kustomize() {
        // The value upstream's facts give for an empty Secret.
        assert_eq!(kustomize_secret_suffix(&BTreeMap::new()), "46f8b28mk5");
    }

    #[test]
    fn suffix_depends_on_content() {
        let mut a = BTreeMap::new();
        a.insert("config.yaml".to_owned(), b"A: 1\n".to_vec());
        let mut b = a.clone();
        b.insert("config.yaml".to_owned(), b"A: 2\n".to_vec());
        assert_ne!(kustomize_secret_suffix(&a), kustomize_secret_suffix(&b));
        assert_eq!(
            kustomize_secret_suffix(&a),
            kustomize_secret_suffix(&a.clone())
        );
    }

    #[test]
    fn keys_are_written_as_serde_json_writes_them() {
        for key in [
            "plain.txt",
            "é-ü",
            "with \"quote\"",
            "back\\slash",
            "tab\there",
            "nul\u{0}",
        ] {
            let data = BTreeMap::from([(key.to_owned(), b"v".to_vec())]);
            let expected = format!(
                "{{\"data\":{{{}:\"dg==\"}},\"kind\":\"Secret\",\"name\":\"\",\"type\":\"Opaque\"}}",
                serde_json::to_string(key).unwrap()
            );
            assert_eq!(kustomize_json(&data), expected, "{key:?}");
        }
    }

    #[test]
    fn streamed_digest_is_the_digest_of_the_json() {
        let long: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
        for data in [
            BTreeMap::new(),
            BTreeMap::from([("a".to_owned(), Vec::new())]),
            BTreeMap::from([
                ("config.yaml".to_owned(), long.clone()),
                ("k\"ey".to_owned(), long[..769].to_vec()),
                ("x".to_owned(), long[..767].to_vec()),
                ("y".to_owned(), long[..768].to_vec()),
            ]),
        ] {
            let expected: [u8; 32] = Sha256::digest(kustomize_json(&data).as_bytes()).into();
            assert_eq!(kustomize_digest(&data), expected);
        }
    }

    #[test]
    fn short_hash_is_last_eight_hex() {
        let h = short_sha256(&[b"abc"]);
        // sha256("abc") = ba7816bf...f20015ad
        assert_eq!(h, "f20015ad");
    }
}
