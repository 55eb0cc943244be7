//! What a package tells Shopify: the carrier's exact name where Shopify knows it, the tracking
//! number (checked before anything is sent), and the carrier page's URL.

use dropsync_domain::{Package, ShopSettings};
use dropsync_shopify::admin::TrackingInfo;

/// Shopify's exact names for carriers AliExpress parcels travel with (case-sensitive there).
const KNOWN_CARRIERS: &[&str] = &[
    "4PX",
    "China Post",
    "YunExpress",
    "Anjun Logistics",
    "SFC Fulfillment",
    "YiFan Express",
    "SF Express",
    "DHL eCommerce Asia",
    "USPS",
    "UPS",
    "FedEx",
    "DHL Express",
    "DHL eCommerce",
    "Canada Post",
    "Royal Mail",
    "Evri",
    "DPD",
    "GLS",
    "PostNL",
    "Australia Post",
    "Correos",
    "Deutsche Post",
    "La Poste Colissimo",
    "Poste Italiane",
];

/// The tracking info to send: Shopify's exact company name when the carrier is recognisable
/// (from the shop's mapping, or the name itself), else the carrier as free text; and always the
/// shop's tracking URL, since Shopify builds no URL for free text and the sandbox and several
/// integrations build none for known carriers either.
pub fn tracking_info(settings: &ShopSettings, package: &Package) -> TrackingInfo {
    let number = package.tracking_number.clone();
    let raw = package.carrier.as_deref().unwrap_or_default().trim();
    let mapped = settings
        .carrier_mapping
        .get(raw)
        .or_else(|| {
            settings
                .carrier_mapping
                .iter()
                .find(|(k, _)| k.trim().eq_ignore_ascii_case(raw))
                .map(|(_, v)| v)
        })
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .or_else(|| {
            KNOWN_CARRIERS
                .iter()
                .find(|c| c.eq_ignore_ascii_case(raw))
                .map(|c| (*c).to_owned())
        });
    let url = tracking_url(&settings.tracking_url_template, &number);
    TrackingInfo {
        company: mapped.or_else(|| (!raw.is_empty()).then(|| raw.to_owned())),
        number,
        url: (!url.trim().is_empty()).then_some(url),
    }
}

/// The longest tracking number pushed (carriers' longest are about 35 characters).
pub const MAX_TRACKING_NUMBER: usize = 64;

/// Whether a tracking number looks like one: 1 to [`MAX_TRACKING_NUMBER`] ASCII letters, digits,
/// `-`, `_`, `.` and inner spaces. Anything else (an over-long string, markup, control or
/// non-ASCII characters) is not sent to Shopify: the package goes to the attention list instead
/// of a push that can never succeed.
pub fn tracking_number_ok(number: &str) -> bool {
    !number.is_empty()
        && number.len() <= MAX_TRACKING_NUMBER
        && number.trim() == number
        && number
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b' '))
}

/// The carrier page of a tracking number: the shop's template with `{number}` filled in,
/// percent-encoded so a number cannot change the URL's structure. The dashboard links the same URL.
pub fn tracking_url(template: &str, number: &str) -> String {
    template.replace("{number}", &dropsync_http::encode_component(number))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::test_support::package;

    #[test]
    fn tracking_numbers_are_checked_and_url_encoded() {
        for ok in [
            "1Z999AA10123456784",
            "LP00123456789012",
            "CAINIAO-123_4.5",
            "9400 1000 00",
        ] {
            assert!(tracking_number_ok(ok), "{ok}");
        }
        let long = "A".repeat(MAX_TRACKING_NUMBER + 1);
        for bad in [
            "",
            " LP1",
            "LP1 ",
            "LP1&x=1",
            "<b>LP1</b>",
            "LP1\n",
            "LP\u{e9}1",
            long.as_str(),
        ] {
            assert!(!tracking_number_ok(bad), "{bad}");
        }
        assert_eq!(
            tracking_url("https://t.example/?n={number}", "LP 1&x=/é"),
            "https://t.example/?n=LP%201%26x%3D%2F%C3%A9"
        );
        let settings = ShopSettings::default();
        let mut p = package(None, &[(1, 1)]);
        p.tracking_number = "AB 12&c".into();
        assert_eq!(
            tracking_info(&settings, &p).url.as_deref(),
            Some("https://global.cainiao.com/detail.htm?mailNoList=AB%2012%26c")
        );
    }

    #[test]
    fn known_carriers_get_shopifys_exact_name_and_others_go_as_free_text_always_with_a_url() {
        let settings = ShopSettings::default();
        let t = tracking_info(&settings, &package(Some(" yunexpress "), &[(1, 1)]));
        assert_eq!(t.company.as_deref(), Some("YunExpress"));
        assert_eq!(t.number, "YT2601234567890123");
        assert_eq!(
            t.url.as_deref(),
            Some("https://global.cainiao.com/detail.htm?mailNoList=YT2601234567890123")
        );
        let t = tracking_info(
            &settings,
            &package(Some("Cainiao Super Economy"), &[(1, 1)]),
        );
        assert_eq!(t.company.as_deref(), Some("Cainiao Super Economy"));
        assert!(t.url.is_some());
        let t = tracking_info(&settings, &package(None, &[(1, 1)]));
        assert_eq!(t.company, None);
        assert!(t.url.is_some());

        let mut mapped = ShopSettings::default();
        mapped
            .carrier_mapping
            .insert("AliExpress Selection Standard".into(), "China Post".into());
        mapped.tracking_url_template = "https://t.17track.net/en#nums={number}".into();
        let t = tracking_info(
            &mapped,
            &package(Some("aliexpress selection standard"), &[(1, 1)]),
        );
        assert_eq!(t.company.as_deref(), Some("China Post"));
        assert_eq!(
            t.url.as_deref(),
            Some("https://t.17track.net/en#nums=YT2601234567890123")
        );
    }
}
