//! Moontide, the autoscaler daemon: config, sources, targets, the tick loop,
//! the decision store, the command line and the demo.

#![forbid(unsafe_code)]

pub mod cli;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod engine;
pub mod fuzzing;
pub mod http;
pub mod logging;
pub mod lua;
pub mod metrics;
pub mod script;
pub mod secret;
pub mod server;
pub mod sources;
pub mod store;
pub mod targets;
