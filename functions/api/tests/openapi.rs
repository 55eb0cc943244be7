//! `openapi.yaml` describes exactly the routes the router serves (plus the webhook route).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::BTreeSet;

/// (METHOD, path) pairs under `paths:`; the file keeps paths at two spaces and methods at four.
fn described() -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../openapi.yaml"))
        .unwrap();
    let mut out = BTreeSet::new();
    let mut in_paths = false;
    let mut path: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("paths:") {
            in_paths = true;
            continue;
        }
        if !in_paths {
            continue;
        }
        if !line.starts_with(' ') && !line.trim().is_empty() {
            break;
        }
        if let Some(p) = line.strip_prefix("  /") {
            path = Some(format!("/{}", p.trim_end_matches(':')));
        } else if let Some(m) = line.strip_prefix("    ").and_then(|l| l.strip_suffix(':'))
            && ["get", "put", "post", "delete", "patch"].contains(&m)
        {
            out.insert((m.to_uppercase(), path.clone().unwrap()));
        }
    }
    out
}

#[test]
fn every_served_route_is_described_and_every_described_route_is_served() {
    let mut served: BTreeSet<(String, String)> = dropsync_api::ROUTES
        .iter()
        .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    served.insert(("POST".into(), "/webhooks/shopify".into()));
    assert_eq!(described(), served);
}

#[test]
fn the_check_notices_a_route_missing_from_the_description() {
    let described = described();
    assert!(described.contains(&("GET".to_owned(), "/health".to_owned())));
    assert!(!described.contains(&("DELETE".to_owned(), "/shops/{shop}/settings".to_owned())));
}
