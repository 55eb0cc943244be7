//! `X-Shopify-Hmac-Sha256` verification.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Length of a SHA-256 digest, and so of a decoded header.
const DIGEST_LEN: usize = 32;
/// Length of its standard, padded base64 encoding.
const HEADER_LEN: usize = 44;

/// The hex SHA-256 of a delivery's body: a dedupe key taken from what the HMAC covers, unlike
/// `X-Shopify-Webhook-Id`, which anyone replaying a captured body can change.
pub fn body_digest(body: &[u8]) -> String {
    use sha2::Digest as _;
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `header` (the `X-Shopify-Hmac-Sha256` value) is the base64 HMAC-SHA256 of `body`
/// under any of `secrets`.
///
/// - `body` must be the **exact raw bytes** received (base64-decoded first when API Gateway sets
///   `isBase64Encoded`). Shopify signs its own serialisation (`\/`, `\u0026` escapes…), so a
///   parsed and re-serialised body never verifies.
/// - `secrets` holds the app's client secret and, for up to an hour after a rotation, the
///   previous one: Shopify may still sign with the old secret. Empty secrets are skipped, since
///   anyone can compute an HMAC under an empty key.
/// - The header must be standard base64 with padding, decoding to 32 bytes; anything else
///   (empty, hex, garbage) is `false`. The comparison is constant-time (`Mac::verify_slice`).
///
/// `false` means answer 401.
pub fn verify_hmac<S: AsRef<[u8]>>(secrets: &[S], body: &[u8], header: &str) -> bool {
    // HTTP stacks usually trim header values; tolerate one that did not.
    let header = header.trim_matches(|c: char| c.is_ascii_whitespace());
    // Cheap rejection before decoding: a valid value has exactly one possible length.
    if header.len() != HEADER_LEN {
        return false;
    }
    let Ok(expected) = STANDARD.decode(header) else {
        return false;
    };
    if expected.len() != DIGEST_LEN {
        return false;
    }
    // No short-circuit: every secret is tried, so the time taken does not reveal which one
    // matched (or whether a rotation is in progress).
    secrets.iter().fold(false, |matched, secret| {
        let secret = secret.as_ref();
        let this = !secret.is_empty()
            && HmacSha256::new_from_slice(secret).is_ok_and(|mut mac| {
                mac.update(body);
                mac.verify_slice(&expected).is_ok()
            });
        matched | this
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "shpss_test_secret";
    // Shopify's documented vector: its escapes (`\/`, `\u0026`) are part of the signed bytes.
    const BODY: &[u8] = br##"{"id":820982911946154508,"name":"#9999","note":"a\/b \u0026 c"}"##;
    const HEADER: &str = "tcKX1/dyrUALHktowGkZMZGKdIukPqkONANSdHTJ+FE=";

    #[test]
    fn the_spec_test_vector_verifies() {
        assert!(verify_hmac(&[SECRET], BODY, HEADER));
    }

    #[test]
    fn the_same_json_re_serialised_does_not_verify() {
        let value: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let reserialised = serde_json::to_vec(&value).unwrap();
        assert_ne!(reserialised, BODY);
        assert!(!verify_hmac(&[SECRET], &reserialised, HEADER));
    }

    #[test]
    fn the_previous_secret_verifies_during_a_rotation() {
        assert!(verify_hmac(&["shpss_new_secret", SECRET], BODY, HEADER));
        assert!(verify_hmac(
            &[SECRET.as_bytes().to_vec(), b"other".to_vec()],
            BODY,
            HEADER
        ));
    }

    #[test]
    fn a_wrong_secret_or_no_secret_does_not_verify() {
        assert!(!verify_hmac(&["shpss_other"], BODY, HEADER));
        assert!(!verify_hmac::<&str>(&[], BODY, HEADER));
        assert!(!verify_hmac(&[""], BODY, HEADER));
    }

    #[test]
    fn a_changed_body_does_not_verify() {
        let mut body = BODY.to_vec();
        body.push(b' ');
        assert!(!verify_hmac(&[SECRET], &body, HEADER));
        assert!(!verify_hmac(&[SECRET], b"", HEADER));
    }

    #[test]
    fn empty_garbage_and_wrongly_encoded_headers_do_not_verify() {
        let digest = STANDARD.decode(HEADER).unwrap();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let unpadded = HEADER.trim_end_matches('=');
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(&digest);
        assert_ne!(url_safe, HEADER);
        for bad in [
            "",
            " ",
            "garbage",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=",
            hex.as_str(),
            unpadded,
            url_safe.as_str(),
            &HEADER[..HEADER.len() - 4],
        ] {
            assert!(!verify_hmac(&[SECRET], BODY, bad), "{bad:?}");
        }
    }

    #[test]
    fn surrounding_whitespace_in_the_header_is_tolerated() {
        assert!(verify_hmac(&[SECRET], BODY, &format!(" {HEADER}\t")));
    }
}
