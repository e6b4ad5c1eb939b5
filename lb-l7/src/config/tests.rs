use super::*;

fn paths(toml: &str) -> Vec<String> {
    let c: L7Config = toml::from_str(toml).unwrap();
    c.validate().into_iter().map(|e| e.path).collect()
}

#[test]
fn default_is_valid_and_documented() {
    let c = L7Config::default();
    assert_eq!(c.validate(), vec![]);
    assert_eq!(c.listener[0].port, 8080);
    assert_eq!(c.load_balancer.health_check_path, "/weir-health");
    assert_eq!(c.load_balancer.idle_timeout.timeout_seconds, 60);
    let empty: L7Config = toml::from_str("").unwrap();
    assert!(empty.listener.is_empty());
}

#[test]
fn alb_attribute_names_parse() {
    let c: L7Config = toml::from_str(
        r#"
[load_balancer]
idle_timeout.timeout_seconds = 120
routing.http2.enabled = false
routing.http.xff_header_processing.mode = "preserve"
routing.http.desync_mitigation_mode = "strictest"
routing.http.preserve_host_header.enabled = true
[[target_group]]
name = "a"
load_balancing.algorithm.type = "least_outstanding_requests"
deregistration_delay.timeout_seconds = 10
health_check.interval_seconds = 10
"#,
    )
    .unwrap();
    assert_eq!(c.load_balancer.idle_timeout.timeout_seconds, 120);
    assert!(!c.load_balancer.routing.http2.enabled);
    assert_eq!(
        c.load_balancer.routing.http.xff_header_processing.mode,
        XffMode::Preserve
    );
    assert_eq!(
        c.target_group[0].load_balancing.algorithm.kind,
        AlgorithmType::LeastOutstandingRequests
    );
    assert_eq!(c.validate(), vec![]);
}

#[test]
fn unknown_fields_are_errors() {
    for bad in [
        "[load_balancer]\nidle_timeout.seconds = 1",
        "[[listener]]\nport = 80\nprot = \"HTTP\"",
        "[[listener]]\nport = 80\ndefault_action = { type = \"fixed-response\", status_code = 200, body = \"x\" }",
        "[[listener]]\nport = 80\n[[listener.rule]]\npriority = 1\naction = { type = \"forward\", target_group = \"a\" }\ncondition = [{ field = \"host-header\", value = [\"a\"] }]",
        "[[target_group]]\nname = \"a\"\nhealth_check.intervall_seconds = 5",
        "[[listener]]\nport = 80\ndefault_action = { type = \"teleport\" }",
    ] {
        assert!(toml::from_str::<L7Config>(bad).is_err(), "accepted: {bad}");
    }
}

#[test]
fn validation_paths_name_real_keys() {
    let p = paths(
        r#"
[load_balancer]
idle_timeout.timeout_seconds = 0
[[listener]]
port = 80
default_action = { type = "forward", target_group = "nope" }
[[listener.rule]]
priority = 7
condition = [{ field = "source-ip", values = ["10.0.0.0/8", "banana"] }]
action = { type = "fixed-response", status_code = 302 }
[[listener.rule]]
priority = 7
condition = [{ field = "path-pattern", values = ["/a"] }, { field = "path-pattern", values = ["/b"] }]
action = { type = "forward", target_groups = [{ name = "tg", weight = 1000 }, { name = "x" }] }
[[listener.rule]]
priority = 8
condition = [{ field = "host-header", values = ["a"] }]
action = { type = "redirect", status_code = "HTTP_302" }
[[listener]]
port = 80
protocol = "HTTPS"
[[listener]]
port = 443
protocol = "HTTPS"
certificate = [{ certificate_file = "/nonexistent.pem", private_key_file = "/nonexistent.key" }]
[[target_group]]
name = "tg"
target = [{ id = "10.0.0.1" }, { id = "host.example" }, { id = "10.0.0.1", port = 80 }]
health_check.interval_seconds = 3
load_balancing.algorithm.type = "consistent_hash"
[[target_group]]
name = "tg"
load_balancing.algorithm.hash_on = "header:x"
"#,
    );
    let want = [
        "load_balancer.idle_timeout.timeout_seconds",
        "listener[0].default_action.target_group",
        "listener[0].rule[0].condition[0].values[1]",
        "listener[0].rule[0].action.status_code",
        "listener[0].rule[1].priority",
        "listener[0].rule[1].condition[1].field",
        "listener[0].rule[1].action.target_groups[0].weight",
        "listener[0].rule[1].action.target_groups[1].name",
        "listener[0].rule[2].action",
        "listener[1].certificate",
        "listener[1].port",
        "listener[2].certificate[0].certificate_file",
        "target_group[0].target[1].id",
        "target_group[0].target[2].id",
        "target_group[0].load_balancing.algorithm.hash_on",
        "target_group[0].health_check.interval_seconds",
        "target_group[0].health_check.timeout_seconds",
        "target_group[1].load_balancing.algorithm.hash_on",
        "target_group[1].name",
    ];
    for w in want {
        assert!(p.iter().any(|x| x == w), "missing {w} in {p:#?}");
    }
    assert_eq!(p.len(), want.len(), "{p:#?}");
}

