//! The AliExpress app key's shared call schedule: one item per app key holding the next free
//! call start (ms epoch). Reserving a batch of starts is one conditional update in the common
//! case (the schedule is ahead of now: move it on by the batch), or a second one when the
//! schedule is idle (behind now: restart it from now). No read is needed.

use crate::Store;
use crate::codec::{get_n, n, s};
use crate::error::{self, StoreError};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;

const PACE_SK: &str = "PACE";

/// Attempts before giving up when other processes keep winning the race.
const MAX_ATTEMPTS: u32 = 16;

fn lost_race<R>(e: &aws_sdk_dynamodb::error::SdkError<UpdateItemError, R>) -> bool {
    matches!(
        e,
        aws_sdk_dynamodb::error::SdkError::ServiceError(se)
            if matches!(se.err(), UpdateItemError::ConditionalCheckFailedException(_))
    )
}

impl Store {
    /// Reserves `count` call starts `interval_ms` apart for `app_key`, none before `now_ms`,
    /// and returns the first. Reservations by any number of processes never overlap.
    pub async fn reserve_ae_pace(
        &self,
        app_key: &str,
        count: u32,
        interval_ms: i64,
        now_ms: i64,
    ) -> Result<i64, StoreError> {
        let span = i64::from(count).saturating_mul(interval_ms);
        for _ in 0..MAX_ATTEMPTS {
            // Busy schedule: the next free start is at or after now; take the batch from there.
            let busy = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("AE#{app_key}")))
                .key("sk", s(PACE_SK))
                .update_expression("SET next_ms = next_ms + :span")
                .condition_expression("next_ms >= :now")
                .expression_attribute_values(":span", n(span))
                .expression_attribute_values(":now", n(now_ms))
                .return_values(ReturnValue::UpdatedNew)
                .send()
                .await;
            match busy {
                Ok(out) => {
                    let item = out.attributes().cloned().unwrap_or_default();
                    let next: i64 = get_n(&item, "next_ms")?;
                    return Ok(next.saturating_sub(span));
                }
                Err(e) if lost_race(&e) => {}
                Err(e) => return Err(error::sdk(e)),
            }
            // Idle schedule (or none yet): restart it at now.
            let idle = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(format!("AE#{app_key}")))
                .key("sk", s(PACE_SK))
                .update_expression("SET next_ms = :next")
                .condition_expression("attribute_not_exists(next_ms) OR next_ms < :now")
                .expression_attribute_values(":next", n(now_ms.saturating_add(span)))
                .expression_attribute_values(":now", n(now_ms))
                .send()
                .await;
            match idle {
                Ok(_) => return Ok(now_ms),
                Err(e) if lost_race(&e) => {}
                Err(e) => return Err(error::sdk(e)),
            }
        }
        Err(StoreError::Unavailable(
            "the AliExpress call schedule is contended".into(),
        ))
    }
}
