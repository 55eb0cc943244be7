//! JSON routes kept in their own modules, over the app services; the router in `lib.rs`
//! dispatches to them.

pub mod connect;
pub mod mappings;
pub mod place;
