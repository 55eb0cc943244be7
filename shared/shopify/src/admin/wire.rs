//! Shopify's GraphQL response envelope (`data`, top-level `errors`, `extensions.cost`) and how
//! each HTTP answer becomes an outcome. Pure functions: everything here is tested without a network.

use super::AdminError;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Shopify CLI's wait when a throttled answer says nothing about when to come back.
const DEFAULT_THROTTLE_WAIT: Duration = Duration::from_secs(1);
/// Floor for a throttle wait: a THROTTLED answer with a full bucket (it happens) must not turn
/// into a tight retry loop.
const MIN_THROTTLE_WAIT: Duration = Duration::from_millis(100);
/// Ceiling for any computed wait, so a nonsense reading cannot park a Lambda for an hour.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(60);
/// Error text kept from a response, so logs and stored failure reasons stay small.
const MAX_ERROR_TEXT: usize = 500;

/// `extensions.cost.throttleStatus`: the shop's bucket as Shopify saw it when answering.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    pub restore_rate: f64,
}

/// `extensions.cost`, present on executed and throttled answers alike.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct QueryCost {
    #[serde(default)]
    pub requested_query_cost: Option<f64>,
    /// Null when the query did not run (throttled, over the cost limit).
    #[serde(default)]
    pub actual_query_cost: Option<f64>,
    #[serde(default)]
    pub throttle_status: Option<ThrottleStatus>,
}

/// One top-level GraphQL error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphqlError {
    pub message: String,
    /// `extensions.code` (`THROTTLED`, `MAX_COST_EXCEEDED`, `ACCESS_DENIED`, …), kept open.
    pub code: Option<String>,
}

/// A parsed response body.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Envelope {
    /// `data`, unless absent or null.
    pub data: Option<Value>,
    pub errors: Vec<GraphqlError>,
    pub cost: Option<QueryCost>,
}

/// What one HTTP exchange amounted to.
#[derive(Debug)]
pub(crate) struct Classified {
    pub outcome: Result<Value, AdminError>,
    /// The cost block, when the body had one (fed to the limiter even on failures).
    pub cost: Option<QueryCost>,
}

/// Parses a body as a GraphQL response; `None` when it is not a JSON object (HTML error pages).
pub(crate) fn parse_envelope(body: &[u8]) -> Option<Envelope> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let obj = value.as_object()?;
    let data = obj.get("data").filter(|d| !d.is_null()).cloned();
    let errors = obj.get("errors").map(normalize_errors).unwrap_or_default();
    let cost = value
        .pointer("/extensions/cost")
        .and_then(|c| serde_json::from_value::<QueryCost>(c.clone()).ok());
    Some(Envelope { data, errors, cost })
}

/// `errors` comes in three shapes: the GraphQL list of objects, a bare string (401 bodies), and
/// an object of parameter → message (400 bodies). All become a list.
fn normalize_errors(raw: &Value) -> Vec<GraphqlError> {
    match raw {
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(o) => GraphqlError {
                    message: o
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("unknown error")
                        .to_owned(),
                    code: item
                        .pointer("/extensions/code")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
                Value::String(s) => GraphqlError {
                    message: s.clone(),
                    code: None,
                },
                other => GraphqlError {
                    message: other.to_string(),
                    code: None,
                },
            })
            .collect(),
        Value::String(s) => vec![GraphqlError {
            message: s.clone(),
            code: None,
        }],
        Value::Object(o) => o
            .iter()
            .map(|(k, v)| GraphqlError {
                message: format!(
                    "{k}: {}",
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned)
                ),
                code: None,
            })
            .collect(),
        Value::Null => Vec::new(),
        other => vec![GraphqlError {
            message: other.to_string(),
            code: None,
        }],
    }
}

fn is_throttled(e: &GraphqlError) -> bool {
    e.code.as_deref() == Some("THROTTLED") || (e.code.is_none() && e.message == "Throttled")
}

