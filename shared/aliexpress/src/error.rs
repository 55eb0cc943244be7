//! What can go wrong talking to AliExpress, classified by what the caller should do about it.

use std::time::Duration;

/// An AliExpress call that did not produce an answer.
///
/// Messages carry AliExpress' own `code`/`sub_code`/`msg` and `request_id` (useful when asking
/// AliExpress support) but never tokens, signatures, secrets or request URLs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AeError {
    /// `ApiCallLimit`: AliExpress throttled the app key and bans it for `ban` (parsed from "this
    /// ban will last N seconds"). The client already waited and retried up to its attempt limit;
    /// leave the order for the next run.
    #[error("AliExpress rate limit (ApiCallLimit), banned for {}s", ban.as_secs_f64())]
    RateLimited {
        /// How long AliExpress said the ban lasts (1 s when it did not say).
        ban: Duration,
    },
    /// A transient platform or network failure (`ISP` errors, `isp.*` sub-codes, `InternalError`,
    /// HTTP 5xx, timeouts, connection errors) that persisted through the client's retries. A later
    /// run may succeed.
    #[error("AliExpress transient error: {0}")]
    Retryable(String),
    /// The access token was refused (`IllegalAccessToken`) and refreshing it did not help, or the
    /// refresh token itself is invalid or expired (`IllegalRefreshToken`): the merchant must
    /// re-authorize the app. Retrying is pointless until then.
    #[error("AliExpress authorization is no longer valid: the app must be re-authorized")]
    InvalidToken,
    /// A failure retrying cannot fix: a signing bug (`IncompleteSignature`), `InvalidApiPath`,
    /// `MissingParameter`, `isv.*` permission errors (e.g. an order of another account), a bad
    /// configuration, or a response that cannot be understood.
    #[error("AliExpress permanent error: {0}")]
    Permanent(String),
}

impl AeError {
    /// Whether a later attempt (a later run) may succeed without anyone changing anything:
    /// true for [`AeError::RateLimited`] and [`AeError::Retryable`].
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Retryable(_))
    }
}

/// The ban AliExpress names when the message does not say ("about 1 s bans" in practice).
pub(crate) const DEFAULT_BAN: Duration = Duration::from_secs(1);

/// The fields of a gateway error, whether it came as `/sync`'s `error_response{…}`, a flat
/// `/rest` body, or a business error inside `result`.
#[derive(Debug, Default, Clone)]
pub(crate) struct GatewayError {
    pub code: Option<String>,
    pub kind: Option<String>,
    pub msg: Option<String>,
    pub sub_code: Option<String>,
    pub sub_msg: Option<String>,
    pub request_id: Option<String>,
}

impl GatewayError {
    /// A one-line description for logs and error messages (no secrets can be in these fields:
    /// they are AliExpress' own codes and texts).
    pub fn describe(&self) -> String {
        let mut out = self.code.clone().unwrap_or_else(|| "?".to_owned());
        if let Some(sub) = &self.sub_code {
            out.push('/');
            out.push_str(sub);
        }
        if let Some(msg) = &self.msg {
            out.push_str(": ");
            out.push_str(msg);
        }
        if let Some(sub_msg) = &self.sub_msg {
            out.push_str(" (");
            out.push_str(sub_msg);
            out.push(')');
        }
        if let Some(id) = &self.request_id {
            out.push_str(" [request_id ");
            out.push_str(id);
            out.push(']');
        }
        out
    }

    /// Classifies the error by its platform code: retryable, a refused token, or definitive.
    ///
    /// Precedence matters: an `isv.*` sub-code is our fault even when `type` says `ISP` (the
    /// platform reports a missing permission as `code 15, type ISP, sub_code
    /// isv.insufficient-permission`), so explicit codes are checked before the `type`.
    pub fn classify(&self) -> AeError {
        let code = self.code.as_deref().unwrap_or("");
        let sub = self.sub_code.as_deref().unwrap_or("");
        let kind = self.kind.as_deref().unwrap_or("");
        if code == "ApiCallLimit" || sub.contains("ApiCallLimit") {
            let text = [self.msg.as_deref(), self.sub_msg.as_deref()]
                .into_iter()
                .flatten()
                .find_map(parse_ban);
            return AeError::RateLimited {
                ban: text.unwrap_or(DEFAULT_BAN),
            };
        }
        if matches!(
            code,
            "IllegalAccessToken" | "IllegalRefreshToken" | "AUTH_TYPE_UNSUPPORTED"
        ) || matches!(sub, "IllegalAccessToken" | "IllegalRefreshToken")
        {
            return AeError::InvalidToken;
        }
        let description = self.describe();
        if sub.starts_with("isv.") {
            return AeError::Permanent(description);
        }
        if sub.starts_with("isp.")
            || matches!(
                code,
                "InternalError" | "ServiceUnavailable" | "isp.service-unavailable"
            )
            || kind.eq_ignore_ascii_case("ISP")
        {
            return AeError::Retryable(description);
        }
        AeError::Permanent(description)
    }
}

