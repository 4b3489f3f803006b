//! Every target kind against the same contract (tests/targets/contract.rs):
//! it scales a platform the test can see, reads the count back, reports
//! errors and timeouts as failed actuations, sends its credentials and never
//! prints them.

#[path = "../common/mod.rs"]
mod common;
mod contract;

#[cfg(feature = "aws")]
mod aws_asg;
mod command;
mod kubernetes;
mod nomad;
mod webhook;
