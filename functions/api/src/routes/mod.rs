//! JSON routes kept in their own modules, over the app services.

pub mod connect;