/// The ban length in "… this ban will last N seconds" (also "1 second", decimals tolerated).
pub(crate) fn parse_ban(msg: &str) -> Option<Duration> {
    let lower = msg.to_ascii_lowercase();
    let at = lower.find("ban will last")?;
    let rest = lower.get(at + "ban will last".len()..)?.trim_start();
    let number: String = rest
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let seconds: f64 = number.parse().ok()?;
    if !seconds.is_finite() || seconds < 0.0 {
        return None;
    }
    // Clamp absurd values instead of overflowing `Duration` (the caller gives up on long bans).
    Some(Duration::from_secs_f64(seconds.min(86_400.0 * 2.0)))
}

/// A failure of a storage port the client depends on (the token store, the shared pace): the
/// adapter's own error, kept whole as the source so its chain survives. The client cannot act on
/// its kind: it logs it, and fails the call retryably or keeps the tokens it holds.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct StoreFailure(Box<dyn std::error::Error + Send + Sync>);

impl StoreFailure {
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self(source.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(code: &str, kind: &str, sub: Option<&str>) -> GatewayError {
        GatewayError {
            code: Some(code.to_owned()),
            kind: Some(kind.to_owned()),
            msg: Some("m".to_owned()),
            sub_code: sub.map(str::to_owned),
            ..GatewayError::default()
        }
    }

    #[test]
    fn the_ban_length_is_read_from_the_message() {
        assert_eq!(
            parse_ban("Api access frequency exceeds the limit. this ban will last 1 seconds"),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            parse_ban("This ban will last 17 second"),
            Some(Duration::from_secs(17))
        );
        assert_eq!(parse_ban("ban will last forever"), None);
        assert_eq!(parse_ban("nothing"), None);
    }

    #[test]
    fn errors_are_classified_as_the_spec_says() {
        let limit = GatewayError {
            code: Some("ApiCallLimit".into()),
            msg: Some("this ban will last 3 seconds".into()),
            ..GatewayError::default()
        };
        assert_eq!(
            limit.classify(),
            AeError::RateLimited {
                ban: Duration::from_secs(3)
            }
        );
        assert_eq!(
            gw("IllegalAccessToken", "ISV", None).classify(),
            AeError::InvalidToken
        );
        assert!(matches!(
            gw("15", "ISP", Some("isv.insufficient-permission")).classify(),
            AeError::Permanent(_)
        ));
        assert!(matches!(
            gw("15", "ISP", Some("isp.service-unavailable")).classify(),
            AeError::Retryable(_)
        ));
        assert!(matches!(
            gw("InternalError", "SYSTEM", None).classify(),
            AeError::Retryable(_)
        ));
        for code in ["IncompleteSignature", "InvalidApiPath", "MissingParameter"] {
            assert!(matches!(
                gw(code, "ISV", None).classify(),
                AeError::Permanent(_)
            ));
        }
        assert!(AeError::Retryable(String::new()).is_retryable());
        assert!(
            AeError::RateLimited {
                ban: Duration::ZERO
            }
            .is_retryable()
        );
        assert!(!AeError::InvalidToken.is_retryable());
        assert!(!AeError::Permanent(String::new()).is_retryable());
    }

    #[test]
    fn a_store_failure_reads_as_the_adapters_error_and_keeps_its_chain() {
        #[derive(Debug, thiserror::Error)]
        #[error("throttled")]
        struct Cause;
        #[derive(Debug, thiserror::Error)]
        #[error("cannot read the tokens")]
        struct Adapter(#[source] Cause);

        let e = StoreFailure::new(Adapter(Cause));
        assert_eq!(e.to_string(), "cannot read the tokens");
        let source = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("throttled"));
        assert_eq!(StoreFailure::new("down").to_string(), "down");
    }
}
