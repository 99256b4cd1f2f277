//! The watch caches of the owned kinds: per kind, the slim form of every object ([`slim_for_cache`]) kept as
//! compact bytes, and the registries a watch event concerns.
//!
//! kube's reflector store keeps each object as a parsed `DynamicObject` (about 5 KiB of heap for 1 KiB of JSON)
//! keyed by an `ObjectRef` that repeats the kind's `ApiResource`, and the resourceVersion predicate keeps one
//! more key per object: with ~46 owned objects per registry that made the operator's memory grow by ~0.37 MiB
//! per registry. Here an object is its serialized slim form, without the name, namespace and resourceVersion
//! its key and entry already hold, parsed again when a reconcile reads it (a few µs; a reconcile reads ~50).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock};

use kube::api::DynamicObject;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use super::context::slim_for_cache;
use crate::api::{QuayRegistry, REGISTRY_LABEL};

/// One cached object: what the watch delivered, slimmed and serialized.
#[derive(Debug, Clone)]
struct Entry {
    resource_version: Box<str>,
    /// Value of the registry label: the registry a change of this object concerns.
    registry: Option<Box<str>>,
    /// The slim object as JSON, without name, namespace and resourceVersion, as [`Codec`] stores it.
    body: Box<[u8]>,
}

/// Key of an object: `namespace/name` (neither may contain a slash), so that a namespace's objects are one range.
fn object_key(namespace: &str, name: &str) -> Box<str> {
    format!("{namespace}/{name}").into_boxed_str()
}

#[derive(Default)]
struct State {
    objects: BTreeMap<Box<str>, Entry>,
    codec: Codec,
    /// A listing in progress (between `Init` and `InitDone`): replaces `objects` when complete.
    listing: Option<BTreeMap<Box<str>, Entry>>,
}

/// The watch cache of one owned kind.
pub struct WatchCache {
    /// The kind as the watch knows it (list items carry no `kind` of their own).
    kind: String,
    state: RwLock<State>,
    /// Becomes true once the first listing is complete.
    ready: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for WatchCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchCache")
            .field("kind", &self.kind)
            .field("len", &self.len())
            .finish()
    }
}

