//! Routing and answers against a fake control plane: no socket, no daemon.

use std::sync::{Arc, Mutex};

use super::*;
use crate::admin::model::{RegisteredTarget, Workers};
use crate::discovery::view::{Board, GroupDiscovery};

const CFG: &str = r#"
[[listener]]
port = 80
default_action = { type = "forward", target_group = "web" }
[[listener.rule]]
priority = 5
condition = [{ field = "path-pattern", values = ["/admin/*"] }]
action = { type = "fixed-response", status_code = 403 }
[[target_group]]
name = "web"
port = 8080
target = [{ id = "10.0.0.1" }]
[[target_group]]
name = "dns"
port = 9000
discovery = { name = "api.svc.test", type = "A+AAAA" }
[[target_group]]
name = "later"
port = 9001
discovery = { name = "_later._tcp.svc.test", type = "SRV", resolvers = ["10.0.0.53"] }
"#;

/// A control plane whose changes are recorded; `reload` fails with a located error.
struct Fake {
    cfg: Arc<Config>,
    calls: Mutex<Vec<String>>,
    /// `dns` has a record, `later` none yet.
    board: Board,
}

impl Fake {
    fn new() -> Fake {
        let cfg = Arc::new(Config::parse("t.toml", CFG).unwrap());
        let board = Board::default();
        let g = cfg.l7.target_group("dns").unwrap();
        let mut rec = GroupDiscovery::new(
            "dns",
            g.discovery.as_ref().unwrap(),
            9000,
            &[lb_l7::target_sets::SetTarget::plain(
                "10.0.0.7:9000".parse().unwrap(),
            )],
        );
        rec.consecutive_failures = 2;
        board.start(rec);
        Fake {
            cfg,
            calls: Mutex::new(Vec::new()),
            board,
        }
    }
}

impl AdminState for Fake {
    fn status(&self) -> Status {
        Status {
            pid: 1,
            generation: 4,
            last_reload_refused: None,
            config: "t.toml".into(),
            uptime_seconds: 2,
            workers: Workers {
                configured: 1,
                running: 0,
                not_reporting: 0,
                processes: vec![],
            },
            xdp: vec![],
            admin_socket: "/s".into(),
            health_file: None,
        }
    }
    fn config(&self) -> Arc<Config> {
        self.cfg.clone()
    }
    fn targets(&self, group: &str) -> Result<TargetList, ApiError> {
        Ok(TargetList {
            target_group: group.into(),
            port: 8080,
            targets: vec![RegisteredTarget {
                id: "10.0.0.1".into(),
                port: 8080,
                weight: 1,
                priority: 0,
                availability_zone: None,
                source: "config".into(),
            }],
        })
    }
    fn target_health(&self, group: Option<&str>) -> Result<serde_json::Value, ApiError> {
        Ok(serde_json::json!({ "asked": group }))
    }
    fn discovery(&self, group: Option<&str>) -> Result<Vec<GroupDiscovery>, ApiError> {
        Ok(crate::admin::daemon::discovering(
            &self.cfg,
            &self.board,
            group,
        ))
    }
    async fn reload(&self) -> Result<Reloaded, ApiError> {
        Err(ApiError::invalid_configuration(
            "t.toml: 1 configuration error",
            vec![super::super::error::Issue {
                file: "t.toml".into(),
                line: 3,
                column: 1,
                field: "target_group[0].name".into(),
                message: "bad".into(),
            }],
        ))
    }
    async fn register(&self, g: &str, t: Vec<TargetSpec>) -> Result<TargetsChanged, ApiError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("register {g} {}", t.len()));
        Ok(TargetsChanged {
            target_group: g.into(),
            targets: t.iter().map(|t| t.id.clone()).collect(),
            generation: 2,
            runtime_only: true,
            config: "t.toml".into(),
        })
    }
    async fn deregister(&self, g: &str, _: Vec<TargetSpec>) -> Result<TargetsChanged, ApiError> {
        Err(ApiError::invalid_target(format!("not registered in {g}")))
    }
}

fn call(state: &Fake, method: &str, uri: &str, body: &str) -> Answer {
    let (path, query) = match uri.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (uri, None),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(handle(state, method, path, query, body.as_bytes()))
}

