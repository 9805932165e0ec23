//! The actor layer: one actor per role instance, typed messages beside each
//! actor, a supervision tree that restarts failures.

pub mod broker;
pub mod ha;
pub mod namesrv;
pub mod server;
pub mod session;
pub mod supervisor;
