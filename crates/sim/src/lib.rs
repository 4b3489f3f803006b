//! Moontide's simulator: replay recorded traffic through the engine's own
//! decision code on a virtual clock, against a simulated service, and score
//! the result against baselines.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod baseline;
pub mod kpa;
pub mod llm;
pub mod llm_oracle;
pub mod llm_run;
pub mod oracle;
pub mod policy;
pub mod report;
pub mod run;
pub mod score;
pub mod service;
pub mod trace;

pub use trace::{Format, RateTrace, RequestTrace, Trace, TraceError};
