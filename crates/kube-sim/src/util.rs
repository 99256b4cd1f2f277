//! Small helpers: timestamps, uids, random name suffixes, JSON access.

use rand::Rng;
use serde_json::{Map, Value};

/// RFC 3339 with second precision and `Z`, as metav1.Time serialises.
pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A random version-4 UUID string (uids are never reused, spec §4.1).
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// 5-char suffix from the apiserver's alphabet (no vowels, no confusable digits).
pub fn random_suffix(n: usize) -> String {
    const ALPHA: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut r = rand::rng();
    (0..n)
        .map(|_| ALPHA[r.random_range(0..ALPHA.len())] as char)
        .collect()
}

pub fn str_at<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// `v[key]` as a mutable object, creating it (and replacing non-objects) when needed.
pub fn obj_mut<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    let m = v.as_object_mut().expect("object");
    let e = m
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !e.is_object() {
        *e = Value::Object(Map::new());
    }
    e.as_object_mut().expect("object")
}

pub fn meta(v: &Value) -> &Value {
    v.get("metadata").unwrap_or(&Value::Null)
}

pub fn name_of(v: &Value) -> String {
    str_at(v, "/metadata/name").unwrap_or("").to_string()
}

pub fn namespace_of(v: &Value) -> String {
    str_at(v, "/metadata/namespace").unwrap_or("").to_string()
}

pub fn finalizers(v: &Value) -> Vec<String> {
    v.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(v: &mut Value, f: &[String]) {
    let m = obj_mut(v, "metadata");
    if f.is_empty() {
        m.remove("finalizers");
    } else {
        m.insert("finalizers".into(), Value::from(f.to_vec()));
    }
}

/// Whether `s` matches the regular expression `pattern`; `None` if the pattern does not compile.
/// Compiled patterns are kept: compiling one costs far more than a match, and every write validates
/// names and labels against the same few patterns (it was the simulator's largest cost at scale).
pub fn regex_matches(pattern: &str, s: &str) -> Option<bool> {
    static COMPILED: std::sync::LazyLock<
        std::sync::Mutex<std::collections::HashMap<String, Option<regex::Regex>>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut compiled = COMPILED.lock().unwrap_or_else(|e| e.into_inner());
    // Looked up by `&str` first: the key is copied only the first time a pattern is seen.
    if let Some(re) = compiled.get(pattern) {
        return re.as_ref().map(|re| re.is_match(s));
    }
    let re = regex::Regex::new(pattern).ok();
    let matched = re.as_ref().map(|re| re.is_match(s));
    compiled.insert(pattern.to_owned(), re);
    matched
}
