//! The push lease: a short claim on one package, so two workers never push it at the same time
//! (SQS may deliver one message twice at once, and a manual sync may queue a package already in
//! flight).
//!
//! One sibling item of the order, `pk = ORDER#…` (the order's partition), `sk =
//! PUSH#{ae order id}#{tracking number}`, holding a random owner and the lease's end. Claiming is
//! one conditional `PutItem` (no item, or an expired lease); releasing is one `DeleteItem`
//! conditional on still being the owner, so a worker whose lease ran out cannot release the
//! next one's. The item also carries the table's TTL attribute: a lease never released (a worker
//! that died) is removed within days, and is claimable again as soon as it expires.

use crate::Store;
use crate::codec::{Item, n, order_pk, s};
use crate::error::{self, StoreError};
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use dropsync_domain::ShopDomain;
use std::collections::HashMap;
use std::time::Duration;

/// How long after its claim a lease item is left for the table's TTL to remove (far beyond any
/// lease, so the TTL never removes a live one).
const TTL_SECS: i64 = 3600;

/// The package a lease is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeasedPackage<'a> {
    pub shop: &'a ShopDomain,
    pub order_id: u64,
    pub ae_order_id: u64,
    pub tracking_number: &'a str,
}

/// A lease this worker holds: give it back with [`Store::release_push_lease`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushLease {
    pk: String,
    sk: String,
    owner: String,
}

fn lease_sk(package: &LeasedPackage<'_>) -> String {
    format!("PUSH#{}#{}", package.ae_order_id, package.tracking_number)
}

impl Store {
    /// Claims `package` for `lease` from `now_ms`: `None` when another worker holds an unexpired
    /// lease on it.
    pub async fn claim_push_lease(
        &self,
        package: LeasedPackage<'_>,
        lease: Duration,
        now_ms: i64,
    ) -> Result<Option<PushLease>, StoreError> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let until_ms = now_ms.saturating_add(lease_ms);
        let claim = PushLease {
            pk: order_pk(package.shop, package.order_id),
            sk: lease_sk(&package),
            owner: format!("{:016x}", fastrand::u64(..)),
        };
        let mut item: Item = HashMap::from([
            ("pk".to_owned(), s(claim.pk.as_str())),
            ("sk".to_owned(), s(claim.sk.as_str())),
            ("owner".to_owned(), s(claim.owner.as_str())),
            ("lease_until_ms".to_owned(), n(until_ms)),
        ]);
        item.insert(
            "expires_at".to_owned(),
            n((now_ms / 1000).saturating_add(TTL_SECS)),
        );
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR lease_until_ms < :now")
            .expression_attribute_values(":now", n(now_ms))
            .send()
            .await;
        match res {
            Ok(_) => Ok(Some(claim)),
            Err(SdkError::ServiceError(se))
                if matches!(se.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(None)
            }
            Err(e) => Err(error::sdk(e)),
        }
    }

    /// Gives a lease up, only if it is still this worker's (a lease that ran out and was claimed
    /// again is left to its new owner: that is not an error).
    pub async fn release_push_lease(&self, lease: PushLease) -> Result<(), StoreError> {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(lease.pk))
            .key("sk", s(lease.sk))
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", s(lease.owner))
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(se)) if se.err().is_conditional_check_failed_exception() => {
                Ok(())
            }
            Err(e) => Err(error::sdk(e)),
        }
    }
}
