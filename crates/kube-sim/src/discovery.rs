//! Discovery (spec §1.2/§1.3): `/version`, legacy `/api`, `/apis`, `/api/v1`, `/apis/<g>/<v>`,
//! and aggregated discovery v2 (only when the Accept header asks for it).

use crate::resources::ResourceDef;
use serde_json::{Value, json};
use std::collections::BTreeMap;

pub const AGGREGATED_V2: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";
pub const AGGREGATED_V2BETA1: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

pub fn version() -> Value {
    json!({
        "major": "1", "minor": "32", "gitVersion": "v1.32.0-kube-sim",
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
        "platform": "linux/amd64"
    })
}

/// Which aggregated-discovery version the Accept header prefers, if any (first match wins,
/// as client-go lists v2 before v2beta1).
pub fn wants_aggregated(accept: &str) -> Option<&'static str> {
    for part in accept.split(',') {
        let p: String = part.chars().filter(|c| !c.is_whitespace()).collect();
        if p.contains("g=apidiscovery.k8s.io") && p.contains("as=APIGroupDiscoveryList") {
            if p.contains("v=v2beta1") {
                return Some("v2beta1");
            }
            if p.contains("v=v2") {
                return Some("v2");
            }
        }
    }
    None
}

pub fn api_versions(addr: &str) -> Value {
    json!({"kind": "APIVersions", "versions": ["v1"],
           "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}]})
}

/// Groups in a stable order: built-in groups first in registration order.
fn groups(resources: &[ResourceDef]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = vec![];
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        let entry = match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some(e) => e,
            None => {
                out.push((r.group.clone(), vec![]));
                out.last_mut().expect("pushed")
            }
        };
        for v in &r.versions {
            if !entry.1.contains(v) {
                entry.1.push(v.clone());
            }
        }
    }
    for (_, vs) in out.iter_mut() {
        vs.sort_by_key(|b| std::cmp::Reverse(version_priority(b)));
    }
    out
}

/// Kubernetes version priority: GA > beta > alpha, higher numbers first.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.trim_start_matches('v');
    let (major, tail) = rest.split_at(
        rest.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let major: u32 = major.parse().unwrap_or(0);
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

pub fn api_group_list(resources: &[ResourceDef]) -> Value {
    let groups: Vec<Value> = groups(resources)
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": versions, "preferredVersion": versions[0].clone()})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

pub fn api_group(resources: &[ResourceDef], group: &str) -> Option<Value> {
    let (g, vs) = groups(resources).into_iter().find(|(g, _)| g == group)?;
    let versions: Vec<Value> = vs
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    Some(
        json!({"kind": "APIGroup", "apiVersion": "v1", "name": g, "versions": versions, "preferredVersion": versions[0].clone()}),
    )
}

/// `APIResourceList` for one group/version, or None if nothing is served there.
pub fn api_resource_list(resources: &[ResourceDef], group: &str, version: &str) -> Option<Value> {
    let served: Vec<&ResourceDef> = resources
        .iter()
        .filter(|r| r.group == group && r.versions.iter().any(|v| v == version))
        .collect();
    if served.is_empty() {
        return None;
    }
    let mut list = vec![];
    for r in served {
        let mut e = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced,
            "kind": r.kind, "verbs": r.verbs(),
        });
        if !r.short_names.is_empty() {
            e["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            e["categories"] = json!(r.categories);
        }
        e["storageVersionHash"] =
            json!(format!("{:x}", hash(&format!("{}/{}", r.group, r.plural))));
        list.push(e);
        if r.status_subresource {
            list.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                             "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if r.scale_subresource {
            list.push(json!({"name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                             "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]}));
        }
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}),
    )
}

fn hash(s: &str) -> u64 {
    s.bytes().fold(1469598103934665603u64, |h, b| {
        (h ^ b as u64).wrapping_mul(1099511628211)
    })
}

/// Aggregated discovery document for the core group (`/api`) or all named groups (`/apis`).
pub fn aggregated(resources: &[ResourceDef], core: bool, version: &str) -> Value {
    let mut items = vec![];
    let group_list: Vec<(String, Vec<String>)> = if core {
        vec![(String::new(), vec!["v1".to_string()])]
    } else {
        groups(resources)
    };
    for (g, vs) in group_list {
        let mut versions = vec![];
        for v in &vs {
            let mut rs = vec![];
            for r in resources
                .iter()
                .filter(|r| r.group == g && r.versions.contains(v))
            {
                let rk = json!({"group": g, "version": v, "kind": r.kind});
                let mut e = json!({
                    "resource": r.plural, "responseKind": rk.clone(),
                    "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
                    "singularResource": r.singular, "verbs": r.verbs(),
                });
                if !r.short_names.is_empty() {
                    e["shortNames"] = json!(r.short_names);
                }
                if !r.categories.is_empty() {
                    e["categories"] = json!(r.categories);
                }
                let mut subs = vec![];
                if r.status_subresource {
                    subs.push(json!({"subresource": "status", "responseKind": rk.clone(), "verbs": ["get", "patch", "update"]}));
                }
                if r.scale_subresource {
                    subs.push(json!({"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]}));
                }
                if !subs.is_empty() {
                    e["subresources"] = json!(subs);
                }
                rs.push(e);
            }
            versions.push(json!({"version": v, "freshness": "Current", "resources": rs}));
        }
        items.push(json!({"metadata": {"name": g}, "versions": versions}));
    }
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": format!("apidiscovery.k8s.io/{version}"), "metadata": {}, "items": items})
}

/// All served group-versions as (path key, group, version), e.g. ("apis/apps/v1", "apps", "v1").
pub fn served_gvs(resources: &[ResourceDef]) -> BTreeMap<String, (String, String)> {
    let mut out = BTreeMap::new();
    out.insert("api/v1".to_string(), (String::new(), "v1".to_string()));
    for r in resources.iter().filter(|r| !r.group.is_empty()) {
        for v in &r.versions {
            out.insert(
                format!("apis/{}/{}", r.group, v),
                (r.group.clone(), v.clone()),
            );
        }
    }
    out
}
