//! Quay's `config.yaml`: read from the user's bundle, merged with base defaults and the managed components' field
//! groups, and written back out.
//!
//! Values the user wrote are kept **as written**: Quay reads its config with a YAML 1.1 parser, so re-encoding a
//! user's value (`0443`, `yes`, `1e3`, `!!str` tags, comments) through a generic value type could change what Quay
//! sees. Each top-level entry keeps its original text; only entries the operator sets are emitted fresh. No YAML
//! crate offers this "edit top-level keys, keep the rest byte-for-byte" operation, so it is written here, on top of
//! `serde-saphyr` for parsing.

use std::collections::BTreeMap;

use serde_json::Value;

/// Errors reading a `config.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuayConfigError {
    #[error("config.yaml is not valid UTF-8")]
    NotUtf8,
    #[error("{0}")]
    Yaml(String),
    #[error("config.yaml must be a YAML mapping of config keys, found {0}")]
    NotAMapping(&'static str),
}

#[derive(Debug, Clone, PartialEq)]
enum Entry {
    /// A user entry: the parsed value (for reading) and the original text of `KEY: value...` (for writing).
    User { value: Value, text: Option<String> },
    /// An entry the operator set.
    Set(Value),
    /// A constant the operator set, with its YAML emitted once per process (see [`QuayConfig::preset`]).
    Preset {
        value: &'static Value,
        text: &'static str,
    },
}

impl Entry {
    fn value(&self) -> &Value {
        match self {
            Entry::User { value, .. } | Entry::Set(value) => value,
            Entry::Preset { value, .. } => value,
        }
    }
}

/// A Quay `config.yaml`: top-level keys and their values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QuayConfig {
    entries: BTreeMap<String, Entry>,
}