#[test]
fn matcher_codes() {
    assert_eq!(validate::parse_matcher("200"), Some(vec![(200, 200)]));
    assert_eq!(
        validate::parse_matcher("200,202-299"),
        Some(vec![(200, 200), (202, 299)])
    );
    assert_eq!(validate::parse_matcher("500"), None);
    assert_eq!(validate::parse_matcher("x"), None);
}

#[test]
fn upgrade_protocols_are_validated() {
    let c = L7Config::default();
    assert_eq!(c.load_balancer.upgrade_protocols, ["websocket"]);
    let ok = "[load_balancer]\nupgrade_protocols = [\"websocket\", \"my-proto\"]";
    assert_eq!(paths(ok), Vec::<String>::new());
    let none = "[load_balancer]\nupgrade_protocols = []";
    assert_eq!(paths(none), Vec::<String>::new());
    let bad = "[load_balancer]\nupgrade_protocols = [\"websocket\", \"h2c\", \"H2\", \"web socket\", \"\", \"websocket/13\"]";
    assert_eq!(
        paths(bad),
        [
            "load_balancer.upgrade_protocols[1]",
            "load_balancer.upgrade_protocols[2]",
            "load_balancer.upgrade_protocols[3]",
            "load_balancer.upgrade_protocols[4]",
            "load_balancer.upgrade_protocols[5]",
        ]
    );
}

#[test]
fn health_check_protocols() {
    let group = |extra: &str| format!("[[target_group]]\nname = \"a\"\n{extra}");
    for ok in [
        "health_check.protocol = \"HTTP\"",
        "health_check.protocol = \"HTTPS\"",
        "health_check.protocol = \"TCP\"",
        "health_check.protocol = \"TCP\"\nhealth_check.port = \"8081\"",
    ] {
        assert_eq!(paths(&group(ok)), Vec::<String>::new(), "{ok}");
    }
    assert_eq!(
        paths(&group("health_check.protocol = \"UDP\"")),
        ["target_group[0].health_check.protocol"]
    );
    // A TCP check connects only: a path or a matcher would be ignored, so they are refused.
    assert_eq!(
        paths(&group(
            "health_check.protocol = \"TCP\"\nhealth_check.path = \"/x\"\nhealth_check.matcher.http_code = \"200-299\""
        )),
        [
            "target_group[0].health_check.path",
            "target_group[0].health_check.matcher.http_code"
        ]
    );
}

