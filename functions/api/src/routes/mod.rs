//! JSON routes kept in their own modules; the router in `lib.rs` dispatches to them.

pub mod mappings;
pub mod place;