impl QuayConfig {
    /// Parses a user's `config.yaml`. Empty text (or only comments) is an empty config.
    pub fn parse(text: &str) -> Result<Self, QuayConfigError> {
        let parsed: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_saphyr::from_str(text)
                .map_err(|e| QuayConfigError::Yaml(first_line(&e.to_string())))?
        };
        let map = match parsed {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            Value::Array(_) => return Err(QuayConfigError::NotAMapping("a list")),
            Value::String(_) => return Err(QuayConfigError::NotAMapping("a string")),
            Value::Number(_) => return Err(QuayConfigError::NotAMapping("a number")),
            Value::Bool(_) => return Err(QuayConfigError::NotAMapping("a boolean")),
        };
        let mut texts = top_level_segments(text);
        // Keep verbatim text only when every segment re-parses to exactly its value (no anchors shared across
        // keys, no flow-style top level); otherwise the value is re-emitted, as upstream always does.
        // Once the segments' keys are exactly the document's keys, only anchors/aliases (`&`, `*`) and directives
        // (`%TAG`) can make a segment mean something else on its own; re-parse segments only then.
        let self_contained =
            !text.contains(['&', '*']) && !text.lines().any(|l| l.starts_with('%'));
        let verbatim_ok = texts.len() == map.len()
            && map.keys().all(|k| texts.contains_key(k))
            && (self_contained
                || map.iter().all(|(k, v)| {
                    texts.get(k).is_some_and(|seg| {
                        serde_saphyr::from_str::<BTreeMap<String, Value>>(seg)
                            .ok()
                            .and_then(|m| m.get(k).cloned())
                            .is_some_and(|parsed| &parsed == v)
                    })
                }));
        let entries = map
            .into_iter()
            .map(|(k, value)| {
                let text = if verbatim_ok { texts.remove(&k) } else { None };
                (k, Entry::User { value, text })
            })
            .collect();
        Ok(Self { entries })
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.get(key).map(Entry::value)
    }

    /// A string value (`None` if absent or not a string).
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Sets `key`, replacing whatever the user wrote (managed component field groups).
    pub fn set(&mut self, key: &str, value: Value) {
        self.entries.insert(key.to_owned(), Entry::Set(value));
    }

    /// Sets `key` only when the user did not (base defaults).
    pub fn set_default(&mut self, key: &str, value: Value) {
        self.entries
            .entry(key.to_owned())
            .or_insert(Entry::Set(value));
    }

    /// Sets `key` to a constant only when the user did not (base defaults). `text` must be what [`Self::to_yaml`]
    /// would emit for the entry, i.e. [`emit_entry`]'s: emitting YAML is the costliest step of a render, and
    /// constants need it only once per process.
    pub fn set_default_preset(&mut self, key: &str, value: &'static Value, text: &'static str) {
        if !self.entries.contains_key(key) {
            self.entries
                .insert(key.to_owned(), Entry::Preset { value, text });
        }
    }

    /// Sets `key` to a constant, replacing whatever the user wrote (constant parts of managed field groups);
    /// `text` as for [`Self::set_default_preset`].
    pub fn set_preset(&mut self, key: &str, value: &'static Value, text: &'static str) {
        self.entries
            .insert(key.to_owned(), Entry::Preset { value, text });
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.entries.remove(key).map(|e| match e {
            Entry::User { value, .. } | Entry::Set(value) => value,
            Entry::Preset { value, .. } => value.clone(),
        })
    }

    /// All values as one JSON object (for checks that read nested values).
    pub fn to_value(&self) -> Value {
        Value::Object(
            self.entries
                .iter()
                .map(|(k, e)| (k.clone(), e.value().clone()))
                .collect(),
        )
    }

    /// The YAML document Quay reads: keys sorted; user entries byte-for-byte as written.
    pub fn to_yaml(&self) -> String {
        let fresh: Vec<(&str, &Value)> = self
            .entries
            .iter()
            .filter_map(|(key, entry)| match entry {
                Entry::User { text: Some(_), .. } | Entry::Preset { .. } => None,
                Entry::User { value, text: None } | Entry::Set(value) => {
                    Some((key.as_str(), value))
                }
            })
            .collect();
        // One serializer run for every fresh entry (one per entry cost most of a render), cut back into entries.
        let emitted = emit_entries(&fresh);
        let mut emitted_parts = emitted.parts();
        let mut out = String::with_capacity(
            emitted.all.len()
                + self
                    .entries
                    .values()
                    .map(|e| match e {
                        Entry::User {
                            text: Some(text), ..
                        } => text.len() + 1,
                        Entry::Preset { text, .. } => text.len(),
                        _ => 0,
                    })
                    .sum::<usize>(),
        );
        for entry in self.entries.values() {
            match entry {
                Entry::User {
                    text: Some(text), ..
                } => {
                    out.push_str(text);
                    if !text.ends_with('\n') {
                        out.push('\n');
                    }
                }
                Entry::Preset { text, .. } => out.push_str(text),
                Entry::User { text: None, .. } | Entry::Set(_) => out.push_str(
                    emitted_parts
                        .next()
                        .expect("one emitted text per fresh entry"),
                ),
            }
        }
        out
    }
}

/// The YAML of one `key: value` entry, exactly as [`QuayConfig::to_yaml`] writes it when the operator sets it.
pub fn emit_entry(key: &str, value: &Value) -> String {
    emit_entries(&[(key, value)]).all
}

/// A mapping serialized from borrowed entries, so emitting needs no copy of the values.
struct Mapping<'a>(&'a [(&'a str, &'a Value)]);

impl serde::Serialize for Mapping<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

/// The YAML of a run of entries: the whole text and where each entry's part ends.
struct Emitted {
    all: String,
    ends: Vec<usize>,
}

impl Emitted {
    fn parts(&self) -> impl Iterator<Item = &str> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts
            .zip(&self.ends)
            .map(|(start, &end)| &self.all[start..end])
    }
}

