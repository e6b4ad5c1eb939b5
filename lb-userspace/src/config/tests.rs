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
