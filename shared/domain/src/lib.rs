//! dropsync's domain: shops, orders, supplier orders and packages; the status machine; the
//! AliExpress status mapping; the pure rules that derive an order's status from its parts.
//!
//! Nothing here knows about AWS, HTTP or any wire format: the store, the webhook and the API
//! translate to and from these types.

pub mod aliexpress_map;
pub mod ids;
pub mod mapping;
pub mod ops;
pub mod order;
pub mod placement;
pub mod status;

pub use aliexpress_map::{AeMapping, SupplierAttention, map_ae_order};
pub use ids::{ShopDomain, gid, parse_shopify_id};
pub use order::{
    Attention, FinancialStatus, HistoryEntry, ItemLink, LineItem, Order, Package, PackageItem,
    PushGaveUp, PushState, ShopifyFacts, SupplierOrder, history_is_valid,
};
pub use status::{OrderStatus, SupplierStatus, UserAction, is_automatic_transition};

/// Per-shop settings the merchant controls.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShopSettings {
    /// Whether Shopify sends its shipping-confirmation email when dropsync fulfils.
    pub notify_customer: bool,
    /// AliExpress carrier names (as `tracking.get` reports them) -> Shopify's exact company names.
    #[serde(default)]
    pub carrier_mapping: std::collections::BTreeMap<String, String>,
    /// Tracking URL template for carriers Shopify does not know; `{number}` is replaced.
    #[serde(default = "default_tracking_url")]
    pub tracking_url_template: String,
    /// Place paid, fully mapped orders on AliExpress by themselves (through the queue).
    #[serde(default)]
    pub auto_place: bool,
}

pub fn default_tracking_url() -> String {
    "https://global.cainiao.com/detail.htm?mailNoList={number}".to_owned()
}

impl Default for ShopSettings {
    fn default() -> Self {
        Self {
            notify_customer: true,
            carrier_mapping: std::collections::BTreeMap::new(),
            tracking_url_template: default_tracking_url(),
            auto_place: false,
        }
    }
}