#[test]
fn discovery_parses_with_defaults_and_is_validated() {
    let c: L7Config = toml::from_str(
        r#"
[[target_group]]
name = "a"
port = 8000
discovery = { name = "_web._tcp.svc.test", type = "SRV", resolvers = ["10.0.0.2", "[fd00::2]:5353"] }
[[target_group]]
name = "b"
[target_group.discovery]
name = "web.svc.test."
type = "A+AAAA"
"#,
    )
    .unwrap();
    assert_eq!(c.validate(), vec![]);
    let d = c.target_group[0].discovery.as_ref().unwrap();
    assert_eq!(d.kind, DiscoveryType::Srv);
    assert_eq!(
        (
            d.ttl_floor_seconds,
            d.ttl_ceiling_seconds,
            d.hold_empty_seconds
        ),
        (5, 300, 30)
    );
    assert_eq!(
        d.resolver_addrs().unwrap(),
        vec![
            "10.0.0.2:53".parse().unwrap(),
            "[fd00::2]:5353".parse().unwrap()
        ]
    );
    assert!(
        c.target_group[1]
            .discovery
            .as_ref()
            .unwrap()
            .resolvers
            .is_empty()
    );

    let bad = |d: &str| {
        paths(&format!(
            "[[target_group]]\nname = \"a\"\ndiscovery = {{ {d} }}"
        ))
    };
    assert_eq!(
        bad(r#"name = "web.svc.test", type = "SRV""#),
        ["target_group[0].discovery.name"]
    );
    assert_eq!(
        bad(r#"name = "we b", type = "A""#),
        ["target_group[0].discovery.name"]
    );
    assert_eq!(
        bad(r#"name = "10.0.0.1", type = "A""#),
        ["target_group[0].discovery.name"]
    );
    assert_eq!(
        bad(r#"name = "w.test", type = "A", resolvers = ["dns.test"]"#),
        ["target_group[0].discovery.resolvers[0]"]
    );
    assert_eq!(
        bad(r#"name = "w.test", type = "A", ttl_floor_seconds = 60, ttl_ceiling_seconds = 30"#),
        ["target_group[0].discovery.ttl_ceiling_seconds"]
    );
    assert_eq!(
        bad(r#"name = "w.test", type = "A", max_targets = 0, timeout_seconds = 0"#),
        [
            "target_group[0].discovery.timeout_seconds",
            "target_group[0].discovery.max_targets"
        ]
    );
    for unknown in [
        r#"name = "w.test", type = "MX""#,
        r#"name = "w.test", type = "A", interval = 5"#,
        r#"name = "w.test""#,
    ] {
        let t = format!("[[target_group]]\nname = \"a\"\ndiscovery = {{ {unknown} }}");
        assert!(
            toml::from_str::<L7Config>(&t).is_err(),
            "accepted: {unknown}"
        );
    }
}

#[test]
fn http2_engine_is_hyper_or_weir() {
    let c: L7Config = toml::from_str("").unwrap();
    assert_eq!(c.load_balancer.http2_engine, Http2Engine::Weir);
    let w: L7Config = toml::from_str("[load_balancer]\nhttp2_engine = \"weir\"").unwrap();
    assert_eq!(w.load_balancer.http2_engine, Http2Engine::Weir);
    let h: L7Config = toml::from_str("[load_balancer]\nhttp2_engine = \"hyper\"").unwrap();
    assert_eq!(h.load_balancer.http2_engine, Http2Engine::Hyper);
    for bad in ["\"h2\"", "\"Weir\"", "\"\"", "1"] {
        let e = toml::from_str::<L7Config>(&format!("[load_balancer]\nhttp2_engine = {bad}"))
            .expect_err(bad)
            .to_string();
        assert!(e.contains("http2_engine"), "{bad}: {e}");
    }
}

/// `freebind` binds an address the host does not have yet; on a wildcard (which takes every
/// address the host has or gets) it would be parsed and do nothing, so it is refused.
#[test]
fn freebind_needs_an_address() {
    let on = |address: &str| {
        format!("[[listener]]\naddress = \"{address}\"\nport = 80\nfreebind = true\n")
    };
    assert_eq!(paths(&on("192.0.2.10")), Vec::<String>::new());
    assert_eq!(paths(&on("2001:db8::10")), Vec::<String>::new());
    assert_eq!(paths(&on("0.0.0.0")), ["listener[0].freebind"]);
    assert_eq!(paths(&on("::")), ["listener[0].freebind"]);
    assert_eq!(
        paths("[[listener]]\nport = 80\nfreebind = true\n"),
        ["listener[0].freebind"]
    );
    assert_eq!(paths("[[listener]]\nport = 80\n"), Vec::<String>::new());
}

/// A worker keys listeners by port: two addresses on one port passed validation and one of
/// them accepted nothing (its connections queued unanswered). Refused with a reason now.
#[test]
fn two_addresses_on_one_port_are_refused() {
    for (a, b) in [("127.0.0.1", "127.0.0.2"), ("127.0.0.1", "0.0.0.0")] {
        let c: L7Config = toml::from_str(&format!(
            r#"
[[listener]]
address = "{a}"
port = 8080
default_action = {{ type = "fixed-response", status_code = 200 }}
[[listener]]
address = "{b}"
port = 8080
default_action = {{ type = "fixed-response", status_code = 200 }}
"#
        ))
        .unwrap();
        let e = c.validate();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "listener[1].port");
        assert!(
            e[0].message.contains("one listener per port"),
            "{}",
            e[0].message
        );
    }
}

#[test]
fn no_content_statuses_refuse_a_body() {
    let with = |code: u16, body: &str| {
        paths(&format!(
            "[[listener]]\nport = 80\ndefault_action = {{ type = \"fixed-response\", \
             status_code = {code}, message_body = {body:?} }}\n"
        ))
    };
    for code in [204, 205] {
        assert_eq!(
            with(code, "should-not-be-sent\n"),
            ["listener[0].default_action.message_body"],
            "{code}"
        );
        assert!(with(code, "").is_empty(), "{code}");
    }
    assert!(with(200, "ok").is_empty());
    let c: L7Config = toml::from_str(
        "[[listener]]\nport = 80\ndefault_action = { type = \"fixed-response\", \
         status_code = 204, message_body = \"x\" }\n",
    )
    .unwrap();
    let e = c.validate().remove(0).to_string();
    assert!(e.contains("message_body") && e.contains("204"), "{e}");
}

#[test]
fn health_check_path_is_visible_ascii_up_to_1024() {
    let group = |path: &str| {
        paths(&format!(
            "[[target_group]]\nname = \"a\"\nhealth_check.path = {path:?}\n"
        ))
    };
    for ok in ["/", "/h?x=1&y=%20", &format!("/{}", "a".repeat(1023))] {
        assert!(group(ok).is_empty(), "{ok}");
    }
    for bad in [
        "/h\r\nX-Injected: yes\r\nHost: evil.example",
        "/h\nx",
        "/a b",
        "/\u{e9}",
        "/\t",
        &format!("/{}", "a".repeat(1024)),
        "h",
    ] {
        assert_eq!(group(bad), ["target_group[0].health_check.path"], "{bad:?}");
    }
}

#[test]
fn redirect_hosts_and_tokens_are_checked() {
    let with = |extra: &str| {
        paths(&format!(
            "[[listener]]\nport = 80\ndefault_action = {{ type = \"redirect\", \
             status_code = \"HTTP_301\", {extra} }}\n"
        ))
    };
    for ok in [
        "host = \"www.example.com\"",
        "host = \"#{host}\", protocol = \"HTTPS\"",
        "host = \"new-#{host}\"",
        "host = \"[2001:db8::1]\"",
        "host = \"xn--bcher-kva.example\"",
        "path = \"/new/#{path}\", query = \"#{query}&from=#{host}\"",
    ] {
        assert!(with(ok).is_empty(), "{ok}: {:?}", with(ok));
    }
    for (bad, key) in [
        ("host = \"a b/c?d\"", "host"),
        ("host = \"a b\"", "host"),
        ("host = \"a/b\"", "host"),
        ("host = \"a?b\"", "host"),
        ("host = \"a:8080\"", "host"),
        ("host = \"user@a\"", "host"),
        ("host = \"\"", "host"),
        ("path = \"/x#{bogus}\"", "path"),
        ("query = \"a=#{Path}\", host = \"x\"", "query"),
        ("path = \"/x#{path\"", "path"),
        ("host = \"#{hots}\"", "host"),
    ] {
        let got = with(bad);
        assert!(
            got.contains(&format!("listener[0].default_action.{key}")),
            "{bad}: {got:?}"
        );
    }
    let c: L7Config = toml::from_str(
        "[[listener]]\nport = 80\ndefault_action = { type = \"redirect\", \
         path = \"/x#{bogus}\", status_code = \"HTTP_301\" }\n",
    )
    .unwrap();
    let e = c.validate().remove(0).to_string();
    assert!(e.contains("#{bogus}"), "{e}");
}

#[test]
fn a_group_appears_once_in_a_forward() {
    let p = paths(
        r#"
[[listener]]
port = 80
default_action = { type = "forward", target_groups = [{ name = "a", weight = 1 }, { name = "b" }, { name = "a", weight = 2 }] }
[[target_group]]
name = "a"
[[target_group]]
name = "b"
"#,
    );
    assert_eq!(p, ["listener[0].default_action.target_groups[2].name"]);
}

#[test]
fn unusable_target_addresses_are_refused() {
    let group = |id: &str| {
        paths(&format!(
            "[[target_group]]\nname = \"a\"\ntarget = [{{ id = \"{id}\", port = 80 }}]\n"
        ))
    };
    for bad in ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"] {
        assert_eq!(group(bad), ["target_group[0].target[0].id"], "{bad}");
    }
    for ok in ["127.0.0.1", "::1", "10.0.0.1", "2001:db8::1"] {
        assert!(group(ok).is_empty(), "{ok}");
    }
}

#[test]
fn every_target_at_weight_0_is_a_warning() {
    let warned = |targets: &str| {
        let c: L7Config = toml::from_str(&format!(
            "[[target_group]]\nname = \"a\"\ntarget = [{targets}]\n"
        ))
        .unwrap();
        assert_eq!(c.validate(), vec![], "valid");
        c.warnings().into_iter().map(|w| w.path).collect::<Vec<_>>()
    };
    assert_eq!(
        warned("{ id = \"127.0.0.1\", port = 1, weight = 0 }"),
        ["target_group[0].target"]
    );
    assert!(
        warned("{ id = \"127.0.0.1\", port = 1, weight = 0 }, { id = \"127.0.0.2\", port = 1 }")
            .is_empty()
    );
    assert!(warned("").is_empty());
    assert!(L7Config::default().warnings().is_empty());
}

/// `alpn_policy` is for HTTPS listeners (ALB's): on an HTTP one it is refused, naming the key;
/// `HTTP2Only` needs HTTP/2 on.
#[test]
fn alpn_policy_only_on_https_listeners() {
    let http = "[[listener]]\nport = 80\nalpn_policy = \"HTTP1Only\"\n";
    let c: L7Config = toml::from_str(http).unwrap();
    let errs = c.validate();
    assert_eq!(
        errs.iter().map(|e| e.path.as_str()).collect::<Vec<_>>(),
        ["listener[0].alpn_policy"]
    );
    assert!(
        errs[0]
            .message
            .contains("only used with protocol = \"HTTPS\"")
    );
    assert!(paths("[[listener]]\nport = 80\n").is_empty());
    let https = |lb: &str, policy: &str| {
        format!(
            "{lb}[[listener]]\nport = 443\nprotocol = \"HTTPS\"\nalpn_policy = \"{policy}\"\n\
             certificate = [{{ certificate_file = \"/nonexistent.pem\", private_key_file = \"/nonexistent.key\" }}]\n"
        )
    };
    let alpn_errs = |toml: String| {
        paths(&toml)
            .into_iter()
            .filter(|p| p.ends_with("alpn_policy"))
            .collect::<Vec<_>>()
    };
    assert!(alpn_errs(https("", "HTTP2Only")).is_empty());
    assert!(
        alpn_errs(https(
            "[load_balancer]\nrouting.http2.enabled = false\n",
            "HTTP1Only"
        ))
        .is_empty()
    );
    assert_eq!(
        alpn_errs(https(
            "[load_balancer]\nrouting.http2.enabled = false\n",
            "HTTP2Only"
        )),
        ["listener[0].alpn_policy"]
    );
}

/// `::ffff:127.0.0.1` and `127.0.0.1` on one port are one target: the second is a duplicate
/// (both were accepted, two targets, one health state each, for one server). The mapped form
/// is read as the IPv4 address.
#[test]
fn an_ipv4_mapped_target_is_its_ipv4_address() {
    let toml = r#"
[[target_group]]
name = "tg"
port = 19534
target = [{ id = "::ffff:127.0.0.1" }, { id = "127.0.0.1" }, { id = "::1" }]
"#;
    let c: L7Config = toml::from_str(toml).unwrap();
    let ids: Vec<&str> = c.target_group[0]
        .target
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(ids, ["127.0.0.1", "127.0.0.1", "::1"]);
    let e = c.validate();
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].path, "target_group[0].target[1].id");
    assert!(
        e[0].message.contains("same address and port as target[0]"),
        "{e:?}"
    );
}

/// `health_check.port = 8080` was refused "expected a string": an integer port is taken as
/// the string ALB's API has, and judged the same way.
#[test]
fn a_health_check_port_is_a_string_or_an_integer() {
    let hc = |port: &str| {
        format!("[[target_group]]\nname = \"tg\"\nport = 80\nhealth_check.port = {port}\n")
    };
    for (port, want) in [
        ("8080", "8080"),
        ("\"8080\"", "8080"),
        ("\"traffic-port\"", "traffic-port"),
    ] {
        let c: L7Config = toml::from_str(&hc(port)).unwrap();
        assert_eq!(c.target_group[0].health_check.port, want);
        assert!(c.validate().is_empty(), "{port}");
    }
    for bad in ["0", "70000", "-1", "\"x\""] {
        assert_eq!(
            paths(&hc(bad)),
            ["target_group[0].health_check.port"],
            "{bad}"
        );
    }
}
