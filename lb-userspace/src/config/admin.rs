//! `[admin]`: the admin API's Unix socket (`docs/admin-api.md`).

use std::path::PathBuf;

use serde::Deserialize;

use super::FieldProblem;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// The socket's path. Unset: the default for this daemon (`crate::admin::path`):
    /// `/run/weir/<iface>.sock` with `--iface`, else `/run/weir/admin.sock` in pid 1's network
    /// namespace and `/run/weir/admin-<netns inode>.sock` in any other.
    pub socket: Option<PathBuf>,
    /// `false`: no admin socket (the CLI verbs on it then find no daemon). Default `true`.
    pub enabled: bool,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            socket: None,
            enabled: true,
        }
    }
}

/// The longest path a `sockaddr_un` holds (108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

impl AdminSettings {
    pub fn validate(&self, problems: &mut Vec<FieldProblem>) {
        let Some(p) = &self.socket else { return };
        let len = p.as_os_str().len();
        if !p.is_absolute() {
            problems.push(FieldProblem::new(
                "admin.socket",
                "an absolute path (the CLI must find it from any directory)",
            ));
        } else if len > MAX_SOCKET_PATH {
            problems.push(FieldProblem::new(
                "admin.socket",
                format!("{len} bytes: a Unix socket path has at most {MAX_SOCKET_PATH}"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(s: AdminSettings) -> Vec<String> {
        let mut p = Vec::new();
        s.validate(&mut p);
        p.into_iter()
            .map(|p| format!("{}: {}", p.path, p.message))
            .collect()
    }

    #[test]
    fn relative_and_overlong_paths_are_refused() {
        let rel = AdminSettings {
            socket: Some("run/admin.sock".into()),
            ..Default::default()
        };
        assert!(problems(rel)[0].contains("absolute"));
        let long = AdminSettings {
            socket: Some(format!("/{}", "a".repeat(200)).into()),
            ..Default::default()
        };
        assert!(problems(long)[0].contains("at most 107"));
        let ok = AdminSettings {
            socket: Some("/run/weir/x.sock".into()),
            ..Default::default()
        };
        assert!(problems(ok).is_empty());
    }
}
