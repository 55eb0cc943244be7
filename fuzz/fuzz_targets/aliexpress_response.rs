//! AliExpress gateway answers (envelopes, order and tracking results, and their shape quirks): any body the gateway — or
//! anything between it and us — returns must parse or become an `AeError`, never panic. What
//! parses is fed on to the domain's status mapping, as the poller does.
#![no_main]

use dropsync_aliexpress::wire::{
    parse_order_get, parse_token_response, parse_tracking_details, parse_tracking_get,
};
use dropsync_domain::map_ae_order;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(order) = parse_order_get(data) {
        let reasons: Vec<Option<&str>> = order
            .children
            .iter()
            .map(|c| c.end_reason.as_deref())
            .collect();
        let _ = map_ae_order(
            &order.order_status,
            order.logistics_status.as_deref(),
            &reasons,
        );
    }
    let _ = parse_tracking_get(data);
    let _ = parse_tracking_details(data);
    let _ = parse_token_response(data);
});
