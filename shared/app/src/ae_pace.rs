//! The AliExpress app key's shared call schedule, kept in the table (see
//! `dropsync_aliexpress::pace`): every function that calls AliExpress takes its call starts
//! from it, so concurrent Lambdas together keep to the app key's rate.

use dropsync_aliexpress::pace::PaceStore;
use dropsync_aliexpress::{BoxFuture, StoreFailure};
use dropsync_store::Store;

/// The table as the shared schedule.
#[derive(Debug, Clone)]
pub struct StorePace(pub Store);

impl PaceStore for StorePace {
    fn reserve<'a>(
        &'a self,
        app_key: &'a str,
        count: u32,
        interval_ms: i64,
        now_ms: i64,
    ) -> BoxFuture<'a, Result<i64, StoreFailure>> {
        Box::pin(async move {
            self.0
                .reserve_ae_pace(app_key, count, interval_ms, now_ms)
                .await
                .map_err(StoreFailure::new)
        })
    }
}
