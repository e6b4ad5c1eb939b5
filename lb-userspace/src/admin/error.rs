//! The admin API's errors: an HTTP status, a stable `code` (AWS ELB's names where ELB has one)
//! and a human `message`, sent as `{"error": {"code": …, "message": …}}`.

use serde::{Deserialize, Serialize};

/// One error answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// For `InvalidConfiguration`: every problem of the file, located.
    pub issues: Vec<Issue>,
    /// For `MethodNotAllowed`: the methods the endpoint takes, its `Allow` header.
    pub allow: Option<&'static str>,
}

/// One located configuration problem (`file:line:column: field: message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issue {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl From<&crate::config::ConfigIssue> for Issue {
    fn from(i: &crate::config::ConfigIssue) -> Issue {
        Issue {
            file: i.file.clone(),
            line: i.line,
            column: i.column,
            field: i.field.clone(),
            message: i.message.clone(),
        }
    }
}

/// The JSON body of an error, as sent and as read back by the CLI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issues: Vec<Issue>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            issues: Vec::new(),
            allow: None,
        }
    }

    pub fn not_found(path: &str) -> ApiError {
        Self::new(
            404,
            "NotFound",
            format!("no such endpoint `{path}` (see docs/admin-api.md; paths start with /v1/)"),
        )
    }

    pub fn method_not_allowed(method: &str, path: &str, allowed: &'static str) -> ApiError {
        ApiError {
            allow: Some(allowed),
            ..Self::new(
                405,
                "MethodNotAllowed",
                format!("{method} is not allowed on {path} (allowed: {allowed})"),
            )
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        Self::new(400, "InvalidRequest", message)
    }

    pub fn too_large(limit: usize) -> ApiError {
        Self::new(
            413,
            "PayloadTooLarge",
            format!("request body over {limit} bytes"),
        )
    }

    pub fn target_group_not_found(name: &str) -> ApiError {
        Self::new(
            404,
            "TargetGroupNotFound",
            format!("no target group named `{name}`"),
        )
    }

    pub fn listener_not_found(port: &str) -> ApiError {
        Self::new(
            404,
            "ListenerNotFound",
            format!("no listener on port {port}"),
        )
    }

    /// A target group that exists but has no `[target_group.discovery]`.
    pub fn discovery_not_configured(group: &str) -> ApiError {
        Self::new(
            404,
            "DiscoveryNotConfigured",
            format!(
                "target group `{group}` has no DNS discovery ([target_group.discovery]): its targets are the file's and those registered at run time"
            ),
        )
    }

    pub fn invalid_target(message: impl Into<String>) -> ApiError {
        Self::new(400, "InvalidTarget", message)
    }

    pub fn not_implemented(what: &str) -> ApiError {
        Self::new(
            501,
            "NotImplemented",
            format!("{what} is not available in this weir yet; nothing was changed"),
        )
    }

    pub fn access_denied(message: impl Into<String>) -> ApiError {
        Self::new(403, "AccessDenied", message)
    }

    pub fn invalid_configuration(message: impl Into<String>, issues: Vec<Issue>) -> ApiError {
        ApiError {
            issues,
            ..Self::new(400, "InvalidConfiguration", message)
        }
    }

    pub fn unavailable(message: impl Into<String>) -> ApiError {
        Self::new(503, "ServiceUnavailable", message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        Self::new(500, "InternalError", message)
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_string(),
                message: self.message.clone(),
                issues: self.issues.clone(),
            },
        }
    }
}
