//! The dashboard's cookies: a random session id signed with a key derived from the admin token
//! (so a guessed or tampered id is refused before any table read), CSRF tokens, and the signed
//! one-shot flash message. Comparisons of secrets are constant-time.

use dropsync_app::credentials::secrets_equal;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The session cookie's name. `__Host-` would need Secure, which plain-http local runs lack.
pub const SESSION_COOKIE: &str = "ds_session";
pub const FLASH_COOKIE: &str = "ds_flash";
/// How long a sign-in lasts.
pub const SESSION_SECS: i64 = 12 * 3600;

/// Keys derived from the admin token: rotating the token signs everyone out.
#[derive(Clone)]
pub struct Keys {
    cookie: [u8; 32],
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length: this never fails.
    let mut m = match HmacSha256::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    for p in parts {
        m.update(p);
        m.update(b"\x00");
    }
    m.finalize().into_bytes().into()
}

impl Keys {
    pub fn derive(admin_token: &str) -> Self {
        Self {
            cookie: mac(
                admin_token.as_bytes(),
                &[b"dropsync dashboard cookie key v1"],
            ),
        }
    }

    fn sign(&self, purpose: &str, value: &str) -> String {
        hex::encode(mac(&self.cookie, &[purpose.as_bytes(), value.as_bytes()]))
    }

    /// `{id}.{signature}` for the session cookie.
    pub fn session_cookie_value(&self, id: &str) -> String {
        format!("{id}.{}", self.sign("session", id))
    }

    /// The session id of a cookie value whose signature holds.
    pub fn verify_session(&self, value: &str) -> Option<String> {
        let (id, sig) = value.split_once('.')?;
        if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        secrets_equal(sig.as_bytes(), self.sign("session", id).as_bytes()).then(|| id.to_owned())
    }

    /// A flash message as a cookie value: hex text plus signature, so no one else can make the
    /// dashboard show words it did not write.
    pub fn flash_value(&self, kind: FlashKind, text: &str) -> String {
        let payload = hex::encode(format!("{}{text}", kind.code()));
        let sig = self.sign("flash", &payload);
        format!("{payload}.{sig}")
    }

    pub fn verify_flash(&self, value: &str) -> Option<(FlashKind, String)> {
        let (payload, sig) = value.split_once('.')?;
        if !secrets_equal(sig.as_bytes(), self.sign("flash", payload).as_bytes()) {
            return None;
        }
        let raw = String::from_utf8(hex::decode(payload).ok()?).ok()?;
        let mut chars = raw.chars();
        let kind = FlashKind::from_code(chars.next()?)?;
        Some((kind, chars.as_str().to_owned()))
    }
}

/// Whether a flash reports success or a problem (drawn differently, announced the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    Ok,
    Error,
}

impl FlashKind {
    fn code(self) -> char {
        match self {
            FlashKind::Ok => 'o',
            FlashKind::Error => 'e',
        }
    }
    fn from_code(c: char) -> Option<Self> {
        match c {
            'o' => Some(FlashKind::Ok),
            'e' => Some(FlashKind::Error),
            _ => None,
        }
    }
}

/// 32 random bytes, hex. `None` when the OS has no randomness to give (then nothing is issued).
pub fn random_hex() -> Option<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).ok()?;
    Some(hex::encode(b))
}

/// The table key of a session: a hash of its id, so the table never holds a usable cookie.
pub fn storage_key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// The value of one cookie in a request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a lambda_http::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(lambda_http::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value scoped to the dashboard.
pub fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/app; Max-Age={max_age}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cookie_verifies_only_with_its_own_signature_and_key() {
        let k = Keys::derive("adm_0123456789abcdef0123");
        let id = "a".repeat(64);
        let v = k.session_cookie_value(&id);
        assert_eq!(k.verify_session(&v), Some(id.clone()));
        let other = Keys::derive("adm_another-token-entirely");
        assert_eq!(other.verify_session(&v), None);
        let tampered = format!("{}.{}", "b".repeat(64), v.split_once('.').unwrap().1);
        assert_eq!(k.verify_session(&tampered), None);
        assert_eq!(k.verify_session("short.sig"), None);
    }

    #[test]
    fn a_flash_survives_the_round_trip_and_a_forged_one_is_dropped() {
        let k = Keys::derive("adm_0123456789abcdef0123");
        let v = k.flash_value(FlashKind::Error, "Nothing changed: <b>");
        assert_eq!(
            k.verify_flash(&v),
            Some((FlashKind::Error, "Nothing changed: <b>".to_owned()))
        );
        let forged = format!("{}.{}", hex::encode("ohello"), "0".repeat(64));
        assert_eq!(k.verify_flash(&forged), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name_among_several() {
        let mut h = lambda_http::http::HeaderMap::new();
        h.append(
            "cookie",
            "x_ds_session=1; ds_session=abc.def".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc.def"));
        assert_eq!(cookie(&h, FLASH_COOKIE), None);
    }
}
