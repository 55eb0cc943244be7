//! Identifiers. Shopify ids exceed 2^53, so they are `u64` here and strings on dropsync's JSON.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A shop's `*.myshopify.com` domain, lower-cased and checked: every key starts with it, so
/// nothing that is not a plain shop domain may ever become one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ShopDomain(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a *.myshopify.com shop domain")]
pub struct InvalidShopDomain;

impl ShopDomain {
    pub fn parse(raw: &str) -> Result<Self, InvalidShopDomain> {
        let s = raw.trim().to_ascii_lowercase();
        let name = s.strip_suffix(".myshopify.com").ok_or(InvalidShopDomain)?;
        let ok = !name.is_empty()
            && name.len() <= 63
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s))
        } else {
            Err(InvalidShopDomain)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ShopDomain {
    type Error = InvalidShopDomain;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ShopDomain> for String {
    fn from(value: ShopDomain) -> Self {
        value.0
    }
}

impl fmt::Display for ShopDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Parses a Shopify id given as a number string or a GID (`gid://shopify/Order/123`).
pub fn parse_shopify_id(raw: &str) -> Option<u64> {
    let tail = raw.rsplit('/').next().unwrap_or(raw);
    let tail = tail.split('?').next().unwrap_or(tail);
    tail.parse().ok()
}

/// The GID of a Shopify object, e.g. `gid("Order", 1)`.
pub fn gid(kind: &str, id: u64) -> String {
    format!("gid://shopify/{kind}/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shop_domains_are_normalised_and_checked() {
        assert_eq!(
            ShopDomain::parse(" Example.myshopify.com").map(|s| s.0),
            Ok("example.myshopify.com".to_owned())
        );
        for bad in [
            "example.com",
            ".myshopify.com",
            "a/b.myshopify.com",
            "a#b.myshopify.com",
            "-x.myshopify.com",
            "",
        ] {
            assert!(ShopDomain::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ids_parse_from_numbers_and_gids() {
        assert_eq!(
            parse_shopify_id("gid://shopify/Order/820982911946154508"),
            Some(820982911946154508)
        );
        assert_eq!(
            parse_shopify_id("820982911946154508"),
            Some(820982911946154508)
        );
        assert_eq!(parse_shopify_id("gid://shopify/Order/x"), None);
    }
}