/// The YAML of each entry of `entries`, in order, exactly as emitting it alone would give.
fn emit_entries(entries: &[(&str, &Value)]) -> Emitted {
    let emit = |entries: &[(&str, &Value)]| {
        // Sized up front: growing a kilobyte String by doubling takes several large allocations, and each one
        // makes glibc consolidate its free lists.
        let mut out = String::with_capacity(entries.len() * 64);
        serde_saphyr::to_fmt_writer(&mut out, &Mapping(entries)).expect("JSON values serialize");
        out
    };
    if entries.len() >= 2 {
        let all = emit(entries);
        let ends = entry_ends(&all);
        if ends.len() == entries.len() {
            return Emitted { all, ends };
        }
        // Something other than one block entry per key (flow style, document markers): emit one by one.
    }
    let mut emitted = Emitted {
        all: String::new(),
        ends: Vec::with_capacity(entries.len()),
    };
    for entry in entries {
        emitted.all.push_str(&emit(std::slice::from_ref(entry)));
        emitted.ends.push(emitted.all.len());
    }
    emitted
}

/// Where each top-level entry of a block-style mapping ends: in block style a new entry is the only thing that
/// starts at column 0.
fn entry_ends(all: &str) -> Vec<usize> {
    let mut ends: Vec<usize> = Vec::new();
    let mut at = 0;
    for line in all.split_inclusive('\n') {
        match ends.last_mut() {
            Some(end) if line.starts_with([' ', '-']) => *end += line.len(),
            _ => ends.push(at + line.len()),
        }
        at += line.len();
    }
    ends
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

/// Splits a block-mapping document into the text of each top-level entry: an entry starts on a line whose first
/// character begins a key (not a space, comment, document marker or sequence dash) and runs until the next one.
/// Comments and blank lines before the first key are dropped.
fn top_level_segments(text: &str) -> BTreeMap<String, String> {
    let mut segments: Vec<(String, String)> = Vec::new();
    for line in text.split_inclusive('\n') {
        let starts_entry = line.chars().next().is_some_and(|c| {
            !c.is_whitespace() && c != '#' && c != '-' && c != '.' && c != '{' && c != '['
        });
        if let Some(key) = entry_key(line).filter(|_| starts_entry) {
            segments.push((key, line.to_owned()));
            continue;
        }
        if line.starts_with("---") || line.starts_with("...") {
            continue;
        }
        if let Some((_, seg)) = segments.last_mut() {
            seg.push_str(line);
        }
    }
    // Trailing comment and blank lines belong to nobody; trim them so emission stays tidy.
    segments
        .into_iter()
        .map(|(k, mut seg)| {
            let trimmed_len = seg.trim_end().len();
            seg.truncate(trimmed_len);
            seg.push('\n');
            (k, seg)
        })
        .collect()
}

/// The key of a top-level `key: value` line (plain, single- or double-quoted).
fn entry_key(line: &str) -> Option<String> {
    let line = line.trim_end();
    if let Some(rest) = line.strip_prefix('"') {
        let end = rest.find('"')?;
        return Some(rest[..end].to_owned());
    }
    if let Some(rest) = line.strip_prefix('\'') {
        let end = rest.find('\'')?;
        return Some(rest[..end].to_owned());
    }
    let colon = line
        .find(": ")
        .or_else(|| line.ends_with(':').then(|| line.len() - 1))?;
    Some(line[..colon].trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_values_are_written_back_as_written() {
        let text = "# my registry\nSERVER_HOSTNAME: quay.example.com\nODD_PORT: 0443\nYES_FLAG: yes\nNESTED:\n  a: 1   # keep me\n  b: [x, z]\n";
        let mut cfg = QuayConfig::parse(text).unwrap();
        cfg.set("FEATURE_MAILING", json!(false));
        let out = cfg.to_yaml();
        assert!(out.contains("ODD_PORT: 0443\n"), "{out}");
        assert!(out.contains("YES_FLAG: yes\n"), "{out}");
        assert!(
            out.contains("NESTED:\n  a: 1   # keep me\n  b: [x, z]\n"),
            "{out}"
        );
        assert!(out.contains("FEATURE_MAILING: false"), "{out}");
        // And the output is still the same config.
        let again = QuayConfig::parse(&out).unwrap();
        assert_eq!(
            again.get("SERVER_HOSTNAME"),
            Some(&json!("quay.example.com"))
        );
        assert_eq!(again.to_value()["NESTED"]["b"], json!(["x", "z"]));
    }

    #[test]
    fn set_overwrites_and_set_default_keeps_user_value() {
        let mut cfg = QuayConfig::parse("A: 1\nB: user\n").unwrap();
        cfg.set("A", json!(2));
        cfg.set_default("B", json!("default"));
        cfg.set_default("C", json!("default"));
        assert_eq!(cfg.get("A"), Some(&json!(2)));
        assert_eq!(cfg.get_str("B"), Some("user"));
        assert_eq!(cfg.get_str("C"), Some("default"));
        let out = cfg.to_yaml();
        assert!(out.contains("A: 2"));
        assert!(!out.contains("A: 1"));
    }

    #[test]
    fn empty_and_invalid_documents() {
        assert_eq!(QuayConfig::parse("").unwrap(), QuayConfig::default());
        assert_eq!(
            QuayConfig::parse("# only a comment\n").unwrap(),
            QuayConfig::default()
        );
        assert!(matches!(
            QuayConfig::parse("- a\n- b\n"),
            Err(QuayConfigError::NotAMapping(_))
        ));
        assert!(matches!(
            QuayConfig::parse("A: [unclosed\n"),
            Err(QuayConfigError::Yaml(_))
        ));
    }

    /// Each entry emitted as a YAML document of its own.
    fn emitted_one_by_one(entries: &serde_json::Map<String, Value>) -> Vec<String> {
        entries
            .iter()
            .map(|(k, v)| {
                let mut one = serde_json::Map::new();
                one.insert(k.clone(), v.clone());
                serde_saphyr::to_string(&Value::Object(one)).unwrap()
            })
            .collect()
    }

    #[test]
    fn entries_emitted_together_are_byte_for_byte_those_emitted_alone() {
        let entries: serde_json::Map<String, Value> = json!({
            "A_LIST": ["x", "y: z", 1, true, null, {"k": "v", "n": [1, 2]}],
            "B_MAP": {"nested": {"deeper": "0443", "empty": {}, "none": []}, "s": "yes"},
            "C_MULTILINE": "line one\nline two\n\nafter a blank\n",
            "D_NUMBERS": [0.5, 1e21, -3, 443],
            "E_ODD_STRINGS": ["", " padded ", "#hash", "- dash", "null", "true", "1.0", "é ü", "a: b"],
            "F_EMPTY_MAP": {},
            "G_EMPTY_LIST": [],
            "key with spaces": "v",
            "\"quoted\"": 1,
        })
        .as_object()
        .unwrap()
        .clone();
        let alone = emitted_one_by_one(&entries);
        let borrowed: Vec<(&str, &Value)> = entries.iter().map(|(k, v)| (k.as_str(), v)).collect();
        assert_eq!(emit_entries(&borrowed).parts().collect::<Vec<_>>(), alone);
        // And for the base defaults and field groups a render sets.
        let mut cfg = QuayConfig::default();
        for (k, v) in crate::config::field_groups::base_defaults(false) {
            cfg.set(k, v);
        }
        let fresh: serde_json::Map<String, Value> = cfg
            .entries
            .iter()
            .map(|(k, e)| (k.clone(), e.value().clone()))
            .collect();
        let alone = emitted_one_by_one(&fresh);
        let borrowed: Vec<(&str, &Value)> = fresh.iter().map(|(k, v)| (k.as_str(), v)).collect();
        let emitted = emit_entries(&borrowed);
        assert_eq!(emitted.parts().collect::<Vec<_>>(), alone);
        let all = serde_saphyr::to_string(&Value::Object(fresh.clone())).unwrap();
        assert_eq!(
            emitted.all, all,
            "the base defaults take the one-run path, and borrowed entries emit as the JSON object does"
        );
    }

    #[test]
    fn anchors_across_keys_fall_back_to_reencoding() {
        let cfg = QuayConfig::parse("A: &x {h: 1}\nB: *x\n").unwrap();
        let out = cfg.to_yaml();
        let again = QuayConfig::parse(&out).unwrap();
        assert_eq!(again.to_value()["B"], json!({"h": 1}));
    }
}
