//! Config errors name file, line, column and field.

use super::*;

fn errors(text: &str) -> Vec<String> {
    match Config::parse("weir.toml", text) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.issues.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn embedded_default_is_valid() {
    let cfg = Config::load(None).unwrap();
    assert_eq!(cfg.source, DEFAULT_NAME);
    assert_eq!(cfg.xdp.mode, XdpModeSetting::Auto);
}

#[test]
fn syntax_error_has_line_and_column() {
    let e = errors("[xdp]\nmode = \"auto\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("weir.toml:2:"), "{}", e[0]);
}

#[test]
fn type_error_names_the_field() {
    let e = errors("[[vip]]\naddress = \"10.0.0.1\"\nport = \"http\"\n");
    assert!(
        e[0].starts_with("weir.toml:3:8: field `vip[0].port`:"),
        "{}",
        e[0]
    );
}

#[test]
fn unknown_field_is_refused() {
    let e = errors("[xdp]\nmode = \"auto\"\nmdoe = \"native\"\n");
    assert!(e[0].starts_with("weir.toml:3:1:"), "{}", e[0]);
    assert!(e[0].contains("mdoe"), "{}", e[0]);
}

/// A misspelled table header is one error: its keys are not then reported as unknown fields
/// of the table before it (`[worker]` under `[load_balancer]` gave a second error listing
/// `[load_balancer]`'s keys).
#[test]
fn a_misspelled_table_is_one_error() {
    let e = errors(
        "[load_balancer]\nidle_timeout.timeout_seconds = 60\n\n[worker]\ncount = 2\nuser = \"weir\"\n\n\
         [[listener]]\nport = 80\ndefault_action = { type = \"fixed-response\", status_code = 200 }\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(e[0].starts_with("weir.toml:4:"), "{}", e[0]);
    assert!(e[0].contains("worker"), "{}", e[0]);
}

/// `weir check` reports every type error it can, not only serde's first, each at its own line.
#[test]
fn every_type_error_is_reported_where_it_is() {
    let text = "[xdp]\nmode = \"turbo\"\n\n[workers]\ncount = \"two\"\nmdoe = 1\n\n\
                [[listener]]\nport = 80\n\
                default_action = { type = \"fixed-response\", status_code = 200 }\n\n\
                [[target_group]]\nname = \"app\"\ntarget = [\n  { id = \"10.0.0.1\", port = 70000 },\n]\n";
    let e = errors(text);
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e[0].starts_with("weir.toml:2:8: field `xdp.mode`"),
        "{}",
        e[0]
    );
    assert!(
        e[1].starts_with("weir.toml:5:9: field `workers.count`"),
        "{}",
        e[1]
    );
    assert!(
        e[2].starts_with("weir.toml:6:1:") && e[2].contains("mdoe"),
        "{}",
        e[2]
    );
    assert!(
        e[3].starts_with("weir.toml:15:29:") && e[3].contains("70000"),
        "{}",
        e[3]
    );
}

#[test]
fn a_blanked_required_key_is_not_reported_twice() {
    // `default_action` has the type error; blanking it must not add "missing field".
    let e = errors(
        "[[listener]]\nport = 80\ndefault_action = { type = \"fixed-response\", status_code = \"ok\" }\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("field `listener[0].default_action.status_code`"),
        "{}",
        e[0]
    );
}

#[test]
fn a_type_error_inside_an_action_or_condition_names_the_field() {
    // An action and a condition are read whole before their `type`/`field` picks the variant:
    // toml placed their fields' errors on the whole inline table (`listener[0].default_action`).
    let e = errors(
        "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = 5 }\n",
    );
    assert_eq!(
        e,
        [
            "weir.toml:3:53: field `listener[0].default_action.target_group`: invalid type: \
          integer `5`, expected a string"
        ]
    );
    let rule = |action: &str, condition: &str| {
        format!(
            "[[listener]]\nport = 80\n[[listener.rule]]\npriority = 1\n\
             condition = [{{ field = \"host-header\", values = [\"a\"] }}, {condition}]\n\
             action = {action}\n"
        )
    };
    let ok = r#"{ type = "fixed-response", status_code = 200 }"#;
    let cases = [
        (
            r#"{ type = "redirect", status_code = "HTTP_303" }"#,
            r#"{ field = "path-pattern", values = ["/a"] }"#,
            "listener[0].rule[0].action.status_code",
            "unknown variant `HTTP_303`",
        ),
        (
            r#"{ type = "forwrd", target_group = "a" }"#,
            r#"{ field = "path-pattern", values = ["/a"] }"#,
            "listener[0].rule[0].action.type",
            "unknown variant `forwrd`",
        ),
        (
            r#"{ type = "forward", target_grup = "a" }"#,
            r#"{ field = "path-pattern", values = ["/a"] }"#,
            "listener[0].rule[0].action.target_grup",
            "unknown field `target_grup`",
        ),
        (
            ok,
            r#"{ field = "path-pattern", values = "/a" }"#,
            "listener[0].rule[0].condition[1].values",
            "invalid type: string \"/a\", expected a sequence",
        ),
        (
            ok,
            r#"{ field = "query-string", values = [{ key = 5, value = "x" }] }"#,
            "listener[0].rule[0].condition[1].values[0].key",
            "invalid type: integer `5`, expected a string",
        ),
    ];
    for (action, condition, field, said) in cases {
        let e = errors(&rule(action, condition));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(e[0].contains(&format!("field `{field}`: ")), "{}", e[0]);
        assert!(e[0].contains(said), "{}", e[0]);
    }
    // Two fields the message could be about: the table is named, as before.
    let e = errors(
        "[[listener]]\nport = 80\n\
         default_action = { type = \"redirect\", port = \"x\", host = \"x\", status_code = \"x\" }\n",
    );
    assert!(
        e[0].contains("field `listener[0].default_action`: unknown variant `x`"),
        "{}",
        e[0]
    );
}

#[test]
fn bad_enum_value_lists_the_choices() {
    let e = errors("[xdp]\nmode = \"turbo\"\n");
    assert!(e[0].contains("field `xdp.mode`"), "{}", e[0]);
    assert!(e[0].contains("native"), "{}", e[0]);
}

#[test]
fn every_semantic_error_is_reported_with_its_place() {
    let text = "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n\n[[vip]]\naddress = \"not-an-ip\"\nport = 0\n\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n\n[deny]\nsources = [\"192.0.2.0/24\", \"192.0.2.1/24\", \"nonsense\"]\n";
    let e = errors(text);
    let expect = [
        "weir.toml:6:11: field `vip[1].address`",
        "weir.toml:7:8: field `vip[1].port`",
        "weir.toml:9:1: field `vip[2]`",
        "weir.toml:14:28: field `deny.sources[1]`",
        "weir.toml:14:44: field `deny.sources[2]`",
    ];
    assert_eq!(e.len(), expect.len(), "{e:#?}");
    for (got, want) in e.iter().zip(expect) {
        assert!(got.starts_with(want), "got {got}\nwant {want}");
    }
    assert!(
        e[3].contains("192.0.2.0/24"),
        "suggests the prefix: {}",
        e[3]
    );
}

#[test]
fn without_vips_the_listeners_ports_on_the_interface_are_vips() {
    let cfg = Config::load(None).unwrap();
    let specs = cfg.vip_specs();
    assert!(!specs.is_empty());
    assert!(specs.iter().all(|s| s.address == l4::INTERFACE_ADDRESS));
    let mut ports: Vec<u16> = cfg.l7.listener.iter().map(|l| l.port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(specs.iter().map(|s| s.port).collect::<Vec<_>>(), ports);
}

#[test]
fn embedded_default_matches_the_l7_default() {
    let cfg = Config::load(None).unwrap();
    let l7 = L7Config::default();
    assert_eq!(cfg.l7.listener.len(), l7.listener.len());
    for (a, b) in cfg.l7.listener.iter().zip(&l7.listener) {
        assert_eq!(
            (a.address, a.port, a.protocol),
            (b.address, b.port, b.protocol)
        );
        assert_eq!(a.default_action, b.default_action);
    }
    assert_eq!(
        cfg.l7.load_balancer.health_check_path,
        l7.load_balancer.health_check_path
    );
}

#[test]
fn l7_errors_are_located_too() {
    let e = errors(
        "[[listener]]\nport = 80\ndefault_action = { type = \"forward\", target_group = \"nope\" }\n",
    );
    assert!(
        e.iter()
            .any(|l| l.starts_with("weir.toml:3:") && l.contains("listener[0]")),
        "{e:#?}"
    );
}

#[test]
fn the_edge_example_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/edge.toml");
    let cfg = Config::load(Some(&path)).unwrap();
    assert_eq!(cfg.vip_specs().len(), 3);
    assert_eq!(cfg.deny.sources.len(), 3);
    assert_eq!(cfg.workers.steering, Steering::Maglev);
}

#[test]
fn the_watchdog_is_off_or_at_least_four_report_periods() {
    let cfg = Config::load(None).unwrap();
    assert_eq!(cfg.workers.watchdog_seconds, 10, "on by default");
    let listener = "[[listener]]\nport = 80\n\
                    default_action = { type = \"fixed-response\", status_code = 200 }\n";
    for ok in [0, 2, 3600] {
        let text = format!("[workers]\nwatchdog_seconds = {ok}\n\n{listener}");
        let cfg = Config::parse("weir.toml", &text).unwrap();
        assert_eq!(cfg.workers.watchdog_seconds, ok);
    }
    for bad in [1, 3601] {
        let e = errors(&format!(
            "[workers]\nwatchdog_seconds = {bad}\n\n{listener}"
        ));
        assert!(
            e.len() == 1
                && e[0].contains("field `workers.watchdog_seconds`")
                && e[0].contains("0 (off)"),
            "{e:#?}"
        );
    }
}

/// `[[syn.vip]] address = "10.201.0.99"` named no VIP and passed `weir check`: with every VIP
/// an address in the file it is refused, naming the VIPs; a port no VIP has is refused too when
/// the VIPs are the interface's addresses (those are known only at start: the daemon warns).
#[test]
fn a_syn_override_must_name_a_vip() {
    let vips = "[[vip]]\naddress = \"10.201.0.2\"\nport = 80\n[[vip]]\naddress = \"10.201.0.2\"\nport = 53\nprotocol = \"udp\"\n";
    let e = errors(&format!(
        "{vips}[[syn.vip]]\naddress = \"10.201.0.99\"\nport = 80\nmode = \"always\"\n"
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].contains("field `syn.vip[0]`: 10.201.0.99 port 80 is not a VIP")
            && e[0].contains("10.201.0.2:80/tcp"),
        "{}",
        e[0]
    );
    for good in [
        "address = \"10.201.0.2\"\nport = 80",
        "address = \"::ffff:10.201.0.2\"\nport = 80",
        "address = \"10.201.0.2\"\nport = 53",
        "address = \"interface\"\nport = 80",
    ] {
        Config::parse(
            "weir.toml",
            &format!("{vips}[[syn.vip]]\n{good}\nmode = \"always\"\n"),
        )
        .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
    let listener = "[[listener]]\nport = 19505\ndefault_action = { type = \"fixed-response\", status_code = 200 }\n";
    let e = errors(&format!(
        "{listener}[[syn.vip]]\naddress = \"interface\"\nport = 19506\nmode = \"always\"\n"
    ));
    assert!(
        e[0].contains("field `syn.vip[0].port`: no VIP has port 19506 (the VIPs' ports: 19505)"),
        "{}",
        e[0]
    );
    // An address, with the VIPs the interface's: known at start, where weir warns.
    Config::parse(
        "weir.toml",
        &format!(
            "{listener}[[syn.vip]]\naddress = \"10.201.0.99\"\nport = 19505\nmode = \"always\"\n"
        ),
    )
    .unwrap();
}

/// An integer beyond TOML's 64 bits is a syntax error to the parser: it was reported as
/// `weir.toml:7:36: number too large to fit in target type`, with no field.
#[test]
fn an_integer_too_large_names_its_field() {
    let e = errors(
        "[[listener]]\nport = 80\ndefault_action = { type = \"fixed-response\", status_code = 200 }\n\
         [[target_group]]\nname = \"tg\"\nhealth_check = { interval_seconds = 5, timeout_seconds = 99999999999999999999 }\n",
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(
            "weir.toml:6:58: field `target_group[0].health_check.timeout_seconds`: `99999999999999999999` is out of range"
        ),
        "{}",
        e[0]
    );
    let e = errors("[xdp]\nstats_interval_seconds = 18446744073709551616\n");
    assert!(
        e[0].starts_with("weir.toml:2:26: field `xdp.stats_interval_seconds`:"),
        "{}",
        e[0]
    );
}
