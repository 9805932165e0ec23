//! ActorMQ: a RocketMQ-compatible message system built as an actor system on actix.
//!
//! Layers point one way: `bin → actors → (store, wire)`, `client → wire`.
pub mod actors;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod filter;
pub mod proxy;
pub mod service;
pub mod store;
pub mod tls;
pub mod wire;
