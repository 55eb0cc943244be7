//! Creates the table and queues from the definitions `tests/tools/infra.py` extracts from
//! `template.yaml`: the template is the one source of truth, here and in the tests.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde_json::Value;
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum InfraError {
    #[error("infrastructure definitions: {0}")]
    Definition(String),
    #[error("creating {0}: {1}")]
    Create(String, String),
}

fn def(msg: &str) -> InfraError {
    InfraError::Definition(msg.to_owned())
}

fn str_of<'a>(v: &'a Value, k: &str) -> Result<&'a str, InfraError> {
    v.get(k).and_then(Value::as_str).ok_or_else(|| def(k))
}

fn key_schema(v: &Value) -> Result<Vec<KeySchemaElement>, InfraError> {
    v.as_array()
        .ok_or_else(|| def("KeySchema"))?
        .iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(str_of(k, "AttributeName")?)
                .key_type(KeyType::from(str_of(k, "KeyType")?))
                .build()
                .map_err(|e| def(&e.to_string()))
        })
        .collect()
}

/// Creates the template's `OrdersTable` under `name`; an existing table is left alone.
pub async fn create_table(
    client: &aws_sdk_dynamodb::Client,
    infra: &Value,
    name: &str,
) -> Result<(), InfraError> {
    let table = infra
        .get("tables")
        .and_then(|t| t.get("OrdersTable"))
        .ok_or_else(|| def("tables.OrdersTable"))?;
    let mut req = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(
            table
                .get("BillingMode")
                .and_then(Value::as_str)
                .unwrap_or("PAY_PER_REQUEST"),
        ))
        .set_key_schema(Some(key_schema(
            table.get("KeySchema").ok_or_else(|| def("KeySchema"))?,
        )?));
    for a in table
        .get("AttributeDefinitions")
        .and_then(Value::as_array)
        .ok_or_else(|| def("AttributeDefinitions"))?
    {
        req = req.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(str_of(a, "AttributeName")?)
                .attribute_type(ScalarAttributeType::from(str_of(a, "AttributeType")?))
                .build()
                .map_err(|e| def(&e.to_string()))?,
        );
    }
    for g in table
        .get("GlobalSecondaryIndexes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = g.get("Projection").ok_or_else(|| def("Projection"))?;
        let mut proj = Projection::builder()
            .projection_type(ProjectionType::from(str_of(p, "ProjectionType")?));
        for a in p
            .get("NonKeyAttributes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            proj = proj.non_key_attributes(a.as_str().ok_or_else(|| def("NonKeyAttributes"))?);
        }
        req = req.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(str_of(g, "IndexName")?)
                .set_key_schema(Some(key_schema(
                    g.get("KeySchema").ok_or_else(|| def("KeySchema"))?,
                )?))
                .projection(proj.build())
                .build()
                .map_err(|e| def(&e.to_string()))?,
        );
    }
    match req.send().await {
        Ok(_) => Ok(()),
        Err(e) => {
            let msg = format!("{e:?}");
            if msg.contains("ResourceInUseException") {
                Ok(())
            } else {
                Err(InfraError::Create(name.to_owned(), msg))
            }
        }
    }
}

/// Creates the template's queues (dead-letter queues first, redrive wired by name), named
/// `{prefix}-{LogicalId}`. Returns logical id -> queue URL.
pub async fn create_queues(
    client: &aws_sdk_sqs::Client,
    infra: &Value,
    prefix: &str,
) -> Result<HashMap<String, String>, InfraError> {
    let queues = infra
        .get("queues")
        .and_then(Value::as_object)
        .ok_or_else(|| def("queues"))?;
    let mut urls: HashMap<String, String> = HashMap::new();
    let mut arns: HashMap<String, String> = HashMap::new();
    // Two passes: queues without a DLQ (the DLQs themselves) first.
    let mut order: Vec<(&String, &Value)> = queues.iter().collect();
    order.sort_by_key(|(_, q)| q.get("DeadLetterQueue").is_some());
    for (logical, q) in order {
        let name = format!("{prefix}-{logical}");
        let mut req = client.create_queue().queue_name(&name);
        for (k, v) in q
            .get("Attributes")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let v = v.as_str().ok_or_else(|| def("queue attribute"))?;
            req = req.attributes(QueueAttributeName::from(k.as_str()), v);
        }
        if let Some(dlq) = q.get("DeadLetterQueue").and_then(Value::as_str) {
            let arn = arns.get(dlq).ok_or_else(|| def("DeadLetterQueue"))?;
            let max = q
                .get("MaxReceiveCount")
                .and_then(Value::as_u64)
                .unwrap_or(5);
            let policy = serde_json::json!({"deadLetterTargetArn": arn, "maxReceiveCount": max});
            req = req.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
        }
        let out = req
            .send()
            .await
            .map_err(|e| InfraError::Create(name.clone(), format!("{e:?}")))?;
        let url = out.queue_url().ok_or_else(|| def("queue url"))?.to_owned();
        let attrs = client
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| InfraError::Create(name.clone(), format!("{e:?}")))?;
        if let Some(arn) = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        {
            arns.insert(logical.clone(), arn.clone());
        }
        urls.insert(logical.clone(), url);
    }
    Ok(urls)
}

/// Reads the definitions file named by `DROPSYNC_INFRA`.
pub fn load(path: &str) -> Result<Value, InfraError> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| InfraError::Definition(format!("{path}: {e}")))?;
    serde_json::from_str(&raw).map_err(|e| InfraError::Definition(format!("{path}: {e}")))
}
