//! Tolerant reading of JSON documents: typed accessors over `serde_json::Value` that know the
//! path of what they read, for errors that say where without saying what.
//!
//! Rules shared by every payload parser:
//! - a field that is absent and a field that is `null` are the same (Shopify payloads use both,
//!   depending on API version and `include_fields`);
//! - a field the parser reads must have its type, or the payload is rejected: a wrong type in a
//!   field the sync relies on means the shape is not understood, and guessing would corrupt state;
//! - fields nobody reads are never looked at, whatever their type.
//!
//! Integers come from `serde_json::Value`, which keeps every JSON integer up to `u64::MAX`
//! exactly (`Number::as_u64`); nothing goes through `f64`, so ids above 2^53 survive.

use super::error::PayloadError;
use super::headers::rfc3339_ms;
use serde_json::{Map, Value};

/// Parses a body (already size-checked by the caller) into a JSON value. Errors keep only the
/// position: serde_json's messages can quote the input.
pub(crate) fn parse_body(body: &[u8]) -> Result<Value, PayloadError> {
    super::check_body_size(body)?;
    serde_json::from_slice(body).map_err(|e| PayloadError::NotJson {
        line: e.line(),
        column: e.column(),
    })
}

/// A JSON object and the path that led to it (`""` for the document root).
#[derive(Debug, Clone)]
pub(crate) struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    /// The document root, which must be an object.
    pub(crate) fn root(value: &'a Value) -> Result<Self, PayloadError> {
        Self::at(value, String::new())
    }

    /// `value`, found at `path`, which must be an object.
    pub(crate) fn at(value: &'a Value, path: String) -> Result<Self, PayloadError> {
        match value {
            Value::Object(map) => Ok(Self { map, path }),
            _ => Err(PayloadError::invalid(
                if path.is_empty() { "(root)" } else { &path },
                "a JSON object",
            )),
        }
    }

    /// The path of `key` inside this object, e.g. `line_items[2].id`.
    pub(crate) fn path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The value of `key`, `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The underlying map, for callers that look at keys themselves.
    pub(crate) fn map(&self) -> &'a Map<String, Value> {
        self.map
    }

    pub(crate) fn str(&self, key: &str) -> Result<Option<&'a str>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(PayloadError::invalid(self.path(key), "a string")),
        }
    }

    pub(crate) fn bool(&self, key: &str) -> Result<Option<bool>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(PayloadError::invalid(self.path(key), "a boolean")),
        }
    }

    /// A non-negative JSON integer that fits a `u32` (quantities).
    pub(crate) fn u32(&self, key: &str) -> Result<Option<u32>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    PayloadError::invalid(self.path(key), "an integer from 0 to 2^32-1")
                }),
        }
    }

    /// A Shopify id: a JSON integer, a decimal string, or a GID of `kind`
    /// (`gid://shopify/<kind>/<n>`).
    pub(crate) fn id(&self, key: &str, kind: &str) -> Result<Option<u64>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => id_from_value(v, kind)
                .map(Some)
                .ok_or_else(|| PayloadError::invalid(self.path(key), "a Shopify id")),
        }
    }

    /// The object's own id: `id`, else the GID in `admin_graphql_api_id`. Old payloads (the 2008
    /// REST fixture) have no GID; an id-less object with a GID is accepted too. When both are
    /// present they must agree: a disagreement means the payload is not what it claims to be.
    pub(crate) fn own_id(&self, kind: &str) -> Result<u64, PayloadError> {
        let id = self.id("id", kind)?;
        // The GID only matters when it can be read: an unreadable one next to a valid `id` is a
        // field the sync does not need.
        let from_gid = self
            .get("admin_graphql_api_id")
            .and_then(Value::as_str)
            .and_then(|s| gid_id(s, kind));
        match (id, from_gid) {
            (Some(id), Some(g)) if id != g => Err(PayloadError::invalid(
                self.path("admin_graphql_api_id"),
                "the GID of `id`",
            )),
            (Some(id), _) => Ok(id),
            (None, Some(g)) => Ok(g),
            (None, None) if self.get("admin_graphql_api_id").is_some() => Err(
                PayloadError::invalid(self.path("admin_graphql_api_id"), "a Shopify GID"),
            ),
            (None, None) => Err(PayloadError::missing(self.path("id"))),
        }
    }

    /// An RFC 3339 timestamp (offset required) in milliseconds since the epoch.
    pub(crate) fn timestamp_ms(&self, key: &str) -> Result<Option<i64>, PayloadError> {
        match self.str(key)? {
            None => Ok(None),
            Some(s) => rfc3339_ms(s).map(Some).ok_or_else(|| {
                PayloadError::invalid(self.path(key), "an ISO-8601 timestamp with offset")
            }),
        }
    }

    /// An array; absent or null is empty.
    pub(crate) fn array(&self, key: &str) -> Result<&'a [Value], PayloadError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(PayloadError::invalid(self.path(key), "an array")),
        }
    }

    /// The elements of an array that must all be objects, each with its path.
    pub(crate) fn objects(
        &self,
        key: &str,
    ) -> Result<impl Iterator<Item = Result<Obj<'a>, PayloadError>> + use<'a>, PayloadError> {
        let base = self.path(key);
        Ok(self
            .array(key)?
            .iter()
            .enumerate()
            .map(move |(i, v)| Obj::at(v, format!("{base}[{i}]"))))
    }

    /// A nested object; absent or null is `None`.
    pub(crate) fn object(&self, key: &str) -> Result<Option<Obj<'a>>, PayloadError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => Obj::at(v, self.path(key)).map(Some),
        }
    }

    /// An array of ids (`orders_to_redact`); absent or null is empty, null elements are skipped.
    pub(crate) fn ids(&self, key: &str, kind: &str) -> Result<Vec<u64>, PayloadError> {
        let base = self.path(key);
        self.array(key)?
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_null())
            .map(|(i, v)| {
                id_from_value(v, kind)
                    .ok_or_else(|| PayloadError::invalid(format!("{base}[{i}]"), "a Shopify id"))
            })
            .collect()
    }
}

