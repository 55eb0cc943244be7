//! AliExpress IOP client.