fn code(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or("")
}

#[test]
fn routes_by_method_and_versioned_path() {
    assert_eq!(route("GET", "/v1/status", None), Ok(Route::Status));
    assert_eq!(route("GET", "/v1/listeners/", None), Ok(Route::Listeners));
    assert_eq!(
        route("GET", "/v1/listeners/443/rules", None),
        Ok(Route::Rules(443))
    );
    assert_eq!(
        route("DELETE", "/v1/target-groups/web/targets", None),
        Ok(Route::TargetsDeregister("web".into()))
    );
    assert_eq!(
        route("GET", "/v1/target-health", Some("target_group=web")),
        Ok(Route::TargetHealth(Some("web".into())))
    );
    assert_eq!(route("POST", "/v1/reload", None), Ok(Route::Reload));
    assert_eq!(
        route("GET", "/v1/certificates", None),
        Ok(Route::Certificates(None))
    );
    assert_eq!(
        route("GET", "/v1/listeners/443/certificates", None),
        Ok(Route::Certificates(Some(443)))
    );
    assert_eq!(
        route("POST", "/v1/certificates", None).unwrap_err().status,
        405
    );
    assert_eq!(route("GET", "/v1/discovery", None), Ok(Route::Discovery));
    assert_eq!(
        route("GET", "/v1/target-groups/dns/discovery", None),
        Ok(Route::GroupDiscovery("dns".into()))
    );
    assert_eq!(
        route("POST", "/v1/target-groups/dns/discovery", None)
            .unwrap_err()
            .status,
        405
    );
    assert_eq!(
        route("GET", "/v2/status", None).unwrap_err().code,
        "NotFound"
    );
    assert_eq!(route("GET", "/status", None).unwrap_err().code, "NotFound");
    assert_eq!(route("GET", "/v1/reload", None).unwrap_err().status, 405);
    assert_eq!(
        route("PUT", "/v1/target-groups/w/targets", None)
            .unwrap_err()
            .status,
        405
    );
    assert_eq!(
        route("GET", "/v1/listeners/x/rules", None)
            .unwrap_err()
            .code,
        "InvalidRequest"
    );
    assert_eq!(
        route("GET", "/v1/target-health", Some("group=web"))
            .unwrap_err()
            .code,
        "InvalidRequest"
    );
}

#[test]
fn answers_come_from_the_state_and_the_configuration() {
    let f = Fake::new();
    let a = call(&f, "GET", "/v1/status", "");
    assert_eq!((a.status, a.body["generation"].as_u64()), (200, Some(4)));
    let a = call(&f, "GET", "/v1/listeners/80/rules", "");
    assert_eq!(a.body["rules"][0]["priority"], "5");
    assert_eq!(a.body["rules"][1]["priority"], "default");
    // A listener that does not exist is named; a state without certificates says so.
    let a = call(&f, "GET", "/v1/listeners/81/certificates", "");
    assert_eq!((a.status, code(&a)), (404, "ListenerNotFound"));
    let a = call(&f, "GET", "/v1/certificates", "");
    assert_eq!(a.status, 501);
    let a = call(&f, "GET", "/v1/listeners/81/rules", "");
    assert_eq!((a.status, code(&a)), (404, "ListenerNotFound"));
    let a = call(&f, "GET", "/v1/target-health?target_group=web", "");
    assert_eq!(a.body["asked"], "web");
    let a = call(&f, "GET", "/v1/target-groups/web/targets", "");
    assert_eq!(a.body["targets"][0]["port"], 8080);
}

#[test]
fn unknown_groups_are_target_group_not_found_before_any_change() {
    let f = Fake::new();
    for (m, uri) in [
        ("GET", "/v1/target-groups/nope/targets"),
        ("POST", "/v1/target-groups/nope/targets"),
        ("DELETE", "/v1/target-groups/nope/targets"),
        ("GET", "/v1/target-health?target_group=nope"),
        ("GET", "/v1/target-groups/nope/discovery"),
    ] {
        let body = if m == "GET" {
            ""
        } else {
            r#"{"targets":[{"id":"10.0.0.9"}]}"#
        };
        let a = call(&f, m, uri, body);
        assert_eq!(
            (a.status, code(&a)),
            (404, "TargetGroupNotFound"),
            "{m} {uri}"
        );
        assert!(
            a.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("nope")
        );
    }
    assert!(f.calls.lock().unwrap().is_empty());
}

