//! Counts DynamoDB requests by operation, the capacity DynamoDB (here: the emulator) reports for
//! them and the time they took, with an SDK interceptor: every request the production code makes
//! goes through it.

use aws_sdk_dynamodb::config::interceptors::{
    BeforeSerializationInterceptorContextMut, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::types::ReturnConsumedCapacity;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The operation of the request in flight (the input is gone by the time the output arrives).
#[derive(Debug, Clone)]
struct OpName(&'static str);

impl Storable for OpName {
    type Storer = StoreReplace<Self>;
}

/// When the request in flight was handed to the SDK (before serialization; retries included).
#[derive(Debug, Clone)]
struct OpStart(Instant);

impl Storable for OpStart {
    type Storer = StoreReplace<Self>;
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct OpCount {
    pub requests: u64,
    pub capacity_units: f64,
    /// Sum of the requests' times (overlapping requests each count in full).
    pub millis: f64,
}

/// Shared counters, by operation name.
#[derive(Debug, Default, Clone)]
pub struct Counter(pub Arc<Mutex<BTreeMap<String, OpCount>>>);

impl Counter {
    pub fn snapshot(&self) -> BTreeMap<String, OpCount> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }

    fn add(&self, op: &str, capacity: f64, millis: f64) {
        if let Ok(mut m) = self.0.lock() {
            let e = m.entry(op.to_owned()).or_default();
            e.requests += 1;
            e.capacity_units += capacity;
            e.millis += millis;
        }
    }
}

macro_rules! each_op {
    ($m:ident) => {
        $m!(put_item, PutItemInput, PutItemOutput, "PutItem");
        $m!(update_item, UpdateItemInput, UpdateItemOutput, "UpdateItem");
        $m!(get_item, GetItemInput, GetItemOutput, "GetItem");
        $m!(query, QueryInput, QueryOutput, "Query");
        $m!(delete_item, DeleteItemInput, DeleteItemOutput, "DeleteItem");
    };
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "dynamodb-request-counter"
    }

    fn modify_before_serialization(
        &self,
        ctx: &mut BeforeSerializationInterceptorContextMut<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        // Ask for the consumed capacity on every request the code makes.
        cfg.interceptor_state().store_put(OpStart(Instant::now()));
        macro_rules! set {
            ($module:ident, $input:ident, $output:ident, $name:literal) => {
                if let Some(i) = ctx
                    .input_mut()
                    .downcast_mut::<aws_sdk_dynamodb::operation::$module::$input>()
                {
                    i.return_consumed_capacity = Some(ReturnConsumedCapacity::Total);
                    cfg.interceptor_state().store_put(OpName($name));
                }
            };
        }
        each_op!(set);
        // The tab counter's ADD after an order write is told apart from the order writes (a
        // write either way: `UpdateItem…` sorts with the writes wherever reads are GetItem/Query).
        if let Some(i) = ctx
            .input_mut()
            .downcast_mut::<aws_sdk_dynamodb::operation::update_item::UpdateItemInput>()
            && i.key()
                .and_then(|k| k.get("sk"))
                .and_then(|v| v.as_s().ok())
                .is_some_and(|sk| sk == "TABS")
        {
            cfg.interceptor_state()
                .store_put(OpName("UpdateItem (tab counter)"));
        }
        Ok(())
    }

    fn read_after_execution(
        &self,
        ctx: &FinalizerInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let op = cfg.load::<OpName>().map_or("Other", |o| o.0);
        let mut cap = 0.0;
        macro_rules! capacity {
            ($module:ident, $input:ident, $output:ident, $name:literal) => {
                if let Some(o) = ctx
                    .output_or_error()
                    .and_then(|r| r.ok())
                    .and_then(|o| o.downcast_ref::<aws_sdk_dynamodb::operation::$module::$output>())
                {
                    cap = o
                        .consumed_capacity()
                        .and_then(|c| c.capacity_units())
                        .unwrap_or(0.0);
                }
            };
        }
        each_op!(capacity);
        let millis = cfg
            .load::<OpStart>()
            .map_or(0.0, |s| s.0.elapsed().as_secs_f64() * 1000.0);
        self.add(op, cap, millis);
        Ok(())
    }
}

/// A DynamoDB client whose every request is counted.
pub fn counted_client(conf: &aws_config::SdkConfig, counter: &Counter) -> aws_sdk_dynamodb::Client {
    let c = aws_sdk_dynamodb::config::Builder::from(conf)
        .interceptor(counter.clone())
        .build();
    aws_sdk_dynamodb::Client::from_conf(c)
}