impl WatchCache {
    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            state: Default::default(),
            ready: tokio::sync::watch::Sender::new(false),
        }
    }

    /// A cache filled at once with whole objects (the preview command lists instead of watching). They go
    /// through no slimming: a whole object has no cache markers, which tells readers to compare it in full.
    pub fn from_whole_objects(
        kind: &str,
        objects: impl IntoIterator<Item = DynamicObject>,
    ) -> Self {
        let cache = Self::new(kind);
        {
            let mut state = cache.state.write().expect("watch cache lock");
            for object in objects {
                let (key, entry) = encode(&mut state.codec, object);
                state.objects.insert(key, entry);
            }
        }
        cache.ready.send_replace(true);
        cache
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.state.read().expect("watch cache lock").objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes the cached objects take, approximately (keys, values and the map's nodes).
    pub fn heap_bytes(&self) -> usize {
        let state = self.state.read().expect("watch cache lock");
        state
            .objects
            .iter()
            .map(|(k, e)| {
                k.len()
                    + e.resource_version.len()
                    + e.registry.as_ref().map_or(0, |r| r.len())
                    + e.body.len()
                    // The map's node share of key and entry.
                    + std::mem::size_of::<(Box<str>, Entry)>()
            })
            .sum::<usize>()
            + state.codec.dictionary.as_ref().map_or(0, |d| d.len())
            + state.codec.gathering.capacity()
    }

    /// Waits until the first listing is complete.
    pub async fn wait_until_ready(&self) {
        let mut ready = self.ready.subscribe();
        // The sender lives as long as `self`: the wait cannot fail.
        let _ = ready.wait_for(|r| *r).await;
    }

    /// The cached object `namespace/name`.
    pub fn get(&self, namespace: &str, name: &str) -> Option<DynamicObject> {
        let state = self.state.read().expect("watch cache lock");
        let key = object_key(namespace, name);
        decode(&state.codec, &key, state.objects.get(&key)?)
    }

    /// The registry label of the cached object `namespace/name`, without parsing it.
    pub fn registry_of(&self, namespace: &str, name: &str) -> Option<String> {
        let state = self.state.read().expect("watch cache lock");
        let entry = state.objects.get(&object_key(namespace, name))?;
        entry.registry.as_deref().map(str::to_owned)
    }

    /// Every cached object in `namespace` carrying the label of `registry`.
    pub fn for_registry(&self, namespace: &str, registry: &str) -> Vec<DynamicObject> {
        let state = self.state.read().expect("watch cache lock");
        let start: Box<str> = format!("{namespace}/").into();
        state
            .objects
            .range::<Box<str>, _>((Bound::Included(&start), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(&*start))
            .filter(|(_, e)| e.registry.as_deref() == Some(registry))
            .filter_map(|(k, e)| decode(&state.codec, k, e))
            .collect()
    }

    /// Takes in one watch event; returns the registries whose objects it changed. An object whose
    /// resourceVersion is the cached one changed nothing: after a re-list (410 Expired, API server restart),
    /// unchanged objects cause no reconcile and so no request.
    pub fn apply(&self, event: watcher::Event<DynamicObject>) -> Vec<ObjectRef<QuayRegistry>> {
        let mut state = self.state.write().expect("watch cache lock");
        let state = &mut *state;
        match event {
            watcher::Event::Init => {
                state.listing = Some(BTreeMap::new());
                Vec::new()
            }
            watcher::Event::InitApply(object) => {
                let (key, entry) = self.arrived(&state.objects, &mut state.codec, object);
                state
                    .listing
                    .get_or_insert_default()
                    .insert(key, entry.unwrap_or_else(|existing| existing));
                Vec::new()
            }
            watcher::Event::InitDone => {
                let listed = state.listing.take().unwrap_or_default();
                let old = std::mem::replace(&mut state.objects, listed);
                let mut touched = Vec::new();
                for (key, entry) in &state.objects {
                    match old.get(key) {
                        Some(before) if before.resource_version == entry.resource_version => {}
                        before => {
                            touched.extend(registry_ref(key, entry));
                            touched.extend(before.and_then(|b| registry_ref(key, b)));
                        }
                    }
                }
                for (key, entry) in &old {
                    if !state.objects.contains_key(key) {
                        touched.extend(registry_ref(key, entry));
                    }
                }
                drop(old);
                self.ready.send_replace(true);
                dedup(touched)
            }
            watcher::Event::Apply(object) => {
                let (key, entry) = self.arrived(&state.objects, &mut state.codec, object);
                let Ok(entry) = entry else {
                    return Vec::new();
                };
                let mut touched: Vec<_> = registry_ref(&key, &entry).into_iter().collect();
                if let Some(before) = state.objects.insert(key.clone(), entry) {
                    touched.extend(registry_ref(&key, &before));
                }
                dedup(touched)
            }
            watcher::Event::Delete(object) => {
                let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
                let name = object.metadata.name.as_deref().unwrap_or_default();
                let key = object_key(namespace, name);
                let mut touched = Vec::new();
                if let Some(before) = state.objects.remove(&key) {
                    touched.extend(registry_ref(&key, &before));
                }
                if let Some(registry) = object
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(REGISTRY_LABEL))
                {
                    touched.push(ObjectRef::new(registry).within(namespace));
                }
                dedup(touched)
            }
        }
    }

    /// The entry for an object as it arrived: `Err` with the cached entry when its resourceVersion is the one
    /// cached (nothing changed, nothing to slim), else the object slimmed against the cached version.
    fn arrived(
        &self,
        objects: &BTreeMap<Box<str>, Entry>,
        codec: &mut Codec,
        mut object: DynamicObject,
    ) -> (Box<str>, Result<Entry, Entry>) {
        let key = object_key(
            object.metadata.namespace.as_deref().unwrap_or_default(),
            object.metadata.name.as_deref().unwrap_or_default(),
        );
        let cached = objects.get(&key);
        if let Some(cached) = cached
            && object.metadata.resource_version.as_deref() == Some(&*cached.resource_version)
        {
            return (key, Err(cached.clone()));
        }
        let previous = cached.and_then(|c| decode(codec, &key, c));
        slim_for_cache(&mut object, &self.kind, previous.as_ref());
        let (_, entry) = encode(codec, object);
        (key, Ok(entry))
    }
}

fn registry_ref(key: &str, entry: &Entry) -> Option<ObjectRef<QuayRegistry>> {
    let namespace = key.split_once('/').map_or("", |(ns, _)| ns);
    Some(ObjectRef::new(entry.registry.as_deref()?).within(namespace))
}

fn dedup(mut refs: Vec<ObjectRef<QuayRegistry>>) -> Vec<ObjectRef<QuayRegistry>> {
    refs.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    refs.dedup();
    refs
}

/// Serializes an object without what its key and entry hold.
fn encode(codec: &mut Codec, mut object: DynamicObject) -> (Box<str>, Entry) {
    let meta = &mut object.metadata;
    let key = object_key(
        meta.namespace.take().as_deref().unwrap_or_default(),
        meta.name.take().as_deref().unwrap_or_default(),
    );
    let resource_version = meta
        .resource_version
        .take()
        .unwrap_or_default()
        .into_boxed_str();
    let registry = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(REGISTRY_LABEL))
        .map(|r| r.clone().into_boxed_str());
    let body = codec.compress(serde_json::to_vec(&object).expect("a DynamicObject serializes"));
    (
        key,
        Entry {
            resource_version,
            registry,
            body,
        },
    )
}

