//! The `mcp:1` profile: the binding object of an MCP `tools/call`, from the raw JSON of its
//! `params` so that what `serde_json` would silently accept (a duplicate member) is seen.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value, json};

use super::uri::{self, HostRules};
use super::{
    Binding, BindingError, MCP_DOMAIN, MCP_PROFILE, exact_members, string_array, value_hash,
};

/// The `_meta` members a route can never bind: they carry the payment and progress, not the
/// purchased operation.
const UNBINDABLE_METADATA: [&str; 2] = ["x402/payment", "progressToken"];

/// The largest integer magnitude IEEE-754 doubles hold exactly (2^53 − 1).
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// `mcp:1` for a `tools/call` whose `params` are the raw JSON text `params_json` (so duplicate
/// member names, lone surrogates and out-of-range integers are seen), on the MCP endpoint
/// `server`, binding the `_meta` members named in `bound_metadata`.
pub fn mcp_binding(
    server: &str,
    bound_metadata: &[String],
    params_json: &str,
) -> Result<Binding, BindingError> {
    check_server(server)?;
    check_metadata_names(bound_metadata.iter().map(String::as_str))?;
    let StrictValue(params) = serde_json::from_str(params_json)
        .map_err(|err| BindingError::binding(format!("tools/call params: {err}")))?;
    let Some(params) = params.as_object() else {
        return Err(BindingError::binding("tools/call params are not an object"));
    };
    let name = match params.get("name") {
        Some(Value::String(name)) if !name.is_empty() => name,
        _ => {
            return Err(BindingError::binding(
                "tools/call params.name is not a non-empty string",
            ));
        }
    };
    let empty = Value::Object(Map::new());
    let arguments = optional_object(params, "arguments", &empty)?;
    let meta = optional_object(params, "_meta", &empty)?;
    check_numbers(arguments, "params.arguments")?;
    let metadata = bound_metadata
        .iter()
        .map(|member| {
            let value = match meta.get(member) {
                Some(value) => {
                    check_numbers(value, "a bound params._meta member")?;
                    let canonical = serde_json_canonicalizer::to_vec(value).map_err(|err| {
                        BindingError::binding(format!("cannot canonicalize _meta: {err}"))
                    })?;
                    Some(canonical)
                }
                None => None,
            };
            Ok(json!({ "name": member, "valueHash": value_hash(value.as_deref()) }))
        })
        .collect::<Result<Vec<Value>, BindingError>>()?;
    Binding::of(&json!({
        "domain": MCP_DOMAIN,
        "server": server,
        "method": "tools/call",
        "name": name,
        "arguments": arguments,
        "metadata": metadata,
    }))
}

/// Validates an `mcp:1` `requestBindingParams` object: exactly `server` and `metadata`.
pub(super) fn check_params(params: &Value) -> Result<(), BindingError> {
    let members = exact_members(params, MCP_PROFILE, &["server", "metadata"])?;
    match members.get("server") {
        Some(Value::String(server)) => check_server(server)?,
        _ => return Err(BindingError::binding("mcp:1 server is not a string")),
    }
    if let Some(metadata) = members.get("metadata") {
        check_metadata_names(string_array(metadata, "mcp:1 metadata")?)?;
    }
    Ok(())
}

/// Checks the MCP server identity: an absolute ASCII URI without user information or fragment.
fn check_server(server: &str) -> Result<(), BindingError> {
    uri::parse_absolute_uri(server, HostRules::Generic)
        .map(drop)
        .map_err(|err| BindingError::binding(format!("mcp:1 server {err}")))
}

/// Checks bound metadata names: non-empty, strictly ascending in JCS property order (UTF-16
/// code units), never `x402/payment` or `progressToken`.
fn check_metadata_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), BindingError> {
    let mut previous: Option<&str> = None;
    for name in names {
        if name.is_empty() {
            return Err(BindingError::binding("an mcp:1 metadata name is empty"));
        }
        if UNBINDABLE_METADATA.contains(&name) {
            return Err(BindingError::binding(format!(
                "{name:?} cannot be bound metadata"
            )));
        }
        if let Some(previous) = previous {
            if !previous.encode_utf16().lt(name.encode_utf16()) {
                return Err(BindingError::binding(format!(
                    "mcp:1 metadata names are not unique and in JCS order ({previous:?} before {name:?})"
                )));
            }
        }
        previous = Some(name);
    }
    Ok(())
}

