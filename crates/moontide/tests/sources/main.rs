//! Every source kind against the same contract (tests/sources/contract.rs):
//! it reads a value the test controls from a real server, reports errors and
//! timeouts as failed readings, sends its credentials and never prints them.

#[path = "../common/mod.rs"]
mod common;
mod contract;
mod servers;

mod http_json;
mod nats;
mod postgres;
mod prometheus;
mod push;
mod rabbitmq;
mod redis;
mod scrape;