fn decode(codec: &Codec, key: &str, entry: &Entry) -> Option<DynamicObject> {
    // Only bytes this cache wrote: an error here is a bug, reported, and the object reads as missing.
    let parsed = codec
        .expand(&entry.body)
        .and_then(|json| serde_json::from_slice(&json).map_err(|e| e.to_string()));
    let mut object: DynamicObject = match parsed {
        Ok(object) => object,
        Err(e) => {
            tracing::error!(key, error = %e, "a cached object does not read back");
            return None;
        }
    };
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    let meta = &mut object.metadata;
    if !namespace.is_empty() {
        meta.namespace = Some(namespace.to_owned());
    }
    meta.name = Some(name.to_owned());
    if !entry.resource_version.is_empty() {
        meta.resource_version = Some(entry.resource_version.to_string());
    }
    Some(object)
}

/// Size of the dictionary a cache gathers from the first objects of its kind. Objects of one kind share most of
/// their keys, labels and shapes, so compressed against earlier ones a slim object takes about a third of its
/// JSON. (LZ4 reaches back 64 KiB.)
const DICTIONARY_BYTES: usize = 16 * 1024;

/// How a cache stores serialized objects: the first ones as they are, gathered into a dictionary; once that is
/// full, every object compressed with LZ4 against it. The dictionary never changes afterwards, so that every
/// stored object can be expanded. First byte of a body: 0 plain, 1 compressed.
#[derive(Default)]
struct Codec {
    dictionary: Option<Box<[u8]>>,
    gathering: Vec<u8>,
}

impl Codec {
    fn compress(&mut self, json: Vec<u8>) -> Box<[u8]> {
        let mut body;
        match &self.dictionary {
            Some(dictionary) => {
                let compressed =
                    lz4_flex::block::compress_prepend_size_with_dict(&json, dictionary);
                body = Vec::with_capacity(compressed.len() + 1);
                body.push(1);
                body.extend_from_slice(&compressed);
            }
            None => {
                self.gathering.extend_from_slice(&json);
                if self.gathering.len() >= DICTIONARY_BYTES {
                    let gathered = std::mem::take(&mut self.gathering);
                    let start = gathered.len().saturating_sub(60 * 1024);
                    self.dictionary = Some(gathered[start..].into());
                }
                body = Vec::with_capacity(json.len() + 1);
                body.push(0);
                body.extend_from_slice(&json);
            }
        }
        body.into_boxed_slice()
    }

    fn expand<'a>(&self, body: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, String> {
        match body.split_first() {
            Some((0, json)) => Ok(json.into()),
            Some((1, compressed)) => {
                let dictionary = self.dictionary.as_deref().ok_or("no dictionary")?;
                lz4_flex::block::decompress_size_prepended_with_dict(compressed, dictionary)
                    .map(Into::into)
                    .map_err(|e| e.to_string())
            }
            _ => Err("unknown encoding".to_owned()),
        }
    }
}