/// The object member `name` of `params`, `empty` when absent; anything but an object (null
/// included) is refused.
fn optional_object<'a>(
    params: &'a Map<String, Value>,
    name: &str,
    empty: &'a Value,
) -> Result<&'a Value, BindingError> {
    match params.get(name) {
        None => Ok(empty),
        Some(value @ Value::Object(_)) => Ok(value),
        Some(_) => Err(BindingError::binding(format!(
            "tools/call params.{name} is not an object"
        ))),
    }
}

/// Refuses integral numbers beyond ±(2^53 − 1) anywhere in `value` (open question
/// `mcp-integer-range`: JCS would round them, so two literals could share a hash).
fn check_numbers(value: &Value, what: &str) -> Result<(), BindingError> {
    match value {
        Value::Number(number) if !is_exact(number) => Err(BindingError::binding(format!(
            "{what} holds {number}, an integer beyond 2^53 - 1"
        ))),
        Value::Array(items) => items.iter().try_for_each(|item| check_numbers(item, what)),
        Value::Object(members) => members
            .values()
            .try_for_each(|member| check_numbers(member, what)),
        _ => Ok(()),
    }
}

/// Whether `number` is not an integer of magnitude above 2^53 − 1. A literal too large for
/// `u64`/`i64` arrives as a double; any integral double that large is refused too, however it
/// was spelled (`1e300` included): the parsed value no longer tells the spellings apart.
fn is_exact(number: &Number) -> bool {
    if let Some(unsigned) = number.as_u64() {
        return unsigned <= MAX_SAFE_INTEGER;
    }
    if let Some(signed) = number.as_i64() {
        return signed.unsigned_abs() <= MAX_SAFE_INTEGER;
    }
    // A double's magnitude above 2^53 is always integral, so the bound alone decides.
    number
        .as_f64()
        .is_some_and(|double| double.abs() <= MAX_SAFE_INTEGER as f64)
}

/// A JSON value parsed with duplicate object member names refused (`serde_json::Value` keeps
/// the last one silently). `serde_json` itself refuses lone surrogates and bounds the depth.
struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number outside the JSON data model"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(format!("duplicate member {name:?}")));
            }
            let StrictValue(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Value, String> {
        serde_json::from_str::<StrictValue>(json)
            .map(|StrictValue(value)| value)
            .map_err(|err| err.to_string())
    }

    #[test]
    fn duplicate_members_are_refused_at_any_depth_and_after_unescaping() {
        assert!(parse(r#"{"a":1,"a":2}"#).is_err());
        assert!(parse(r#"{"x":[{"a":1,"\u0061":2}]}"#).is_err());
        assert_eq!(parse(r#"{"a":{"a":1}}"#), Ok(json!({"a": {"a": 1}})));
        assert!(parse(r#"{"a":"\ud800"}"#).is_err());
        assert!(parse(r#"{"a":1} x"#).is_err());
    }

    #[test]
    fn integers_beyond_the_exact_range_are_refused_either_sign() {
        for (text, exact) in [
            ("9007199254740991", true),
            ("-9007199254740991", true),
            ("9007199254740992", false),
            ("-9007199254740992", false),
            ("18446744073709551616", false),
            ("-18446744073709551616", false),
            ("1e300", false),
            ("0.5", true),
            ("-0", true),
        ] {
            let value = parse(text);
            assert_eq!(
                value.map(|value| check_numbers(&value, "x").is_ok()),
                Ok(exact),
                "{text}"
            );
        }
    }

    #[test]
    fn metadata_names_sort_by_utf16_code_units() {
        // U+1F600 sorts after U+FF61 in UTF-8 byte order but before it in UTF-16 (a surrogate).
        assert!(check_metadata_names(["\u{1F600}", "\u{FF61}"]).is_ok());
        assert!(check_metadata_names(["\u{FF61}", "\u{1F600}"]).is_err());
        assert!(check_metadata_names(["a", "a"]).is_err());
    }
}
