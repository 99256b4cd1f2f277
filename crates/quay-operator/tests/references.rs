//! Every rendered object that points at another one points at something the render also produced: pods mount
//! Secrets, ConfigMaps and claims that exist, Services and Deployments select the pods they are meant for, Routes
//! reach a named port of their Service, autoscalers scale a rendered Deployment. A typo in a name breaks a
//! rollout on the cluster; here it breaks a test.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;

/// Secrets and ConfigMaps that are not rendered on purpose (optional, or owned by the user).
fn external(kind: &str, name: &str, optional: bool) -> bool {
    optional || (kind == "Secret" && name.starts_with("postgresql-"))
}

/// Every `(json path, object)` below `value`.
fn walk<'a>(value: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) => {
            out.push((path.clone(), value));
            for (k, v) in map {
                walk(v, format!("{path}.{k}"), out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(v, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or_default()
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    selector
        .as_object()
        .is_some_and(|s| s.iter().all(|(k, v)| &labels[k] == v))
}

#[test]
fn rendered_objects_only_reference_rendered_objects() {
    for name in common::example_names() {
        let inputs = common::load_example(&name);
        let rendered = quay_operator::render::render(&inputs.render_input(common::fixed_now()))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let docs: Vec<Value> = rendered.objects.iter().map(|o| o.to_json()).collect();
        let present: BTreeSet<(String, String)> = docs
            .iter()
            .map(|d| {
                (
                    str_of(d, "kind").to_owned(),
                    str_of(&d["metadata"], "name").to_owned(),
                )
            })
            .collect();
        let has = |kind: &str, n: &str| present.contains(&(kind.to_owned(), n.to_owned()));
        let mut problems = Vec::new();
        let pod_labels: Vec<&Value> = docs
            .iter()
            .filter(|d| matches!(str_of(d, "kind"), "Deployment" | "Job"))
            .map(|d| &d["spec"]["template"]["metadata"]["labels"])
            .collect();

        for doc in &docs {
            let kind = str_of(doc, "kind");
            let object = format!("{kind} {}", str_of(&doc["metadata"], "name"));
            match kind {
                "Deployment" | "Job" => {
                    let template = &doc["spec"]["template"];
                    let mut nodes = Vec::new();
                    walk(template, String::new(), &mut nodes);
                    for (path, node) in nodes {
                        let optional = node["optional"].as_bool().unwrap_or(false);
                        let refs: &[(&str, &str, &str)] = &[
                            (".secret", "Secret", "name"),
                            (".secretKeyRef", "Secret", "name"),
                            (".secretRef", "Secret", "name"),
                            (".configMap", "ConfigMap", "name"),
                            (".configMapKeyRef", "ConfigMap", "name"),
                            (".configMapRef", "ConfigMap", "name"),
                            (
                                ".persistentVolumeClaim",
                                "PersistentVolumeClaim",
                                "claimName",
                            ),
                        ];
                        for (suffix, ref_kind, key) in refs {
                            // Volume sources name Secrets by `secretName` (checked below).
                            if path.ends_with(suffix) && node.get(key).is_some() {
                                let target = str_of(node, key);
                                if !has(ref_kind, target) && !external(ref_kind, target, optional) {
                                    problems
                                        .push(format!("{object}{path}: no {ref_kind} {target}"));
                                }
                            }
                        }
                        if let Some(secret) = node["secretName"].as_str()
                            && !has("Secret", secret)
                            && !external("Secret", secret, optional)
                        {
                            problems.push(format!("{object}{path}: no Secret {secret}"));
                        }
                    }
                    let sa = str_of(&template["spec"], "serviceAccountName");
                    if !sa.is_empty() && !has("ServiceAccount", sa) {
                        problems.push(format!("{object}: no ServiceAccount {sa}"));
                    }
                    if kind == "Deployment"
                        && !labels_match(
                            &doc["spec"]["selector"]["matchLabels"],
                            &template["metadata"]["labels"],
                        )
                    {
                        problems.push(format!("{object}: selector does not match its pods"));
                    }
                }
                "Service" => {
                    let selector = &doc["spec"]["selector"];
                    if !pod_labels.iter().any(|l| labels_match(selector, l)) {
                        problems.push(format!("{object}: selects no rendered pods ({selector})"));
                    }
                }
                "Route" => {
                    let service = str_of(&doc["spec"]["to"], "name");
                    let port = str_of(&doc["spec"]["port"], "targetPort");
                    let ports = docs
                        .iter()
                        .find(|d| {
                            str_of(d, "kind") == "Service"
                                && str_of(&d["metadata"], "name") == service
                        })
                        .map(|s| s["spec"]["ports"].clone());
                    match ports {
                        None => problems.push(format!("{object}: no Service {service}")),
                        Some(ports) => {
                            let named = ports
                                .as_array()
                                .into_iter()
                                .flatten()
                                .any(|p| str_of(p, "name") == port);
                            if !named {
                                problems.push(format!(
                                    "{object}: Service {service} has no port {port}"
                                ));
                            }
                        }
                    }
                }
                "HorizontalPodAutoscaler" => {
                    let target = str_of(&doc["spec"]["scaleTargetRef"], "name");
                    if !has("Deployment", target) {
                        problems.push(format!("{object}: no Deployment {target}"));
                    }
                }
                _ => {}
            }
        }
        assert!(problems.is_empty(), "{name}:\n{}", problems.join("\n"));
    }
}
