//! metav1 `Status` error bodies (spec §6). Every non-2xx answer of the simulator is built from
//! an [`ApiError`], so the `reason`/`code` pairs that kube-rs and client-go key on are in one place.

use serde_json::{Value, json};

/// An API error, rendered as a `Status` object. The variants mirror apimachinery's
/// `pkg/api/errors` constructors so messages match a real cluster word for word.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    #[error("{resource} \"{name}\" not found")]
    NotFound {
        resource: String,
        group: String,
        name: String,
    },
    #[error("{resource} \"{name}\" already exists")]
    AlreadyExists {
        resource: String,
        group: String,
        name: String,
    },
    #[error("Operation cannot be fulfilled on {resource} \"{name}\": {msg}")]
    Conflict {
        resource: String,
        group: String,
        name: String,
        msg: String,
    },
    /// Server-side apply conflict: only `causes` in details (apimachinery `NewApplyConflict`).
    #[error("{message}")]
    ApplyConflict {
        message: String,
        causes: Vec<(String, String)>,
    },
    /// 422 with field causes: `(reason, field, message)`.
    #[error("{kind} \"{name}\" is invalid: {summary}")]
    Invalid {
        kind: String,
        group: String,
        name: String,
        summary: String,
        causes: Vec<(String, String, String)>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{message}")]
    Forbidden {
        message: String,
        cause: Option<String>,
    },
    #[error("{0}")]
    Expired(String),
    #[error("{0}")]
    Internal(String),
    #[error("{0}")]
    TooManyRequests(String),
    #[error("{0}")]
    ServiceUnavailable(String),
    #[error("{0}")]
    Timeout(String),
    /// Watch cache: the requested resourceVersion is newer than anything stored.
    #[error("Timeout: Too large resource version: {requested}, current: {current}")]
    TooLargeResourceVersion { requested: u64, current: u64 },
}

pub type ApiResult<T> = Result<T, ApiError>;

fn qualified(resource: &str, group: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl ApiError {
    pub fn not_found(resource: &str, group: &str, name: &str) -> Self {
        ApiError::NotFound {
            resource: resource.into(),
            group: group.into(),
            name: name.into(),
        }
    }
    pub fn already_exists(resource: &str, group: &str, name: &str) -> Self {
        ApiError::AlreadyExists {
            resource: resource.into(),
            group: group.into(),
            name: name.into(),
        }
    }
    pub fn conflict_modified(resource: &str, group: &str, name: &str) -> Self {
        ApiError::Conflict {
            resource: resource.into(),
            group: group.into(),
            name: name.into(),
            msg: "the object has been modified; please apply your changes to the latest version and try again".into(),
        }
    }
    /// One-cause 422, e.g. `invalid("ConfigMap", "", "x", "FieldValueForbidden", "metadata.finalizers", "Forbidden: ...")`.
    pub fn invalid(
        kind: &str,
        group: &str,
        name: &str,
        reason: &str,
        field: &str,
        detail: &str,
    ) -> Self {
        ApiError::Invalid {
            kind: kind.into(),
            group: group.into(),
            name: name.into(),
            summary: format!("{field}: {detail}"),
            causes: vec![(reason.into(), field.into(), detail.into())],
        }
    }
    /// Generic 422 without an object name (query-parameter validation).
    pub fn invalid_param(field: &str, detail: &str, reason: &str) -> Self {
        ApiError::Invalid {
            kind: String::new(),
            group: String::new(),
            name: String::new(),
            summary: format!("{field}: {detail}"),
            causes: vec![(reason.into(), field.into(), detail.into())],
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. }
            | ApiError::Conflict { .. }
            | ApiError::ApplyConflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Forbidden { .. } => 403,
            ApiError::Expired(_) => 410,
            ApiError::Internal(_) => 500,
            ApiError::TooManyRequests(_) => 429,
            ApiError::ServiceUnavailable(_) => 503,
            ApiError::Timeout(_) | ApiError::TooLargeResourceVersion { .. } => 504,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } | ApiError::ApplyConflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Forbidden { .. } => "Forbidden",
            ApiError::Expired(_) => "Expired",
            ApiError::Internal(_) => "InternalError",
            ApiError::TooManyRequests(_) => "TooManyRequests",
            ApiError::ServiceUnavailable(_) => "ServiceUnavailable",
            ApiError::Timeout(_) | ApiError::TooLargeResourceVersion { .. } => "Timeout",
        }
    }

    /// The `Status` body, as apimachinery renders it.
    pub fn to_status(&self) -> Value {
        let mut message = self.to_string();
        let mut details: Option<Value> = None;
        match self {
            ApiError::NotFound { resource, .. } if resource.is_empty() => {
                // Unknown path / resource type: the apiserver's generic 404.
                message = "the server could not find the requested resource".into();
                details = Some(json!({}));
            }
            ApiError::NotFound {
                resource,
                group,
                name,
            }
            | ApiError::AlreadyExists {
                resource,
                group,
                name,
            } => {
                message = match self {
                    ApiError::NotFound { .. } => {
                        format!("{} \"{}\" not found", qualified(resource, group), name)
                    }
                    _ => format!("{} \"{}\" already exists", qualified(resource, group), name),
                };
                details = Some(details_obj(name, group, resource));
            }
            ApiError::Conflict {
                resource,
                group,
                name,
                msg,
            } => {
                message = format!(
                    "Operation cannot be fulfilled on {} \"{}\": {}",
                    qualified(resource, group),
                    name,
                    msg
                );
                details = Some(details_obj(name, group, resource));
            }
            ApiError::ApplyConflict { causes, .. } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(m, f)| json!({"reason": "FieldManagerConflict", "message": m, "field": f}))
                    .collect();
                details = Some(json!({"causes": causes}));
            }
            ApiError::Invalid {
                kind,
                group,
                name,
                summary,
                causes,
            } => {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(r, f, m)| json!({"reason": r, "message": m, "field": f}))
                    .collect();
                if kind.is_empty() {
                    message = summary.clone();
                    details = Some(json!({"causes": causes}));
                } else {
                    let gk = if group.is_empty() {
                        kind.clone()
                    } else {
                        format!("{kind}.{group}")
                    };
                    message = format!("{gk} \"{name}\" is invalid: {summary}");
                    let mut d = json!({"name": name, "kind": kind, "causes": causes});
                    if !group.is_empty() {
                        d["group"] = json!(group);
                    }
                    details = Some(d);
                }
            }
            ApiError::TooLargeResourceVersion { .. } => {
                details = Some(
                    json!({"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                                      "retryAfterSeconds": 1}),
                );
            }
            ApiError::Forbidden { cause: Some(c), .. } => {
                details = Some(json!({"causes": [{"reason": c, "message": message}]}));
            }
            _ => {}
        }
        let mut st = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": self.reason(),
        });
        if let Some(d) = details {
            st["details"] = d;
        }
        st["code"] = json!(self.code());
        st
    }
}

fn details_obj(name: &str, group: &str, resource: &str) -> Value {
    let mut d = json!({"name": name});
    if !group.is_empty() {
        d["group"] = json!(group);
    }
    d["kind"] = json!(resource);
    d
}

/// Errors of the in-process test API and the binary (not HTTP answers).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error("api: {0}")]
    Api(#[from] ApiError),
    #[error("yaml: {0}")]
    Yaml(String),
    #[error("kube config: {0}")]
    Kube(String),
}