/// `code: message; code: message`, bounded.
fn summarize(errors: &[GraphqlError]) -> String {
    let mut out = errors
        .iter()
        .map(|e| match &e.code {
            Some(code) => format!("{code}: {}", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ");
    if out.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

/// Parses `Retry-After` as seconds. Shopify sends decimals (`2.0`); an HTTP date or garbage
/// gives `None` (the bucket reading or the default then decides).
pub(crate) fn parse_retry_after(raw: Option<&str>) -> Option<Duration> {
    let secs: f64 = raw?.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0)
        .then(|| Duration::from_secs_f64(secs.min(MAX_THROTTLE_WAIT.as_secs_f64())))
}

/// How long to wait after a throttled answer: `max(Retry-After, (requested −
/// currentlyAvailable) / restoreRate)`, 1 s when neither is known, never less than 100 ms and
/// never more than 60 s. Jitter is added by the caller when it sleeps.
pub(crate) fn throttle_wait(retry_after: Option<Duration>, cost: Option<&QueryCost>) -> Duration {
    let deficit = cost.and_then(|c| {
        let requested = c.requested_query_cost?;
        let status = c.throttle_status?;
        let secs = (requested - status.currently_available) / status.restore_rate;
        (secs.is_finite() && status.restore_rate > 0.0)
            .then(|| Duration::from_secs_f64(secs.clamp(0.0, MAX_THROTTLE_WAIT.as_secs_f64())))
    });
    let wait = match (retry_after, deficit) {
        (None, None) => DEFAULT_THROTTLE_WAIT,
        (a, b) => a.unwrap_or_default().max(b.unwrap_or_default()),
    };
    wait.clamp(MIN_THROTTLE_WAIT, MAX_THROTTLE_WAIT)
}

/// Maps one HTTP answer to an outcome.
///
/// - 2xx: top-level `errors` win over `data`: `THROTTLED` → [`AdminError::Throttled`],
///   `INTERNAL_SERVER_ERROR` → [`AdminError::Retryable`], anything else → [`AdminError::Permanent`].
/// - 401/403 → [`AdminError::Unauthorized`]; 429 → [`AdminError::Throttled`]; 5xx →
///   [`AdminError::Retryable`]; redirects (never followed: the token must not travel to another
///   host) and other statuses → [`AdminError::Permanent`].
pub(crate) fn classify(status: u16, retry_after: Option<&str>, body: &[u8]) -> Classified {
    let envelope = parse_envelope(body);
    let cost = envelope.as_ref().and_then(|e| e.cost);
    let outcome = match status {
        200..=299 => match envelope {
            Some(env) => from_envelope(env, retry_after),
            None => Err(AdminError::Permanent(format!(
                "HTTP {status} with a body that is not a GraphQL response"
            ))),
        },
        401 | 403 => Err(AdminError::Unauthorized),
        429 => Err(AdminError::Throttled {
            retry_after: throttle_wait(parse_retry_after(retry_after), cost.as_ref()),
        }),
        500..=599 => Err(AdminError::Retryable(format!("HTTP {status}"))),
        300..=399 => Err(AdminError::Permanent(format!(
            "HTTP {status}: redirects are not followed"
        ))),
        _ => Err(AdminError::Permanent(match &envelope {
            Some(env) if !env.errors.is_empty() => {
                format!("HTTP {status}: {}", summarize(&env.errors))
            }
            _ => format!("HTTP {status}"),
        })),
    };
    Classified { outcome, cost }
}

fn from_envelope(env: Envelope, retry_after: Option<&str>) -> Result<Value, AdminError> {
    if env.errors.iter().any(is_throttled) {
        return Err(AdminError::Throttled {
            retry_after: throttle_wait(parse_retry_after(retry_after), env.cost.as_ref()),
        });
    }
    if !env.errors.is_empty() {
        let text = summarize(&env.errors);
        return if env
            .errors
            .iter()
            .any(|e| e.code.as_deref() == Some("INTERNAL_SERVER_ERROR"))
        {
            Err(AdminError::Retryable(text))
        } else {
            Err(AdminError::Permanent(text))
        };
    }
    env.data.ok_or_else(|| {
        AdminError::Permanent("GraphQL response with neither data nor errors".to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shopify's documented throttled answer, with a throttleStatus filled in.
    const THROTTLED_BODY: &str = r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED","documentation":"https://shopify.dev/api/usage/rate-limits"}}],"extensions":{"cost":{"requestedQueryCost":752,"actualQueryCost":null,"throttleStatus":{"maximumAvailable":1000.0,"currentlyAvailable":52,"restoreRate":50.0}}}}"#;

    #[test]
    fn data_and_cost_are_parsed_from_an_executed_answer() {
        let body = json!({
            "data": {"order": {"id": "gid://shopify/Order/1"}},
            "extensions": {"cost": {"requestedQueryCost": 153, "actualQueryCost": 12,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 1988, "restoreRate": 100.0}}}
        })
        .to_string();
        let c = classify(200, None, body.as_bytes());
        assert_eq!(
            c.outcome.unwrap(),
            json!({"order": {"id": "gid://shopify/Order/1"}})
        );
        assert_eq!(
            c.cost,
            Some(QueryCost {
                requested_query_cost: Some(153.0),
                actual_query_cost: Some(12.0),
                throttle_status: Some(ThrottleStatus {
                    maximum_available: 2000.0,
                    currently_available: 1988.0,
                    restore_rate: 100.0
                })
            })
        );
    }

    #[test]
    fn the_specs_throttled_answer_with_http_200_is_throttled_with_the_deficit_as_wait() {
        let c = classify(200, None, THROTTLED_BODY.as_bytes());
        // (752 − 52) / 50 = 14 s
        assert_eq!(
            c.outcome.unwrap_err(),
            AdminError::Throttled {
                retry_after: Duration::from_secs(14)
            }
        );
        let cost = c.cost.unwrap();
        assert_eq!(cost.actual_query_cost, None);
        assert_eq!(cost.throttle_status.unwrap().currently_available, 52.0);
    }

    #[test]
    fn http_429_takes_the_larger_of_retry_after_and_the_deficit() {
        let c = classify(429, Some("20.0"), THROTTLED_BODY.as_bytes());
        assert_eq!(
            c.outcome.unwrap_err(),
            AdminError::Throttled {
                retry_after: Duration::from_secs(20)
            }
        );
        // A bare 429 (no cost block) honours Retry-After alone.
        let bare = r#"{"errors":[{"message":"Throttled","extensions":{"code":"THROTTLED"}}]}"#;
        let c = classify(429, Some("2.0"), bare.as_bytes());
        assert_eq!(
            c.outcome.unwrap_err(),
            AdminError::Throttled {
                retry_after: Duration::from_secs(2)
            }
        );
        assert_eq!(c.cost, None);
        // Nothing known at all: Shopify CLI's 1 s.
        let c = classify(429, None, b"Too Many Requests");
        assert_eq!(
            c.outcome.unwrap_err(),
            AdminError::Throttled {
                retry_after: Duration::from_secs(1)
            }
        );
    }

    #[test]
    fn a_throttled_answer_with_room_in_the_bucket_still_waits_a_little() {
        let body = json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": null,
              "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": 1000, "restoreRate": 100.0}}}})
        .to_string();
        assert_eq!(
            classify(200, None, body.as_bytes()).outcome.unwrap_err(),
            AdminError::Throttled {
                retry_after: MIN_THROTTLE_WAIT
            }
        );
    }

    #[test]
    fn retry_after_accepts_integers_and_decimals_and_rejects_the_rest() {
        assert_eq!(parse_retry_after(Some("2.0")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(Some(" 1.5 ")),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after(Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("0")), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after(Some("86400")),
            Some(MAX_THROTTLE_WAIT),
            "capped"
        );
        for bad in [
            "",
            "soon",
            "-1",
            "NaN",
            "inf",
            "Wed, 21 Oct 2015 07:28:00 GMT",
        ] {
            assert_eq!(parse_retry_after(Some(bad)), None, "{bad}");
        }
        assert_eq!(parse_retry_after(None), None);
    }

    #[test]
    fn top_level_errors_are_permanent_and_keep_code_and_message() {
        let body = json!({"errors": [{"message": "Field 'code' doesn't exist on type 'UserError'",
            "locations": [{"line": 3, "column": 20}], "extensions": {"code": "undefinedField"}}]})
        .to_string();
        match classify(200, None, body.as_bytes()).outcome {
            Err(AdminError::Permanent(text)) => {
                assert_eq!(
                    text,
                    "undefinedField: Field 'code' doesn't exist on type 'UserError'"
                );
            }
            other => panic!("{other:?}"),
        }
        let cost = json!({"errors": [{"message": "Query cost is 1053, which exceeds the single query max cost limit (1000).",
            "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 1053, "maxCost": 1000}}]})
        .to_string();
        assert!(matches!(
            classify(200, None, cost.as_bytes()).outcome,
            Err(AdminError::Permanent(t)) if t.starts_with("MAX_COST_EXCEEDED")
        ));
        // Partial data does not hide an error.
        let partial = json!({"data": {"order": null}, "errors": [{"message": "This app is not approved to access the Order object",
            "extensions": {"code": "ACCESS_DENIED"}}]})
        .to_string();
        assert!(matches!(
            classify(200, None, partial.as_bytes()).outcome,
            Err(AdminError::Permanent(t)) if t.starts_with("ACCESS_DENIED")
        ));
    }

    #[test]
    fn an_internal_error_in_a_200_is_retryable() {
        let body = json!({"errors": [{"message": "Internal error. Looks like something went wrong on our end.",
            "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
        .to_string();
        assert!(matches!(
            classify(200, None, body.as_bytes()).outcome,
            Err(AdminError::Retryable(_))
        ));
    }

    #[test]
    fn http_statuses_map_to_the_error_kinds() {
        let unauthorized = br#"{"errors":"[API] Invalid API key or access token (unrecognized login or wrong password)"}"#;
        assert_eq!(
            classify(401, None, unauthorized).outcome.unwrap_err(),
            AdminError::Unauthorized
        );
        assert_eq!(
            classify(403, None, b"").outcome.unwrap_err(),
            AdminError::Unauthorized
        );
        let html = b"<html><body><h1>502 Bad Gateway</h1></body></html>";
        assert_eq!(
            classify(502, None, html).outcome.unwrap_err(),
            AdminError::Retryable("HTTP 502".to_owned())
        );
        assert!(matches!(
            classify(503, None, b"").outcome,
            Err(AdminError::Retryable(_))
        ));
        assert_eq!(
            classify(
                400,
                None,
                br#"{"errors":{"query":"Required parameter missing or invalid"}}"#
            )
            .outcome
            .unwrap_err(),
            AdminError::Permanent(
                "HTTP 400: query: Required parameter missing or invalid".to_owned()
            )
        );
        assert!(matches!(
            classify(301, None, b"").outcome,
            Err(AdminError::Permanent(_))
        ));
        assert!(matches!(
            classify(200, None, html).outcome,
            Err(AdminError::Permanent(_))
        ));
        assert!(matches!(
            classify(200, None, b"{}").outcome,
            Err(AdminError::Permanent(_))
        ));
    }

    #[test]
    fn long_error_texts_are_cut_on_a_character_boundary() {
        let errors = vec![GraphqlError {
            message: "é".repeat(400),
            code: None,
        }];
        let text = summarize(&errors);
        assert!(text.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(text.ends_with('…'));
    }
}
