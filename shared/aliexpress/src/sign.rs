//! The request signature: HMAC-SHA256, keyed with the app secret, over the optional
//! `/rest` API path followed by every sent parameter's `name` + `value`, sorted by name in ASCII
//! byte order, hex-encoded in UPPER case.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The string the signature covers: `api_path` (only for `/rest` system APIs, e.g.
/// `/auth/token/refresh`; `None` for `/sync`) followed by `name1value1name2value2…`.
///
/// Parameters are sorted by name in ASCII byte order (upper case < `_` < lower case, which is
/// Rust's `str` order); values are raw, not URL-encoded (encoding happens on the wire, after
/// signing). A parameter named `sign` is left out: it is the signature itself.
pub fn string_to_sign(api_path: Option<&str>, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().filter(|(k, _)| k != "sign").collect();
    // Stable sort: should a name ever repeat, the values keep the order they are sent in.
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = String::from(api_path.unwrap_or(""));
    for (name, value) in sorted {
        out.push_str(name);
        out.push_str(value);
    }
    out
}

/// The `sign` parameter for a request: HMAC-SHA256 of [`string_to_sign`] with the app secret,
/// as UPPERCASE hex (the gateway rejects lower case).
///
/// `params` must be exactly the parameters sent (system and business, query and body). The caller
/// must not send empty-valued parameters at all: SDKs disagree on whether they are signed, so the
/// only safe choice is to leave them out.
pub fn sign(secret: &str, api_path: Option<&str>, params: &[(String, String)]) -> String {
    let message = string_to_sign(api_path, params);
    // HMAC takes a key of any length, so this never fails; should it ever, an empty signature is
    // refused by the gateway as `IncompleteSignature`, a permanent error, rather than a panic.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return String::new();
    };
    mac.update(message.as_bytes());
    hex::encode_upper(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn vector_1_the_official_doc_sample() {
        let params = p(&[
            ("access_token", "test"),
            ("app_key", "123456"),
            ("order_id", "1234"),
            ("sign_method", "sha256"),
            ("timestamp", "1517820392000"),
        ]);
        assert_eq!(
            string_to_sign(Some("/order/get"), &params),
            "/order/getaccess_tokentestapp_key123456order_id1234sign_methodsha256timestamp1517820392000"
        );
        assert_eq!(
            sign("helloworld", Some("/order/get"), &params),
            "4190D32361CFB9581350222F345CB77F3B19F0E31D162316848A2C1FFD5FAB4A"
        );
    }

    #[test]
    fn vector_2_sort_order_and_path_prefix() {
        let params = p(&[
            ("foo", "1"),
            ("bar", "2"),
            ("foo_bar", "3"),
            ("foobar", "4"),
        ]);
        assert_eq!(
            string_to_sign(Some("/test/api"), &params),
            "/test/apibar2foo1foo_bar3foobar4"
        );
        assert_eq!(
            sign("helloworld", Some("/test/api"), &params),
            "BD011266EC150C787B2201495AA2D6F326BB6910DE77E84EA28F5215DCD7FA5E"
        );
    }

    #[test]
    fn vector_3_sync_without_a_path_prefix() {
        let params = p(&[
            ("app_key", "123456"),
            ("method", "aliexpress.trade.ds.order.get"),
            ("session", "test"),
            ("sign_method", "sha256"),
            ("timestamp", "1517820392000"),
            ("single_order_query", r#"{"order_id":8198352049851315}"#),
        ]);
        assert_eq!(
            string_to_sign(None, &params),
            r#"app_key123456methodaliexpress.trade.ds.order.getsessiontestsign_methodsha256single_order_query{"order_id":8198352049851315}timestamp1517820392000"#
        );
        assert_eq!(
            sign("helloworld", None, &params),
            "53B0CEFFBED50E183410AF61D6524D98AFE1284A7CFFE8B5BDA824A22395A89D"
        );
    }

    #[test]
    fn the_sign_parameter_itself_is_not_signed_and_upper_case_sorts_first() {
        let with_sign = p(&[("b", "2"), ("sign", "XYZ"), ("A", "1"), ("_c", "3")]);
        assert_eq!(string_to_sign(None, &with_sign), "A1_c3b2");
    }
}
