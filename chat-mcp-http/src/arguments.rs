//! Tool arguments as hosts send them, checked against the tool's input schema before
//! they are deserialized. One pass serves every tool (`ChatServer::call_tool` runs it),
//! and the schema it reads is the one `tools/list` shows, so the two cannot drift.
//!
//! - **Unknown names are refused.** serde would drop them silently, and a model that
//!   sends `timeout_seconds` to `wait_for_events` would get the default timeout without
//!   learning why. The refusal lists the tool's arguments and suggests the likely one.
//! - **Scalars sent as strings are read as the declared type.** Some hosts send every
//!   argument as a string: `"5"` for an integer, `"true"` for a boolean, `"[\"a\"]"`
//!   for a list. A string is converted only when the schema does not accept strings for
//!   that argument, so text arguments are never touched. `""` for an optional argument
//!   counts as omitted, as it does for text.
//! - **A value of the wrong type is refused naming the argument** (serde's own message
//!   does not say which argument it was). List arguments are left to their deserializer,
//!   which also takes `"a, b"`.

use rmcp::model::JsonObject;
use serde_json::{Number, Value};

/// At most this many unknown names are quoted back in a refusal: the request body may
/// hold thousands (up to `--max-request-bytes`), and the model needs the first few.
pub const MAX_QUOTED_NAMES: usize = 8;

/// A refused name longer than this is shortened when quoted back, and gets no
/// suggestion (which costs time proportional to its length).
pub const MAX_QUOTED_NAME_CHARS: usize = 64;

/// Names this many edits apart (after ignoring case, `_` and `-`) are close enough to
/// suggest: `reciepient_id` finds `recipient_id`.
pub const SUGGESTION_DISTANCE: usize = 2;

/// A known name at least this long that begins the unknown one, or the reverse, is
/// suggested too: `timeout_seconds` finds `timeout`. Shorter names would match too much.
pub const MIN_PREFIX_CHARS: usize = 4;

/// An argument read as another type than the one it was sent as.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    /// The argument's name.
    pub name: String,
    /// What was sent (always a string).
    pub sent: String,
    /// What it was read as.
    pub read: Value,
}

impl Converted {
    /// The `debug` log message about this conversion (see `logging.rs`).
    pub fn log_data(&self, tool: &str) -> Value {
        let message = format!(
            "{tool}: argument `{}` was sent as the string {} and read as {}; send it as plain JSON",
            self.name,
            quote(&self.sent),
            self.read
        );
        serde_json::json!({
            "message": message,
            "tool": tool,
            "argument": self.name,
            "sent": self.sent,
            "read": self.read,
        })
    }
}

/// The arguments to hand to the tool, and what was converted on the way.
#[derive(Debug, Default)]
pub struct Checked {
    /// The arguments, with converted values in place.
    pub arguments: Option<JsonObject>,
    /// Every conversion, for the session's debug log.
    pub converted: Vec<Converted>,
}

/// Checks `arguments` of `tool` against its input `schema`. `Err` is the message for an
/// `invalid_arguments` result.
pub fn check(tool: &str, schema: &JsonObject, arguments: Option<JsonObject>) -> Result<Checked, String> {
    let Some(mut arguments) = arguments else { return Ok(Checked::default()) };
    let empty = JsonObject::new();
    let properties = schema.get("properties").and_then(Value::as_object).unwrap_or(&empty);
    let mut unknown: Vec<&String> = arguments.keys().filter(|name| !properties.contains_key(*name)).collect();
    if !unknown.is_empty() {
        unknown.sort();
        return Err(unknown_names(tool, schema, properties, &unknown));
    }
    let mut converted = Vec::new();
    for (name, value) in &mut arguments {
        let types = declared_types(properties.get(name));
        if types.is_empty() {
            continue;
        }
        if let Value::String(sent) = value
            && !types.contains(&"string")
            && let Some(read) = convert(sent, &types)
        {
            converted.push(Converted { name: name.clone(), sent: sent.clone(), read: read.clone() });
            *value = read;
        }
        // A list argument's deserializer also takes `"a, b"`; leave those to it.
        if !types.contains(&"array") && !types.iter().any(|t| accepts(t, value)) {
            return Err(format!(
                "argument `{name}` of {tool} must be {}, got {}. See the tool's input schema.",
                types.join(" or "),
                describe(value)
            ));
        }
    }
    Ok(Checked { arguments: Some(arguments), converted })
}