#[test]
fn discovery_lists_the_discovering_groups_and_refuses_the_others_clearly() {
    let f = Fake::new();
    let a = call(&f, "GET", "/v1/discovery", "");
    assert_eq!(a.status, 200, "{:?}", a.body);
    let groups = a.body["target_groups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["target_group"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dns", "later"], "web does not discover");
    assert_eq!(groups[0]["consecutive_failures"], 2);
    assert_eq!(groups[0]["targets"], serde_json::json!(["10.0.0.7:9000"]));
    assert_eq!(groups[0]["type"], "A+AAAA");
    // No record yet (its task has not started): the configuration's, not resolved yet.
    assert_eq!(groups[1]["type"], "SRV");
    assert_eq!(groups[1]["resolvers"], serde_json::json!(["10.0.0.53"]));
    assert!(groups[1]["last_resolution"].is_null());
    let a = call(&f, "GET", "/v1/target-groups/dns/discovery", "");
    assert_eq!(
        (a.status, &a.body["name"]),
        (200, &serde_json::json!("api.svc.test"))
    );
    let a = call(&f, "GET", "/v1/target-groups/web/discovery", "");
    assert_eq!((a.status, code(&a)), (404, "DiscoveryNotConfigured"));
    let m = a.body["error"]["message"].as_str().unwrap();
    assert!(m.contains("`web` has no DNS discovery"), "{m}");
    // A daemon without discovery (no workers) says so.
    let d = crate::admin::Daemon::new(
        &f.cfg,
        None,
        "/s".into(),
        vec![],
        crate::admin::Delegates::default(),
    );
    let e = d.discovery(None).unwrap_err();
    assert_eq!((e.status, e.code), (501, "NotImplemented"));
}