/// An id given as a JSON integer, a decimal string or a GID of `kind`. Zero is never a Shopify
/// id: rejecting it keeps a defaulted or truncated value from becoming a key.
pub(crate) fn id_from_value(value: &Value, kind: &str) -> Option<u64> {
    let id = match value {
        // Integers only: `as_u64` is `None` for negatives and for anything stored as f64
        // (fractions, exponents, integers beyond u64), so no rounded id slips through.
        Value::Number(n) => n.as_u64(),
        Value::String(s) => decimal_id(s.trim()).or_else(|| gid_id(s.trim(), kind)),
        _ => None,
    }?;
    (id != 0).then_some(id)
}

/// `"820982911946154508"` → the id. Digits only: `u64::from_str` would also take a `+` sign.
fn decimal_id(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `gid://shopify/<kind>/<n>` (optionally with a `?query`, as some GIDs carry) → `n`, when the
/// kind is the expected one: an order's GID must not pass for a line item's.
pub(crate) fn gid_id(s: &str, kind: &str) -> Option<u64> {
    let rest = s.strip_prefix("gid://shopify/")?;
    let (got_kind, tail) = rest.split_once('/')?;
    if got_kind != kind {
        return None;
    }
    let digits = tail.split_once('?').map_or(tail, |(d, _)| d);
    decimal_id(digits).filter(|&n| n != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_come_from_integers_strings_and_gids_of_the_right_kind() {
        let big = 18_446_744_073_709_551_615_u64;
        assert_eq!(id_from_value(&json!(big), "Order"), Some(big));
        assert_eq!(
            id_from_value(&json!("820982911946154508"), "Order"),
            Some(820_982_911_946_154_508)
        );
        assert_eq!(
            id_from_value(&json!("gid://shopify/Order/820982911946154508"), "Order"),
            Some(820_982_911_946_154_508)
        );
        assert_eq!(
            id_from_value(&json!("gid://shopify/Order/7?foo=bar"), "Order"),
            Some(7)
        );
        for bad in [
            json!("gid://shopify/LineItem/1"),
            json!("gid://shopify/Order/"),
            json!("gid://shopify/Order/x"),
            json!("+5"),
            json!("-5"),
            json!(""),
            json!(0),
            json!("0"),
            json!(-1),
            json!(1.5),
            json!(1e3),
            json!(true),
            json!([1]),
            json!("18446744073709551616"),
        ] {
            assert_eq!(id_from_value(&bad, "Order"), None, "{bad}");
        }
        // A JSON integer beyond u64 is stored as f64 by serde_json and must not round to an id.
        let v: Value = serde_json::from_str("18446744073709551616").unwrap();
        assert_eq!(id_from_value(&v, "Order"), None);
    }
}
