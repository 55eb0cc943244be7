//! The local stack's parts, as a library so tests can drive them: creating the table and queues
//! from the template's definitions, the API Gateway-faithful HTTP server, the queue consumers and
//! the schedule.

pub mod consumer;
pub mod infra;
pub mod schedule;
pub mod server;
