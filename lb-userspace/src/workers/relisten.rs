//! Listeners by reload, the control plane's side: which listeners a new configuration adds and
//! removes (a listener is its port: ports are unique in a file, and a kept port keeps its
//! address, `lb_l7::generation::unchangeable`), and the added ones' sockets bound *before* the
//! generation is committed, so a port that cannot be bound (another process holds it, an
//! address the host does not have) refuses the reload with its location instead of making a
//! generation the workers cannot serve. The supervisor applies the rest
//! (`Supervisor::reconfigure`, through `ControlHandle::set_generation`).

use std::net::SocketAddr;

use super::{control::Listeners, sockets};
use crate::config::Config;

/// The listeners' addresses of a configuration, in its order.
pub fn addrs(cfg: &Config) -> Vec<SocketAddr> {
    cfg.l7
        .listener
        .iter()
        .map(lb_l7::config::Listener::socket_addr)
        .collect()
}

/// The listeners of `new` that `running` does not have (by port), with their index in `new`.
pub fn added(running: &[SocketAddr], new: &[SocketAddr]) -> Vec<(usize, SocketAddr)> {
    new.iter()
        .enumerate()
        .filter(|(_, a)| !running.iter().any(|r| r.port() == a.port()))
        .map(|(i, a)| (i, *a))
        .collect()
}

/// What a reload from `running` to `new` does to the listeners: `None` when they stay the same
/// (in the same order); otherwise the new order and the added listeners' sockets, bound here.
/// A listener that cannot be bound is `(field, reason)` for the located refusal.
pub fn prepare(running: &Config, new: &Config) -> Result<Option<Listeners>, (String, String)> {
    let (old, order) = (addrs(running), addrs(new));
    if old == order {
        return Ok(None);
    }
    let workers = new.workers.resolved_count();
    let mut groups = Vec::new();
    for (i, _) in added(&old, &order) {
        // The slot is the supervisor's to choose (a free one).
        let g = sockets::bind_group(&new.l7.listener[i], workers, 0)
            .map_err(|e| (format!("listener[{i}]"), format!("cannot listen: {e:#}")))?;
        groups.push(g);
    }
    Ok(Some(Listeners {
        order,
        added: groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_listener_is_its_port() {
        let running = [a("127.0.0.1:80"), a("127.0.0.1:81")];
        assert!(added(&running, &[a("127.0.0.1:81"), a("127.0.0.1:80")]).is_empty());
        assert_eq!(
            added(&running, &[a("127.0.0.1:81"), a("0.0.0.0:82")]),
            vec![(1, a("0.0.0.0:82"))]
        );
    }

    #[test]
    fn a_port_that_cannot_be_bound_refuses_the_reload_and_binds_nothing() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let base = "[workers]\ncount = 2\n[[listener]]\naddress = \"127.0.0.1\"\nport = 1\n\
            default_action = { type = \"fixed-response\", status_code = 200 }\n";
        let running = Config::parse("a.toml", base).unwrap();
        let text = format!(
            "{base}[[listener]]\naddress = \"127.0.0.1\"\nport = {port}\n\
             default_action = {{ type = \"fixed-response\", status_code = 200 }}\n"
        );
        let new = Config::parse("b.toml", &text).unwrap();
        let (field, why) = prepare(&running, &new).err().unwrap();
        assert_eq!(field, "listener[1]");
        assert!(why.contains(&port.to_string()), "{why}");
        assert!(prepare(&running, &running).unwrap().is_none());
    }
}
