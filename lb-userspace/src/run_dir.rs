//! `/run/weir`: where weir daemons keep their run-time state, one name for every module that
//! puts something there. What lives there, per daemon or per network namespace:
//!
//! - `<iface>:<netns inode>.lock` and `….note`: a `weir run --iface` daemon's lock and its
//!   host-side state for `weir stats` (`crate::xdp::pins`; the stem, `crate::iface_id`, names
//!   the interface of one namespace; an earlier weir named them `<iface>.lock`);
//! - `<iface>:<netns inode>.sock`, `admin.sock`, `admin-<netns inode>.sock`: admin sockets
//!   (`crate::admin::path`);
//! - `<iface>:<netns inode>.health.json`, `health-<netns inode>.json`: health state files
//!   (`crate::health::file`);
//! - `sysctl-<netns inode>`, `sysctl-<netns inode>.<pid>.hold`, `sysctl-<netns inode>.mutex`:
//!   the host sysctls the namespace's daemons changed and need (`crate::sysctl`);
//! - `status-<pid>.json`: the configuration generation in force (`crate::reload`).

/// The directory.
pub const DIR: &str = "/run/weir";