/// The watch caches of a scope, by `(group, kind)`.
pub type Caches = std::collections::HashMap<(String, String), Arc<WatchCache>>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret(namespace: &str, name: &str, registry: &str, version: &str) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": version, "uid": format!("u-{name}"),
                "labels": {REGISTRY_LABEL: registry}},
            "type": "Opaque", "data": {"k": "dg=="},
        }))
        .unwrap()
    }

    fn reg(namespace: &str, name: &str) -> ObjectRef<QuayRegistry> {
        ObjectRef::new(name).within(namespace)
    }

    fn list(cache: &WatchCache, objects: Vec<DynamicObject>) -> Vec<ObjectRef<QuayRegistry>> {
        assert!(cache.apply(watcher::Event::Init).is_empty());
        for o in objects {
            assert!(cache.apply(watcher::Event::InitApply(o)).is_empty());
        }
        cache.apply(watcher::Event::InitDone)
    }

    #[test]
    fn objects_read_back_slimmed_with_their_key() {
        let cache = WatchCache::new("Secret");
        list(
            &cache,
            vec![secret("ns", "reg-quay-config-secret-a", "reg", "5")],
        );
        let object = cache.get("ns", "reg-quay-config-secret-a").unwrap();
        assert_eq!(
            object.metadata.name.as_deref(),
            Some("reg-quay-config-secret-a")
        );
        assert_eq!(object.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(object.metadata.resource_version.as_deref(), Some("5"));
        assert_eq!(
            object.metadata.uid.as_deref(),
            Some("u-reg-quay-config-secret-a")
        );
        assert!(object.data.get("data").is_none(), "slimmed: {object:?}");
        assert!(super::super::context::cache_markers(&object).is_some());
        assert!(cache.get("other", "reg-quay-config-secret-a").is_none());
    }

    #[tokio::test]
    async fn ready_after_the_first_listing() {
        let cache = Arc::new(WatchCache::new("Secret"));
        cache.apply(watcher::Event::Init);
        cache.apply(watcher::Event::InitApply(secret("ns", "a", "reg", "1")));
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_until_ready().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        assert!(
            cache.get("ns", "a").is_none(),
            "a listing is invisible until done"
        );
        cache.apply(watcher::Event::InitDone);
        waiting.await.unwrap();
        assert!(cache.get("ns", "a").is_some());
    }

    #[test]
    fn first_listing_triggers_every_registry_once() {
        let cache = WatchCache::new("Secret");
        let touched = list(
            &cache,
            vec![
                secret("ns", "a", "reg", "1"),
                secret("ns", "b", "reg", "2"),
                secret("ns2", "a", "reg", "3"),
            ],
        );
        assert_eq!(touched, vec![reg("ns", "reg"), reg("ns2", "reg")]);
    }

    #[test]
    fn relist_replaces_the_contents_and_only_changes_trigger() {
        let cache = WatchCache::new("Secret");
        list(
            &cache,
            vec![
                secret("ns", "a", "r1", "1"),
                secret("ns", "b", "r2", "2"),
                secret("ns", "c", "r3", "3"),
                secret("ns", "d", "r4", "4"),
            ],
        );
        // a unchanged, b changed, c gone, e new.
        let touched = list(
            &cache,
            vec![
                secret("ns", "a", "r1", "1"),
                secret("ns", "b", "r2", "7"),
                secret("ns", "d", "r4", "4"),
                secret("ns", "e", "r5", "8"),
            ],
        );
        assert_eq!(
            touched,
            vec![reg("ns", "r2"), reg("ns", "r3"), reg("ns", "r5")]
        );
        assert!(cache.get("ns", "c").is_none());
        assert_eq!(
            cache
                .get("ns", "b")
                .unwrap()
                .metadata
                .resource_version
                .as_deref(),
            Some("7")
        );
        assert_eq!(cache.len(), 4);
        // The same listing again: nothing to do.
        let touched = list(
            &cache,
            vec![
                secret("ns", "a", "r1", "1"),
                secret("ns", "b", "r2", "7"),
                secret("ns", "d", "r4", "4"),
                secret("ns", "e", "r5", "8"),
            ],
        );
        assert!(touched.is_empty(), "{touched:?}");
    }

    #[test]
    fn an_unchanged_resource_version_triggers_nothing() {
        let cache = WatchCache::new("Secret");
        list(&cache, vec![secret("ns", "a", "reg", "1")]);
        assert!(
            cache
                .apply(watcher::Event::Apply(secret("ns", "a", "reg", "1")))
                .is_empty()
        );
        assert_eq!(
            cache.apply(watcher::Event::Apply(secret("ns", "a", "reg", "2"))),
            vec![reg("ns", "reg")]
        );
        assert_eq!(
            cache.apply(watcher::Event::Apply(secret("ns", "new", "reg2", "3"))),
            vec![reg("ns", "reg2")]
        );
    }

    #[test]
    fn a_relabelled_object_triggers_both_registries() {
        let cache = WatchCache::new("Secret");
        list(&cache, vec![secret("ns", "a", "old", "1")]);
        assert_eq!(
            cache.apply(watcher::Event::Apply(secret("ns", "a", "new", "2"))),
            vec![reg("ns", "new"), reg("ns", "old")]
        );
    }

    #[test]
    fn deletion_removes_and_triggers() {
        let cache = WatchCache::new("Secret");
        list(
            &cache,
            vec![secret("ns", "a", "reg", "1"), secret("ns", "b", "reg", "2")],
        );
        assert_eq!(
            cache.apply(watcher::Event::Delete(secret("ns", "a", "reg", "3"))),
            vec![reg("ns", "reg")]
        );
        assert!(cache.get("ns", "a").is_none());
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn for_registry_reads_one_namespace_and_one_label() {
        let cache = WatchCache::new("Secret");
        list(
            &cache,
            vec![
                secret("ns", "a", "reg", "1"),
                secret("ns", "b", "other", "2"),
                secret("ns-2", "c", "reg", "3"),
                secret("n", "d", "reg", "4"),
                secret("ns", "e", "reg", "5"),
            ],
        );
        let names: Vec<_> = cache
            .for_registry("ns", "reg")
            .into_iter()
            .map(|o| o.metadata.name.unwrap())
            .collect();
        assert_eq!(names, vec!["a", "e"]);
        assert_eq!(cache.registry_of("ns", "b").as_deref(), Some("other"));
    }

    #[test]
    fn objects_past_the_dictionary_are_compressed_and_read_back() {
        let cache = WatchCache::new("ConfigMap");
        let configmap = |i: usize, version: &str| -> DynamicObject {
            serde_json::from_value(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("reg{i}-quay-config-editor-credentials"), "namespace": format!("ns-{i}"),
                    "resourceVersion": version, "uid": format!("00000000-0000-0000-0000-{i:012}"),
                    "labels": {REGISTRY_LABEL: format!("reg{i}"), "app.kubernetes.io/managed-by": "quay-operator",
                        "quay-component": "quay-config-editor"},
                    "annotations": {"quay-operator.rs/applied-hash": format!("{i:064}")},
                    "ownerReferences": [{"apiVersion": "quay.redhat.com/v1", "kind": "QuayRegistry",
                        "name": format!("reg{i}"), "uid": format!("11111111-0000-0000-0000-{i:012}"),
                        "controller": true, "blockOwnerDeletion": true}]},
                "data": {"password": "x"},
            }))
            .unwrap()
        };
        let objects: Vec<_> = (0..200).map(|i| configmap(i, "1")).collect();
        let json: usize = objects
            .iter()
            .map(|o| serde_json::to_vec(o).unwrap().len())
            .sum();
        list(&cache, objects);
        for i in [0, 17, 199] {
            let object = cache
                .get(
                    &format!("ns-{i}"),
                    &format!("reg{i}-quay-config-editor-credentials"),
                )
                .unwrap();
            assert_eq!(
                object.metadata.uid,
                Some(format!("00000000-0000-0000-0000-{i:012}"))
            );
            assert_eq!(
                object.metadata.owner_references.unwrap()[0].name,
                format!("reg{i}")
            );
        }
        // A change after the dictionary was made, and the previous version read back for its markers.
        cache.apply(watcher::Event::Apply(configmap(150, "2")));
        let changed = cache
            .get("ns-150", "reg150-quay-config-editor-credentials")
            .unwrap();
        assert_eq!(changed.metadata.resource_version.as_deref(), Some("2"));
        assert!(
            cache.heap_bytes() * 5 < json * 3,
            "{} bytes cached for {json} bytes of JSON",
            cache.heap_bytes()
        );
    }

    #[test]
    fn markers_carry_over_from_the_cached_version() {
        // Another writer changed the content without a managedFields entry: the previous cached version, parsed
        // back from its bytes, tells that the content changed.
        let cache = WatchCache::new("Secret");
        list(&cache, vec![secret("ns", "a", "reg", "1")]);
        let before = super::super::context::cache_markers(&cache.get("ns", "a").unwrap()).unwrap();
        let mut changed = secret("ns", "a", "reg", "2");
        changed.data["type"] = json!("Other");
        cache.apply(watcher::Event::Apply(changed));
        let after = super::super::context::cache_markers(&cache.get("ns", "a").unwrap()).unwrap();
        assert_ne!(before.content, after.content);
        assert!(after.written_by_others);
    }
}
