//! Pure decisions of a sync: whether an AliExpress order's tracking is worth a call, and which
//! pushes a sync made due.

use dropsync_domain::ops::{AeObservation, SyncChanges};
use dropsync_domain::{SupplierStatus, map_ae_order};

/// Whether tracking is worth asking for: the order has shipped (by status or logistics), or we
/// already know packages (a tracking number may have been corrected).
pub(super) fn wants_tracking(
    obs: &AeObservation,
    stored: SupplierStatus,
    known_packages: bool,
) -> bool {
    let reasons: Vec<Option<&str>> = obs
        .children
        .iter()
        .map(|c| c.end_reason.as_deref())
        .collect();
    let mapped = map_ae_order(&obs.order_status, obs.logistics_status.as_deref(), &reasons).status;
    let shipped = |s: SupplierStatus| {
        matches!(
            s,
            SupplierStatus::PartiallyShipped | SupplierStatus::Shipped | SupplierStatus::Delivered
        )
    };
    known_packages || shipped(stored) || mapped.is_some_and(shipped)
}

/// The pushes a sync made due: `(AliExpress order id, tracking number)`.
pub(super) fn made_due(
    ae_order_id: u64,
    changes: &SyncChanges,
) -> impl Iterator<Item = (u64, String)> + '_ {
    changes
        .new_packages
        .iter()
        .chain(changes.corrected_packages.iter())
        .map(move |t| (ae_order_id, t.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observation(order_status: &str, logistics: Option<&str>) -> AeObservation {
        AeObservation {
            order_status: order_status.to_owned(),
            logistics_status: logistics.map(str::to_owned),
            ..AeObservation::default()
        }
    }

    #[test]
    fn tracking_is_asked_for_once_shipped_or_once_packages_are_known() {
        let waiting = observation("WAIT_SELLER_SEND_GOODS", None);
        assert!(!wants_tracking(
            &waiting,
            SupplierStatus::AwaitingShipment,
            false
        ));
        assert!(wants_tracking(
            &waiting,
            SupplierStatus::AwaitingShipment,
            true
        ));
        assert!(wants_tracking(&waiting, SupplierStatus::Shipped, false));
        let sent = observation("WAIT_BUYER_ACCEPT_GOODS", None);
        assert!(wants_tracking(
            &sent,
            SupplierStatus::AwaitingShipment,
            false
        ));
    }

    #[test]
    fn new_and_corrected_packages_are_due_and_nothing_else() {
        let changes = SyncChanges {
            new_packages: vec!["N1".into()],
            corrected_packages: vec!["C1".into()],
            ..SyncChanges::default()
        };
        let due: Vec<(u64, String)> = made_due(9, &changes).collect();
        assert_eq!(due, vec![(9, "N1".to_owned()), (9, "C1".to_owned())]);
        assert_eq!(made_due(9, &SyncChanges::default()).count(), 0);
    }
}
