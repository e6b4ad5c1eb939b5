//! Maps between TOML key paths (`vip[1].address`) and places in the file (line, column).
//!
//! Validation speaks in key paths; a human wants `file:line:column`. Parse errors speak in byte
//! spans; a human wants the field's name. `toml_edit` keeps spans, so both directions are a walk
//! over its document.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Key(String),
    Index(usize),
}

/// Parses `a.b[2].c` into steps. Keys are bare TOML keys (no dots or brackets inside).
pub fn parse_path(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            steps.push(Step::Key(key.to_string()));
        }
        while let Some(close) = rest.find(']') {
            if let Ok(i) = rest[1..close].parse() {
                steps.push(Step::Index(i));
            }
            rest = &rest[close + 1..];
        }
    }
    steps
}

pub fn format_path(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// A node of the document: tables of either kind, arrays of either kind, or a value.
#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
    Table(&'a Table),
}

impl<'a> Node<'a> {
    fn span(self) -> Option<Range<usize>> {
        match self {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
            Node::Table(t) => t.span(),
        }
    }

    fn child(self, step: &Step) -> Option<(Node<'a>, Option<Range<usize>>)> {
        match (self, step) {
            (Node::Table(t), Step::Key(k)) | (Node::Item(Item::Table(t)), Step::Key(k)) => {
                let (key, item) = t.get_key_value(k)?;
                Some((Node::Item(item), key.span()))
            }
            (Node::Item(Item::Value(v)), s) => Node::Value(v).child(s),
            (Node::Value(Value::InlineTable(t)), Step::Key(k)) => {
                let (key, item) = t.get_key_value(k)?;
                Some((Node::Item(item), key.span()))
            }
            (Node::Item(Item::ArrayOfTables(a)), Step::Index(i)) => {
                Some((Node::Table(a.get(*i)?), None))
            }
            (Node::Value(Value::Array(a)), Step::Index(i)) => Some((Node::Value(a.get(*i)?), None)),
            _ => None,
        }
    }

    fn children(self) -> Vec<(Step, Node<'a>)> {
        match self {
            Node::Table(t) | Node::Item(Item::Table(t)) => t
                .iter()
                .filter_map(|(k, _)| t.get(k).map(|i| (Step::Key(k.to_string()), Node::Item(i))))
                .collect(),
            Node::Item(Item::Value(v)) => Node::Value(v).children(),
            Node::Value(Value::InlineTable(t)) => t
                .iter()
                .map(|(k, v)| (Step::Key(k.to_string()), Node::Value(v)))
                .collect(),
            Node::Item(Item::ArrayOfTables(a)) => a
                .iter()
                .enumerate()
                .map(|(i, t)| (Step::Index(i), Node::Table(t)))
                .collect(),
            Node::Value(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| (Step::Index(i), Node::Value(v)))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// The byte span of the deepest part of `path` present in the document: the value if it exists,
/// else the key, else the nearest existing ancestor (a missing field points at its table).
pub fn span_of(doc: &ImDocument<&str>, path: &str) -> Option<Range<usize>> {
    let mut node = Node::Table(doc.as_table());
    let mut best = None;
    for step in parse_path(path) {
        let Some((child, key_span)) = node.child(&step) else {
            break;
        };
        best = child.span().or(key_span).or(best);
        node = child;
    }
    best
}

/// The key path of the innermost node whose span contains `offset`.
pub fn path_at(doc: &ImDocument<&str>, offset: usize) -> Option<String> {
    fn walk(node: Node<'_>, offset: usize, path: &mut Vec<Step>) -> bool {
        for (step, child) in node.children() {
            let inside = child.span().is_some_and(|s| s.contains(&offset));
            path.push(step);
            if walk(child, offset, path) || inside {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = Vec::new();
    walk(Node::Table(doc.as_table()), offset, &mut path);
    (!path.is_empty()).then(|| format_path(&path))
}

/// The field under `path` that a deserializer's `message` is about, when the error landed on
/// the table at `path` rather than on the field: an internally tagged enum (an action's `type`,
/// a condition's `field`) is read whole before its variant, so serde reports a field's error
/// with no field and toml places it on the whole table (or on the array of such tables). The
/// field is the one key the message names as unknown, or the one value it describes as serde
/// describes values ("invalid type: integer `5`", "unknown variant `HTTP_303`"). `None` when
/// the node is not a table or array, or no field or several fit.
pub fn field_named_by(doc: &ImDocument<&str>, path: &str, message: &str) -> Option<String> {
    let mut node = Node::Table(doc.as_table());
    let steps = parse_path(path);
    for step in &steps {
        node = node.child(step)?.0;
    }
    if !is_container(node) {
        return None;
    }
    let mut fits = Vec::new();
    let mut below = steps;
    collect_fits(node, message, &mut below, &mut fits);
    match fits.as_slice() {
        [one] => Some(format_path(one)),
        _ => None,
    }
}

/// A table or an array (toml places an error in an array's inline table on the array).
fn is_container(node: Node<'_>) -> bool {
    match node {
        Node::Table(_) | Node::Item(Item::Table(_) | Item::ArrayOfTables(_)) => true,
        Node::Item(Item::Value(v)) | Node::Value(v) => v.is_inline_table() || v.is_array(),
        Node::Item(Item::None) => false,
    }
}

/// Every node below `node` (at `path`) that `message` names or describes, into `fits`.
fn collect_fits(node: Node<'_>, message: &str, path: &mut Vec<Step>, fits: &mut Vec<Vec<Step>>) {
    for (step, child) in node.children() {
        let named =
            matches!(&step, Step::Key(k) if message.contains(&format!("unknown field `{k}`")));
        path.push(step);
        if named || describes(message, child) {
            fits.push(path.clone());
        }
        collect_fits(child, message, path, fits);
        path.pop();
    }
}

/// Whether `message` is serde's complaint about the value of `node`: "invalid type: X, …" or
/// "invalid value: X, …" with X as serde's `Unexpected` shows it, or an unknown variant.
fn describes(message: &str, node: Node<'_>) -> bool {
    use serde::de::Unexpected;
    let value = match node {
        Node::Value(v) | Node::Item(Item::Value(v)) => v,
        _ => return false,
    };
    let shown = match value {
        Value::String(s) => {
            if message.contains(&format!("unknown variant `{}`", s.value())) {
                return true;
            }
            Unexpected::Str(s.value()).to_string()
        }
        Value::Integer(i) => Unexpected::Signed(*i.value()).to_string(),
        Value::Float(f) => Unexpected::Float(*f.value()).to_string(),
        Value::Boolean(b) => Unexpected::Bool(*b.value()).to_string(),
        // An array or inline table is "a sequence" or "a map" to serde: too many fit.
        _ => return false,
    };
    ["invalid type: ", "invalid value: "]
        .iter()
        .any(|p| message.starts_with(&format!("{p}{shown},")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[xdp]\nmode = \"auto\"\n\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n\n[[vip]]\naddress = \"10.0.0.2\"\nport = 99999\n\n[deny]\nsources = [\"a\", \"192.0.2.0/24\"]\n";

    #[test]
    fn path_round_trip() {
        let p = "listener[0].rule[2].condition[0].values[1]";
        assert_eq!(format_path(&parse_path(p)), p);
    }

    #[test]
    fn span_of_finds_values_in_arrays_of_tables_and_arrays() {
        let doc = ImDocument::parse(DOC).unwrap();
        let s = span_of(&doc, "vip[1].port").unwrap();
        assert_eq!(&DOC[s.clone()], "99999");
        assert_eq!(line_col(DOC, s.start), (10, 8));
        let s = span_of(&doc, "deny.sources[0]").unwrap();
        assert_eq!(&DOC[s.clone()], "\"a\"");
        assert_eq!(line_col(DOC, s.start).0, 13);
    }

    #[test]
    fn missing_field_points_at_its_table() {
        let doc = ImDocument::parse(DOC).unwrap();
        let s = span_of(&doc, "vip[1].protocol").unwrap();
        assert_eq!(line_col(DOC, s.start).0, 8);
    }

    #[test]
    fn path_at_names_the_field_under_an_offset() {
        let doc = ImDocument::parse(DOC).unwrap();
        let off = DOC.find("99999").unwrap() + 2;
        assert_eq!(path_at(&doc, off).as_deref(), Some("vip[1].port"));
        let off = DOC.find("192.0.2.0").unwrap();
        assert_eq!(path_at(&doc, off).as_deref(), Some("deny.sources[1]"));
    }
}