/// The `type`s a property schema declares (`"integer"`, or `["integer", "null"]`).
fn declared_types(property: Option<&Value>) -> Vec<&str> {
    match property.and_then(|p| p.get("type")) {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// `text` read as one of `types`, if it reads as one.
fn convert(text: &str, types: &[&str]) -> Option<Value> {
    let text = text.trim();
    let has = |t: &str| types.contains(&t);
    if text.is_empty() && has("null") {
        return Some(Value::Null);
    }
    if has("integer") || has("number") {
        if let Ok(n) = text.parse::<i64>() {
            return Some(Value::from(n));
        }
        if let Ok(n) = text.parse::<u64>() {
            return Some(Value::from(n));
        }
    }
    if has("number")
        && let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64)
    {
        return Some(Value::Number(n));
    }
    if has("boolean") {
        if text.eq_ignore_ascii_case("true") {
            return Some(Value::Bool(true));
        }
        if text.eq_ignore_ascii_case("false") {
            return Some(Value::Bool(false));
        }
    }
    if has("array")
        && text.starts_with('[')
        && let Ok(list @ Value::Array(_)) = serde_json::from_str::<Value>(text)
    {
        return Some(list);
    }
    None
}

/// Whether `value` is of JSON Schema type `t`.
fn accepts(t: &str, value: &Value) -> bool {
    match (t, value) {
        ("null", Value::Null) | ("boolean", Value::Bool(_)) | ("string", Value::String(_)) => true,
        ("array", Value::Array(_)) | ("object", Value::Object(_)) | ("number", Value::Number(_)) => true,
        ("integer", Value::Number(n)) => n.is_i64() || n.is_u64(),
        _ => false,
    }
}

/// A value as quoted back to the caller: its type, and the value when it is short.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {}", quote(s)),
        Value::Array(_) => "a list".into(),
        Value::Object(_) => "an object".into(),
    }
}

/// `text` cut to [`MAX_QUOTED_NAME_CHARS`] characters.
fn shorten(text: &str) -> String {
    let mut short: String = text.chars().take(MAX_QUOTED_NAME_CHARS).collect();
    if short.len() < text.len() {
        short.push('…');
    }
    short
}

/// `text` in double quotes, shortened.
fn quote(text: &str) -> String {
    format!("{:?}", shorten(text))
}

/// The refusal for `unknown` argument names.
fn unknown_names(tool: &str, schema: &JsonObject, properties: &JsonObject, unknown: &[&String]) -> String {
    let mut quoted: Vec<String> =
        unknown.iter().take(MAX_QUOTED_NAMES).map(|n| format!("`{}`", shorten(n))).collect();
    if unknown.len() > MAX_QUOTED_NAMES {
        quoted.push(format!("and {} more", unknown.len() - MAX_QUOTED_NAMES));
    }
    let noun = if unknown.len() == 1 { "argument" } else { "arguments" };
    let mut message = format!("unknown {noun} {} for {tool}", quoted.join(", "));
    let suggestions: Vec<String> = unknown
        .iter()
        .take(MAX_QUOTED_NAMES)
        .filter_map(|name| suggest(name, properties).map(|s| format!("`{s}`")))
        .collect();
    if !suggestions.is_empty() {
        message.push_str(&format!(" (did you mean {}?)", suggestions.join(", ")));
    }
    if properties.is_empty() {
        message.push_str(&format!(": {tool} takes no arguments. Call it with {{}}."));
        return message;
    }
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let valid: Vec<String> = properties
        .keys()
        .map(|k| if required.contains(&k.as_str()) { format!("`{k}` (required)") } else { format!("`{k}`") })
        .collect();
    message.push_str(&format!(". Its arguments are {}; see the tool's input schema.", valid.join(", ")));
    message
}

/// The known argument `name` most likely meant, if one is close.
fn suggest<'a>(name: &str, properties: &'a JsonObject) -> Option<&'a str> {
    if name.chars().count() > MAX_QUOTED_NAME_CHARS {
        return None;
    }
    let plain = |s: &str| -> String {
        s.chars().filter(|c| *c != '_' && *c != '-').map(|c| c.to_ascii_lowercase()).collect()
    };
    let wanted = plain(name);
    properties
        .keys()
        .filter_map(|known| {
            let candidate = plain(known);
            let distance = edit_distance(&wanted, &candidate);
            let close = distance <= SUGGESTION_DISTANCE
                || (candidate.len() >= MIN_PREFIX_CHARS
                    && (wanted.starts_with(&candidate) || candidate.starts_with(&wanted)));
            close.then_some((distance, known.as_str()))
        })
        .min()
        .map(|(_, known)| known)
}

/// Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn schema() -> JsonObject {
        let schema = json!({
            "type": "object",
            "properties": {
                "after_seq": {"type": ["integer", "null"]},
                "timeout": {"type": ["number", "null"]},
                "peek": {"type": ["boolean", "null"]},
                "room_id": {"type": "string"},
                "interests": {"type": ["array", "null"], "items": {"type": "string"}},
            },
            "required": ["room_id"],
        });
        schema.as_object().cloned().unwrap_or_default()
    }

    fn args(value: Value) -> Option<JsonObject> {
        value.as_object().cloned()
    }

    #[test]
    fn strings_are_read_as_the_declared_scalar_types() {
        let sent = json!({"after_seq": " 5", "timeout": "0.5", "peek": "TRUE", "room_id": "42", "interests": "[\"a\"]"});
        let checked = check("t", &schema(), args(sent)).expect("accepted");
        let got = Value::Object(checked.arguments.unwrap_or_default());
        assert_eq!(
            got,
            json!({"after_seq": 5, "timeout": 0.5, "peek": true, "room_id": "42", "interests": ["a"]})
        );
        let mut names: Vec<_> = checked.converted.iter().map(|c| c.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["after_seq", "interests", "peek", "timeout"], "text arguments are left alone");
    }

    #[test]
    fn empty_strings_for_optional_scalars_count_as_omitted() {
        let checked = check("t", &schema(), args(json!({"after_seq": "", "room_id": ""}))).expect("accepted");
        assert_eq!(
            Value::Object(checked.arguments.unwrap_or_default()),
            json!({"after_seq": null, "room_id": ""})
        );
        // A comma list stays a string for `one_or_many` to split.
        let checked = check("t", &schema(), args(json!({"interests": "a, b"}))).expect("accepted");
        assert_eq!(checked.arguments.unwrap_or_default()["interests"], "a, b");
    }

    #[test]
    fn wrong_types_name_the_argument() {
        let refused = check("t", &schema(), args(json!({"after_seq": "soon"}))).expect_err("refused");
        assert!(refused.contains("`after_seq`") && refused.contains("integer or null"), "{refused}");
        assert!(refused.contains("\"soon\""), "{refused}");
        let refused = check("t", &schema(), args(json!({"after_seq": 1.5}))).expect_err("refused");
        assert!(refused.contains("the number 1.5"), "{refused}");
        assert!(check("t", &schema(), args(json!({"peek": "yes"}))).is_err());
    }

    #[test]
    fn unknown_names_are_refused_with_suggestions() {
        let refused =
            check("t", &schema(), args(json!({"timeout_seconds": 1, "roomId": "r"}))).expect_err("refused");
        assert!(refused.starts_with("unknown arguments `roomId`, `timeout_seconds` for t"), "{refused}");
        assert!(refused.contains("did you mean `room_id`, `timeout`?"), "{refused}");
        assert!(refused.contains("`room_id` (required)") && refused.contains("`after_seq`"), "{refused}");
        let none = JsonObject::new();
        let refused = check("leave_queue", &none, args(json!({"x": 1}))).expect_err("refused");
        assert!(refused.contains("leave_queue takes no arguments"), "{refused}");
        let many: JsonObject = (0..20).map(|i| (format!("k{i:02}"), json!(i))).collect();
        let refused = check("t", &schema(), Some(many)).expect_err("refused");
        assert!(refused.contains("and 12 more"), "{refused}");
        let long = "x".repeat(10_000);
        let refused = check("t", &schema(), args(json!({ long: 1 }))).expect_err("refused");
        assert!(refused.len() < 1_000, "a long name is shortened: {} chars", refused.len());
    }

    #[test]
    fn no_arguments_and_valid_ones_pass() {
        assert!(check("t", &schema(), None).expect("accepted").arguments.is_none());
        let checked = check("t", &schema(), args(json!({"room_id": "r", "after_seq": 3}))).expect("accepted");
        assert!(checked.converted.is_empty());
        assert_eq!(edit_distance("reciepientid", "recipientid"), 1);
        assert_eq!((edit_distance("flaw", "lawn"), edit_distance("kitten", "sitting")), (2, 3));
    }
}