#[test]
fn bad_bodies_and_targets_get_json_errors_and_change_nothing() {
    let f = Fake::new();
    let uri = "/v1/target-groups/web/targets";
    for (body, want) in [
        ("", "InvalidRequest"),
        ("{", "InvalidRequest"),
        (r#"{"targets":[]}"#, "InvalidRequest"),
        (
            r#"{"targets":[{"id":"10.0.0.1","color":"red"}]}"#,
            "InvalidRequest",
        ),
        (r#"{"targets":[{"id":"web-1"}]}"#, "InvalidTarget"),
        (
            r#"{"targets":[{"id":"10.0.0.1","port":0}]}"#,
            "InvalidTarget",
        ),
        (
            r#"{"targets":[{"id":"10.0.0.1","port":70000}]}"#,
            "InvalidRequest",
        ),
    ] {
        let a = call(&f, "POST", uri, body);
        assert_eq!((a.status, code(&a)), (400, want), "{body}");
    }
    assert!(f.calls.lock().unwrap().is_empty());
    let a = call(
        &f,
        "POST",
        uri,
        r#"{"targets":[{"id":"10.0.0.7","port":81},{"id":"::1"}]}"#,
    );
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["runtime_only"], true);
    assert_eq!(*f.calls.lock().unwrap(), ["register web 2"]);
    let a = call(&f, "GET", "/v1/status", "{}");
    assert_eq!(code(&a), "InvalidRequest", "a GET with a body");
}

#[test]
fn delegate_errors_pass_through_with_their_code_and_issues() {
    let f = Fake::new();
    let a = call(
        &f,
        "DELETE",
        "/v1/target-groups/web/targets",
        r#"{"targets":[{"id":"10.0.0.5"}]}"#,
    );
    assert_eq!((a.status, code(&a)), (400, "InvalidTarget"));
    let a = call(&f, "POST", "/v1/reload", "");
    assert_eq!((a.status, code(&a)), (400, "InvalidConfiguration"));
    assert_eq!(a.body["error"]["issues"][0]["line"], 3);
    assert_eq!(
        a.body["error"]["issues"][0]["field"],
        "target_group[0].name"
    );
}

/// A control plane with the main loop's run-time target logic (`crate::reload::Generations`
/// over the overlay, the drains the health view knows) and the checker following every
/// generation at once; the rest is [`Fake`]'s.
struct Plane {
    fake: Fake,
    gens: Mutex<crate::reload::Generations>,
    health: crate::health::HealthTable,
}

impl Plane {
    fn new() -> Plane {
        let fake = Fake::new();
        let first = crate::reload::Validated {
            config: (*fake.cfg).clone(),
            text: CFG.into(),
            files: Default::default(),
            certificates: Vec::new(),
        };
        Plane {
            health: crate::health::HealthTable::new(&fake.cfg.l7).unwrap(),
            gens: Mutex::new(crate::reload::Generations::new(None, first)),
            fake,
        }
    }

    /// What `run::apply_targets` does with a change, the checker following its generation.
    fn change(&self, change: crate::overlay::TargetChange) -> Result<u64, ApiError> {
        let mut gens = self.gens.lock().unwrap();
        let draining = gens.draining(Some(&self.health), &change);
        let made = gens
            .change_targets(&change, &draining)
            .map_err(|e| crate::admin::wiring::targets_error(e.into()))?;
        if let Some(n) = made {
            self.health.rebuild(&gens.config().l7, n).unwrap();
        }
        Ok(gens.generation())
    }

    fn answer(&self, g: &str, t: &[TargetSpec], generation: u64) -> TargetsChanged {
        TargetsChanged {
            target_group: g.into(),
            targets: t.iter().map(|t| t.id.clone()).collect(),
            generation,
            runtime_only: true,
            config: "t.toml".into(),
        }
    }

    /// `web`'s targets in the health view, with their states.
    fn web_states(&self) -> Vec<(String, String)> {
        let s = self.health.snapshot();
        let web = s.target_groups.iter().find(|g| g.name == "web").unwrap();
        web.targets
            .iter()
            .map(|t| (format!("{}:{}", t.id, t.port), t.state.clone()))
            .collect()
    }
}

fn addrs(g: &str, t: &[TargetSpec]) -> Vec<std::net::SocketAddr> {
    let port = if g == "web" { 8080 } else { 9000 };
    t.iter()
        .map(|t| std::net::SocketAddr::new(t.id.parse().unwrap(), t.port.unwrap_or(port)))
        .collect()
}

impl AdminState for Plane {
    fn status(&self) -> Status {
        self.fake.status()
    }
    fn config(&self) -> Arc<Config> {
        self.fake.config()
    }
    fn targets(&self, group: &str) -> Result<TargetList, ApiError> {
        self.fake.targets(group)
    }
    fn target_health(&self, group: Option<&str>) -> Result<serde_json::Value, ApiError> {
        self.fake.target_health(group)
    }
    async fn reload(&self) -> Result<Reloaded, ApiError> {
        self.fake.reload().await
    }
    async fn register(&self, g: &str, t: Vec<TargetSpec>) -> Result<TargetsChanged, ApiError> {
        let n = self.change(crate::overlay::TargetChange::Register {
            group: g.into(),
            targets: addrs(g, &t),
        })?;
        Ok(self.answer(g, &t, n))
    }
    async fn deregister(&self, g: &str, t: Vec<TargetSpec>) -> Result<TargetsChanged, ApiError> {
        let n = self.change(crate::overlay::TargetChange::Deregister {
            group: g.into(),
            targets: addrs(g, &t),
        })?;
        Ok(self.answer(g, &t, n))
    }
}

/// ALB's `DeregisterTargets` and `RegisterTargets` are idempotent: automation retries them.
#[test]
fn a_retried_deregistration_or_registration_succeeds_and_changes_nothing() {
    let p = Plane::new();
    let uri = "/v1/target-groups/web/targets";
    let one = r#"{"targets":[{"id":"10.0.0.1"}]}"#;
    let call = |method, body| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(handle(&p, method, uri, None, body))
    };
    let draining = || vec![("10.0.0.1:8080".to_string(), "draining".to_string())];
    let a = call("DELETE", one.as_bytes());
    assert_eq!(
        (a.status, &a.body["generation"]),
        (200, &2.into()),
        "{:?}",
        a.body
    );
    assert_eq!(p.web_states(), draining());
    // Again while it drains: 200, the same generation (nothing for the checker to follow),
    // the one drain.
    let a = call("DELETE", one.as_bytes());
    assert_eq!(
        (a.status, &a.body["generation"]),
        (200, &2.into()),
        "{:?}",
        a.body
    );
    assert_eq!(p.web_states(), draining());
    // With a target that is neither registered nor draining: refused whole, naming it.
    let a = call(
        "DELETE",
        br#"{"targets":[{"id":"10.0.0.1"},{"id":"10.0.0.9"}]}"#,
    );
    assert_eq!((a.status, code(&a)), (400, "InvalidTarget"));
    let m = a.body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        m.contains("10.0.0.9:8080") && !m.contains("10.0.0.1"),
        "{m}"
    );
    assert_eq!(p.gens.lock().unwrap().generation(), 2);
    // Registered again, and again: one generation.
    for _ in 0..2 {
        let a = call("POST", one.as_bytes());
        assert_eq!(
            (a.status, &a.body["generation"]),
            (200, &3.into()),
            "{:?}",
            a.body
        );
    }
    // Deregistered, its drain over (no worker has a request to it): not registered.
    let a = call("DELETE", one.as_bytes());
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(p.health.finish_drained(&[]).len(), 1);
    let a = call("DELETE", one.as_bytes());
    assert_eq!((a.status, code(&a)), (400, "InvalidTarget"));
    assert_eq!(p.gens.lock().unwrap().generation(), 4);
}

