//! The cold-start reference: a hello-world `lambda_runtime` function built with the same profile.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move {
        Ok::<_, Error>(serde_json::json!({"hello": event.payload}))
    }))
    .await
}
