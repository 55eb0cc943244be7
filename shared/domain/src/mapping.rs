//! Product mapping: which AliExpress SKU (or SKUs) to buy for a Shopify variant.
//!
//! A variant maps to one or more rows. Several rows without a country filter are a bundle (or a
//! buy-one-get-one: the same SKU with a larger quantity); rows with a ship-to filter apply to those
//! countries only, and the rows without a filter are the fallback for every other country.

use serde::{Deserialize, Serialize};

/// Most rows one variant may map to (a bundle, or suppliers per country).
pub const MAX_ROWS: usize = 10;
/// Most units of one row per unit of the variant.
pub const MAX_QUANTITY: u32 = 100;

/// One AliExpress SKU to buy for a Shopify variant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MappingRow {
    pub product_id: u64,
    pub sku_id: String,
    /// As `ds.product.get` gives it; sent back in `order.create` (`""` for a single-SKU product).
    pub sku_attr: String,
    /// The AliExpress store selling it: one supplier order is placed per seller.
    pub seller_id: u64,
    pub title: String,
    /// The SKU's price when mapped (decimal text, USD), for the merchant's eyes only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<String>,
    /// Units of this SKU per unit of the variant (2 for buy-one-get-one).
    #[serde(default = "one")]
    pub quantity: u32,
    /// ISO-2 countries this row is for; empty = every country without a row of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ship_to: Vec<String>,
    /// A `ds.freight.query` code to ship with; otherwise the cheapest option is chosen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipping_method: Option<String>,
}

fn one() -> u32 {
    1
}

/// A Shopify variant's mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantMapping {
    pub variant_id: u64,
    pub rows: Vec<MappingRow>,
}

/// A mapping that cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error("a mapping needs 1 to {MAX_ROWS} rows")]
    RowCount,
    #[error("quantity must be 1 to {MAX_QUANTITY}")]
    Quantity,
    #[error("ship_to countries are ISO 3166-1 alpha-2 codes, e.g. US")]
    Country,
    #[error("shipping_method must be a short code such as CAINIAO_STANDARD")]
    ShippingMethod,
}

/// Whether `c` looks like an ISO 3166-1 alpha-2 code.
pub fn is_country_code(c: &str) -> bool {
    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())
}

impl VariantMapping {
    /// Checks the shape (the AliExpress side is checked with `ds.product.get` by the caller).
    pub fn validate(&self) -> Result<(), MappingError> {
        if self.rows.is_empty() || self.rows.len() > MAX_ROWS {
            return Err(MappingError::RowCount);
        }
        for r in &self.rows {
            if r.quantity == 0 || r.quantity > MAX_QUANTITY {
                return Err(MappingError::Quantity);
            }
            if r.ship_to.iter().any(|c| !is_country_code(c)) {
                return Err(MappingError::Country);
            }
            if let Some(m) = &r.shipping_method
                && (m.is_empty()
                    || m.len() > 64
                    || !m
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
            {
                return Err(MappingError::ShippingMethod);
            }
        }
        Ok(())
    }

    /// The rows to buy for an order shipped to `country`: the rows naming it, else the rows
    /// without a filter (the fallback). Empty when neither exists.
    pub fn rows_for(&self, country: &str) -> Vec<&MappingRow> {
        let own: Vec<&MappingRow> = self
            .rows
            .iter()
            .filter(|r| r.ship_to.iter().any(|c| c == country))
            .collect();
        if !own.is_empty() {
            return own;
        }
        self.rows.iter().filter(|r| r.ship_to.is_empty()).collect()
    }
}

/// One AliExpress SKU described by its option values, for [`suggest_basic`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuChoice {
    pub sku_id: String,
    /// (property name, value), e.g. ("Color", "Silver").
    pub properties: Vec<(String, String)>,
}

fn norm(s: &str) -> String {
    let lower: String = s
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect();
    // The usual size spellings, so "Large" finds "L" (DSers' option-value translation).
    match lower.as_str() {
        "extrasmall" => "xs".into(),
        "small" => "s".into(),
        "medium" => "m".into(),
        "large" => "l".into(),
        "extralarge" => "xl".into(),
        "grey" => "gray".into(),
        _ => lower,
    }
}

