//! Whether a target's response switches protocols. Pure.
//!
//! A `101 Switching Protocols` is honoured only for a request weir forwarded as an upgrade
//! (`Connection: upgrade` + an `Upgrade` of protocols in `[load_balancer] upgrade_protocols`),
//! and only when the response's `Upgrade` names protocols that request offered (RFC 9110 §7.8:
//! a server must not switch to a protocol the client did not ask for). Any other 101 — to a
//! plain request, to one whose `Upgrade: h2c` weir removed, or naming another protocol — would
//! leave the target speaking something else on a connection weir believes is HTTP/1.1 (h2c and
//! WebSocket smuggling): the client gets 502 and the connection is closed, never pooled.
//! The reverse: an upgrade request the target answers with anything but 101 is relayed as an
//! ordinary response, never tunnelled, and the target connection is closed afterwards (the
//! target may still expect the other protocol on it).

use crate::pipeline::codec::Fields;
use http::header;

/// What the target's response status and head mean for the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// A 101 to the upgrade weir forwarded: the head goes to the client, then a tunnel.
    Tunnel,
    /// A 101 weir did not ask for (or to another protocol): 502, the connection is dropped.
    Refuse,
    /// An ordinary response; `target_reusable: false` after an upgrade request (refused by
    /// the target), whose connection's state weir cannot know.
    Response { target_reusable: bool },
}

/// The verdict for a response of `status` with `resp`'s fields, to a request forwarded with
/// `offered`'s `Upgrade` (`None`: not forwarded as an upgrade), `allowed` being
/// `upgrade_protocols`.
pub fn switch(
    offered: Option<&impl Fields>,
    allowed: &[String],
    status: u16,
    resp: &impl Fields,
) -> Switch {
    match (status == 101, offered) {
        (false, None) => Switch::Response {
            target_reusable: true,
        },
        (false, Some(_)) => Switch::Response {
            target_reusable: false,
        },
        (true, None) => Switch::Refuse,
        (true, Some(req)) if switches_to_offered(req, allowed, resp) => Switch::Tunnel,
        (true, Some(_)) => Switch::Refuse,
    }
}

/// Does `resp`'s `Upgrade` name at least one protocol, each offered in `req`'s `Upgrade` and
/// allowed?
fn switches_to_offered(req: &impl Fields, allowed: &[String], resp: &impl Fields) -> bool {
    let mut chosen = protocols(resp).peekable();
    chosen.peek().is_some()
        && chosen.all(|p| {
            let name = name_of(p);
            allowed
                .iter()
                .any(|a| a.as_bytes().eq_ignore_ascii_case(name))
                && protocols(req).any(|o| offered_matches(o, p))
        })
}

/// The comma-separated protocols of every `Upgrade` line.
fn protocols(h: &impl Fields) -> impl Iterator<Item = &[u8]> {
    h.values(&header::UPGRADE)
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
}

/// A protocol's name without its `/version`.
fn name_of(p: &[u8]) -> &[u8] {
    p.split(|&b| b == b'/').next().unwrap_or(p)
}

/// Is `chosen` the protocol `offered` names: the same token, or the same name when the offer
/// gave no version?
fn offered_matches(offered: &[u8], chosen: &[u8]) -> bool {
    offered.eq_ignore_ascii_case(chosen)
        || (!offered.contains(&b'/') && offered.eq_ignore_ascii_case(name_of(chosen)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderMap;

    fn upgrade(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::UPGRADE, v.parse().unwrap());
        }
        h
    }

    fn ws() -> Vec<String> {
        vec!["websocket".into()]
    }

    #[test]
    fn a_101_needs_a_forwarded_upgrade_and_a_matching_protocol() {
        let req = upgrade(&["websocket"]);
        let none: Option<&HeaderMap> = None;
        let cases = [
            (Some(&req), upgrade(&["websocket"]), Switch::Tunnel),
            (Some(&req), upgrade(&["WebSocket"]), Switch::Tunnel),
            (Some(&req), upgrade(&["websocket/13"]), Switch::Tunnel),
            (Some(&req), upgrade(&["h2c"]), Switch::Refuse),
            (Some(&req), upgrade(&["websocket, h2c"]), Switch::Refuse),
            (Some(&req), upgrade(&[]), Switch::Refuse),
            (Some(&req), upgrade(&[" , "]), Switch::Refuse),
            (none, upgrade(&["websocket"]), Switch::Refuse),
            (none, upgrade(&["h2c"]), Switch::Refuse),
            (none, upgrade(&[]), Switch::Refuse),
        ];
        for (i, (offered, resp, want)) in cases.iter().enumerate() {
            assert_eq!(switch(*offered, &ws(), 101, resp), *want, "case {i}");
        }
    }

    #[test]
    fn only_offered_and_allowed_protocols_switch() {
        // A versioned offer needs that version.
        let req = upgrade(&["foo/2"]);
        let allowed = vec!["foo".to_string()];
        assert_eq!(
            switch(Some(&req), &allowed, 101, &upgrade(&["foo/2"])),
            Switch::Tunnel
        );
        assert_eq!(
            switch(Some(&req), &allowed, 101, &upgrade(&["foo/3"])),
            Switch::Refuse
        );
        // Offered but not allowed (the list changed, or weir was bypassed): refused.
        let req = upgrade(&["websocket"]);
        assert_eq!(
            switch(Some(&req), &[], 101, &upgrade(&["websocket"])),
            Switch::Refuse
        );
    }

    #[test]
    fn other_statuses_are_responses_and_end_an_upgrade_attempt() {
        let req = upgrade(&["websocket"]);
        let none: Option<&HeaderMap> = None;
        for status in [200, 400, 426, 502] {
            assert_eq!(
                switch(Some(&req), &ws(), status, &upgrade(&["websocket"])),
                Switch::Response {
                    target_reusable: false
                }
            );
            assert_eq!(
                switch(none, &ws(), status, &upgrade(&[])),
                Switch::Response {
                    target_reusable: true
                }
            );
        }
    }
}