#[test]
fn unspecified_multicast_and_broadcast_targets_are_refused_by_name() {
    let f = Fake::new();
    let uri = "/v1/target-groups/web/targets";
    for id in [
        "0.0.0.0",
        "::",
        "224.0.0.1",
        "ff02::1",
        "255.255.255.255",
        "::ffff:224.0.0.1",
    ] {
        let body = format!(r#"{{"targets":[{{"id":"{id}","port":80}}]}}"#);
        let a = call(&f, "POST", uri, &body);
        assert_eq!((a.status, code(&a)), (400, "InvalidTarget"), "{id}");
        let msg = a.body["error"]["message"].as_str().unwrap_or("");
        // An IPv4-mapped id is named as the IPv4 address it is.
        let named = id.trim_start_matches("::ffff:");
        assert!(
            msg.contains(named) && msg.contains("unicast"),
            "{id}: {msg}"
        );
    }
    assert!(f.calls.lock().unwrap().is_empty());
    // Loopback stays allowed (a target on the load balancer's own host).
    let a = call(
        &f,
        "POST",
        uri,
        r#"{"targets":[{"id":"127.0.0.1","port":81},{"id":"::1","port":81}]}"#,
    );
    assert_eq!(a.status, 200, "{:?}", a.body);
}

#[test]
fn a_405_names_the_allowed_methods() {
    let f = Fake::new();
    for (method, uri, allow) in [
        ("PUT", "/v1/status", "GET"),
        ("GET", "/v1/reload", "POST"),
        ("PUT", "/v1/target-groups/web/targets", "GET, POST, DELETE"),
    ] {
        let a = call(&f, method, uri, "");
        assert_eq!((a.status, a.allow), (405, Some(allow)), "{method} {uri}");
    }
    assert_eq!(call(&f, "GET", "/v1/status", "").allow, None);
}

/// A registration naming `::ffff:10.0.0.1` registers `10.0.0.1`: the file and the API read an
/// IPv4-mapped address the same way, so the two spellings are one target.
#[test]
fn a_registered_ipv4_mapped_target_is_its_ipv4_address() {
    let t = targets_body(br#"{"targets": [{"id": "::ffff:10.0.0.1", "port": 80}, {"id": "::1"}]}"#)
        .unwrap();
    assert_eq!(t[0].id, "10.0.0.1");
    assert_eq!(t[1].id, "::1");
}
