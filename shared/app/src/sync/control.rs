//! The state the orders of one poll or shop sync share: whether (and why) the run stopped, the
//! shop records read once, and the orders to try once more at the end.

use dropsync_domain::ShopDomain;
use dropsync_store::ShopRecord;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::warn;

/// The state shared by the orders of one poll or shop sync.
#[derive(Debug, Default)]
pub(super) struct RunControl {
    pub(super) stopped: AtomicBool,
    pub(super) reason: Mutex<Option<String>>,
    /// Shop records read once per run.
    pub(super) shops: tokio::sync::Mutex<HashMap<ShopDomain, ShopRecord>>,
    /// Shops whose re-authorization flag this run has already cleared.
    pub(super) cleared: Mutex<HashSet<ShopDomain>>,
    /// Orders that failed with a retryable error, for one more try at the end of the run.
    pub(super) failed: Mutex<Vec<(ShopDomain, u64)>>,
}

impl RunControl {
    pub(super) fn stop(&self, reason: String) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            warn!(reason = reason.as_str(), "stopping the run");
            *r = Some(reason);
        }
        self.stopped.store(true, Ordering::Release);
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    pub(super) fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn take_failed(&self) -> Vec<(ShopDomain, u64)> {
        std::mem::take(&mut *self.failed.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_to_stop_is_the_one_reported() {
        let ctl = RunControl::default();
        assert!(!ctl.is_stopped());
        assert_eq!(ctl.reason(), None);
        ctl.stop("re-authorize".into());
        ctl.stop("banned".into());
        assert!(ctl.is_stopped());
        assert_eq!(ctl.reason().as_deref(), Some("re-authorize"));
    }

    #[test]
    fn failed_orders_are_handed_out_once() {
        let ctl = RunControl::default();
        let shop = ShopDomain::parse("a.myshopify.com").unwrap();
        ctl.failed
            .lock()
            .unwrap()
            .extend([(shop.clone(), 1), (shop.clone(), 2)]);
        assert_eq!(ctl.take_failed(), vec![(shop.clone(), 1), (shop, 2)]);
        assert!(ctl.take_failed().is_empty());
    }
}