/// DSers' "basic" mapping: the one SKU whose option values are exactly the variant's (names are
/// ignored, since stores rename them; case, spaces, punctuation and the usual size words are
/// normalised). `None` when no SKU or more than one matches; a variant without options matches a
/// single-SKU product.
pub fn suggest_basic(variant_values: &[String], skus: &[SkuChoice]) -> Option<String> {
    let mut want: Vec<String> = variant_values
        .iter()
        .map(|v| norm(v))
        .filter(|v| !v.is_empty() && v != "defaulttitle")
        .collect();
    want.sort();
    if want.is_empty() {
        return match skus {
            [only] => Some(only.sku_id.clone()),
            _ => None,
        };
    }
    let mut found = skus.iter().filter(|sku| {
        let mut have: Vec<String> = sku.properties.iter().map(|(_, v)| norm(v)).collect();
        have.sort();
        have == want
    });
    match (found.next(), found.next()) {
        (Some(one), None) => Some(one.sku_id.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ship_to: &[&str], sku: &str) -> MappingRow {
        MappingRow {
            product_id: 1,
            sku_id: sku.into(),
            sku_attr: String::new(),
            seller_id: 7,
            title: "t".into(),
            price: None,
            quantity: 1,
            ship_to: ship_to.iter().map(|c| (*c).to_owned()).collect(),
            shipping_method: None,
        }
    }

    #[test]
    fn a_country_row_wins_and_the_unfiltered_rows_are_the_fallback() {
        let m = VariantMapping {
            variant_id: 1,
            rows: vec![
                row(&["US", "CA"], "us"),
                row(&[], "any-a"),
                row(&[], "any-b"),
            ],
        };
        let ids =
            |c: &str| -> Vec<String> { m.rows_for(c).iter().map(|r| r.sku_id.clone()).collect() };
        assert_eq!(ids("US"), ["us"]);
        assert_eq!(
            ids("DE"),
            ["any-a", "any-b"],
            "a bundle of two for the rest"
        );
        let only_us = VariantMapping {
            variant_id: 1,
            rows: vec![row(&["US"], "us")],
        };
        assert!(only_us.rows_for("DE").is_empty());
    }

    #[test]
    fn bad_mappings_are_refused() {
        let mut m = VariantMapping {
            variant_id: 1,
            rows: vec![],
        };
        assert_eq!(m.validate(), Err(MappingError::RowCount));
        m.rows.push(row(&["usa"], "x"));
        assert_eq!(m.validate(), Err(MappingError::Country));
        m.rows[0].ship_to.clear();
        m.rows[0].quantity = 0;
        assert_eq!(m.validate(), Err(MappingError::Quantity));
        m.rows[0].quantity = 2;
        m.rows[0].shipping_method = Some("DROP TABLE".into());
        assert_eq!(m.validate(), Err(MappingError::ShippingMethod));
        m.rows[0].shipping_method = Some("CAINIAO_STANDARD".into());
        assert_eq!(m.validate(), Ok(()));
    }

    fn sku(id: &str, props: &[(&str, &str)]) -> SkuChoice {
        SkuChoice {
            sku_id: id.into(),
            properties: props
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_basic_suggestion_matches_option_values_whatever_their_spelling() {
        let skus = [
            sku("red-s", &[("Color", "Red"), ("Size", "S")]),
            sku("red-l", &[("Colour", "RED"), ("Size", "L")]),
            sku("blue-l", &[("Color", "Blue"), ("Size", "L")]),
        ];
        let v = |vals: &[&str]| vals.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            suggest_basic(&v(&["Large", "red"]), &skus).as_deref(),
            Some("red-l")
        );
        assert_eq!(suggest_basic(&v(&["Green", "L"]), &skus), None);
        assert_eq!(
            suggest_basic(&v(&["Red"]), &skus),
            None,
            "partial is no match"
        );
        assert_eq!(
            suggest_basic(&v(&["Default Title"]), &[sku("only", &[])]).as_deref(),
            Some("only")
        );
        let twins = [sku("a", &[("C", "Red")]), sku("b", &[("C", "red")])];
        assert_eq!(suggest_basic(&v(&["Red"]), &twins), None, "ambiguous");
    }
}
