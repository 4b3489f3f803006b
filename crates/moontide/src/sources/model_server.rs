//! Presets of the `scrape` source for LLM model servers: with
//! `preset = "vllm"` or `"tgi"`, a query may be one of these names instead of
//! a selector, and the preset knows the server's metric names, how to combine
//! them across replicas, and which are counters to turn into rates:
//!
//! | query | vLLM | TGI | across replicas |
//! |---|---|---|---|
//! | `queue_depth` | `vllm:num_requests_waiting` | `tgi_queue_size` | sum |
//! | `running` | `vllm:num_requests_running` | `tgi_batch_current_size` | sum |
//! | `kv_cache` | `vllm:kv_cache_usage_perc` or, in older releases, `vllm:gpu_cache_usage_perc`, 0–1 | none | mean |
//! | `tokens_per_second` | rate of `vllm:generation_tokens_total` | rate of `tgi_request_generated_tokens_sum` | sum |
//! | `prompt_tokens_per_second` | rate of `vllm:prompt_tokens_total` | rate of `tgi_request_input_length_sum` | sum |
//!
//! A rate needs two scrapes: the first reading of one fails ("needs a second
//! scrape"). Each series (endpoint, name, labels) is followed on its own: one
//! that went down (a restarted replica) counts from zero and leaves the
//! others' increases as they are, and one not seen before adds nothing until
//! its second scrape.

use super::Aggregate;
use serde::Deserialize;

/// A model server whose metric names the `scrape` source knows.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// vLLM (V0 and V1 engines).
    Vllm,
    /// Hugging Face text-generation-inference.
    Tgi,
}

/// What a preset name stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetQuery {
    /// The series selector.
    pub selector: &'static str,
    /// How matching series combine.
    pub aggregate: Aggregate,
    /// Whether the value is a counter, read as a per-second rate.
    pub rate: bool,
}

/// The preset names, for messages.
pub const NAMES: &str = "queue_depth, running, kv_cache, tokens_per_second, prompt_tokens_per_second";

impl Preset {
    /// The query a preset name stands for; `None` if `name` is not one (then it is a selector).
    pub fn query(self, name: &str) -> Option<Result<PresetQuery, String>> {
        let q = |selector, aggregate, rate| Some(Ok(PresetQuery { selector, aggregate, rate }));
        match (self, name) {
            (Preset::Vllm, "queue_depth") => q("vllm:num_requests_waiting", Aggregate::Sum, false),
            (Preset::Vllm, "running") => q("vllm:num_requests_running", Aggregate::Sum, false),
            (Preset::Vllm, "kv_cache") => q(r#"{__name__=~"vllm:(kv|gpu)_cache_usage_perc"}"#, Aggregate::Avg, false),
            (Preset::Vllm, "tokens_per_second") => q("vllm:generation_tokens_total", Aggregate::Sum, true),
            (Preset::Vllm, "prompt_tokens_per_second") => q("vllm:prompt_tokens_total", Aggregate::Sum, true),
            (Preset::Tgi, "queue_depth") => q("tgi_queue_size", Aggregate::Sum, false),
            (Preset::Tgi, "running") => q("tgi_batch_current_size", Aggregate::Sum, false),
            (Preset::Tgi, "kv_cache") => Some(Err(
                "text-generation-inference exports no KV-cache utilisation; use queue_depth or running".into(),
            )),
            (Preset::Tgi, "tokens_per_second") => q("tgi_request_generated_tokens_sum", Aggregate::Sum, true),
            (Preset::Tgi, "prompt_tokens_per_second") => q("tgi_request_input_length_sum", Aggregate::Sum, true),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves_to_a_valid_selector_or_says_why_not() {
        for preset in [Preset::Vllm, Preset::Tgi] {
            for name in NAMES.split(", ") {
                match preset.query(name).unwrap() {
                    Ok(q) => assert!(super::super::scrape::check_query(q.selector).is_ok(), "{preset:?} {name}"),
                    Err(e) => assert!(preset == Preset::Tgi && name == "kv_cache", "{e}"),
                }
            }
            assert_eq!(preset.query("vllm:num_requests_waiting"), None, "a selector is not a preset name");
        }
    }
}
