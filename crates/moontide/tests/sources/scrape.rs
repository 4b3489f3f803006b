//! The `scrape` source: vLLM-style endpoints (an exposition sample written
//! for this test, served on 127.0.0.1) and the real node_exporter.

use crate::common::{TestServer, text};
use crate::contract::{Kit, check};
use crate::servers::{NodeExporter, Silent};
use moontide::sources::{Source, SourceConfig};

/// A vLLM server's /metrics, in the shape vLLM's V1 engine writes (values
/// made up), its KV-cache gauge under the older name that newer releases
/// replace with `vllm:kv_cache_usage_perc`.
fn vllm(waiting: u32, running: u32, kv: f64) -> String {
    format!(
        r#"# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}} {running}.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}} {waiting}.0
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}} {kv}
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}} 91544.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{engine="0",le="0.5",model_name="meta-llama/Llama-3.1-8B-Instruct"}} 95.0
vllm:time_to_first_token_seconds_bucket{{engine="0",le="+Inf",model_name="meta-llama/Llama-3.1-8B-Instruct"}} 120.0
vllm:time_to_first_token_seconds_count{{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}} 120.0
vllm:time_to_first_token_seconds_sum{{engine="0",model_name="meta-llama/Llama-3.1-8B-Instruct"}} 31.4
"#
    )
}

/// What a text-generation-inference server's /metrics shows (the series the
/// `tgi` preset reads, with a histogram's buckets around them).
fn tgi(queued: u32, batch: u32, generated: u64) -> String {
    format!(
        r#"# TYPE tgi_queue_size gauge
tgi_queue_size {queued}
# TYPE tgi_batch_current_size gauge
tgi_batch_current_size {batch}
# TYPE tgi_request_generated_tokens histogram
tgi_request_generated_tokens_bucket{{le="16"}} 40
tgi_request_generated_tokens_bucket{{le="+Inf"}} 90
tgi_request_generated_tokens_sum {generated}
tgi_request_generated_tokens_count 90
# TYPE tgi_request_input_length histogram
tgi_request_input_length_bucket{{le="+Inf"}} 90
tgi_request_input_length_sum 180000
tgi_request_input_length_count 90
"#
    )
}

async fn read(s: &Source, q: &str) -> moontide::sources::QueryResult {
    s.read(&[q.to_string()]).await.remove(0)
}

fn source(text: &str) -> Source {
    let c: SourceConfig = toml::from_str(text).unwrap();
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    Source::build("s", &c).unwrap()
}

#[tokio::test]
async fn scrape_passes_the_source_contract_on_vllm_metrics() {
    let a = TestServer::start(|req, _| {
        if req.header("authorization").as_deref() != Some("Bearer vllm-s3cret") {
            return text(401, "no");
        }
        text(200, &vllm(12, 7, 0.8125))
    })
    .await;
    let b = TestServer::start(|_, _| text(200, &vllm(3, 8, 0.5))).await;
    let broken = TestServer::start(|_, _| text(200, "vllm:num_requests_waiting{engine=\"0\" 3\n")).await;
    let silent = Silent::start();
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "vllm-s3cret").unwrap();
    let t = token.display();
    let both = format!("urls = [\"{}\", \"{}\"]\ntoken_file = \"{t}\"", a.url("/metrics"), b.url("/metrics"));
    check(
        "scrape",
        Kit {
            healthy: format!("type = \"scrape\"\n{both}"),
            query: "vllm:num_requests_waiting".into(),
            expected: 15.0,
            failing: format!("type = \"scrape\"\nurls = [\"{}\", \"{}\"]", a.url("/metrics"), broken.url("/metrics")),
            failing_query: "vllm:num_requests_waiting".into(),
            failing_says: "HTTP 401",
            hanging: Some(format!(
                "type = \"scrape\"\nurls = [\"http://{}/metrics\"]\ntimeout = \"300ms\"",
                silent.addr
            )),
            secret: Some("vllm-s3cret".into()),
            feed: None,
        },
    )
    .await;

    // aggregates across endpoints, label selection, counters and histogram series
    let max = source(&format!("type = \"scrape\"\naggregate = \"max\"\n{both}"));
    let avg = source(&format!("type = \"scrape\"\naggregate = \"avg\"\n{both}"));
    let sum = source(&format!("type = \"scrape\"\n{both}"));
    assert_eq!(read(&max, "vllm:gpu_cache_usage_perc").await.unwrap().value, 0.8125);
    assert_eq!(read(&avg, "vllm:num_requests_running").await.unwrap().value, 7.5);
    assert_eq!(read(&sum, r#"vllm:num_requests_running{model_name=~"meta-llama/.*"}"#).await.unwrap().value, 15.0);
    assert_eq!(read(&sum, "vllm:generation_tokens_total").await.unwrap().value, 2.0 * 91544.0);
    assert_eq!(read(&sum, r#"vllm:time_to_first_token_seconds_bucket{le="+Inf"}"#).await.unwrap().value, 240.0);
    let err = read(&sum, r#"vllm:num_requests_waiting{model_name="other"}"#).await.unwrap_err();
    assert!(err.contains("no sample matches"), "{err}");
    // a malformed body fails the reading with the line, even when another endpoint answered
    let mixed = source(&format!("type = \"scrape\"\nurls = [\"{}\", \"{}\"]", b.url("/m"), broken.url("/m")));
    let err = read(&mixed, "vllm:num_requests_waiting").await.unwrap_err();
    assert!(err.contains("line 1") && err.contains(&broken.url("/m")), "{err}");
}

#[tokio::test]
async fn scrape_reads_the_real_node_exporter() {
    let Some(ne) = NodeExporter::start().await else { return };
    let s = source(&format!("type = \"scrape\"\nurls = [\"{}\"]", ne.url));
    // MemTotal does not change while the machine runs: compare with /proc/meminfo
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    let got = s.read(&["node_memory_MemTotal_bytes".into()]).await.remove(0).unwrap();
    assert_eq!(got.value, kib * 1024.0);
    // one idle-seconds series per CPU, summed
    let cpus = std::fs::read_to_string("/proc/stat")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .count();
    let idle = s.read(&[r#"node_cpu_seconds_total{mode="idle"}"#.into()]).await.remove(0).unwrap();
    assert!(idle.value > 0.0);
    let per_cpu = source(&format!("type = \"scrape\"\naggregate = \"min\"\nurls = [\"{}\"]", ne.url));
    let min = per_cpu.read(&[r#"node_cpu_seconds_total{mode="idle"}"#.into()]).await.remove(0).unwrap();
    assert!(idle.value >= min.value * cpus as f64 - 1.0, "sum {} over {cpus} cpus, min {}", idle.value, min.value);
}

#[tokio::test]
async fn the_tgi_preset_reads_text_generation_inference_names() {
    // server a has generated 300 more tokens at each scrape; b stands still
    let a = TestServer::start(|_, n| text(200, &tgi(5, 12, 4000 + 300 * n as u64))).await;
    let b = TestServer::start(|_, _| text(200, &tgi(2, 4, 900))).await;
    let urls = format!("urls = [\"{}\", \"{}\"]", a.url("/metrics"), b.url("/metrics"));
    let s = source(&format!("type = \"scrape\"\npreset = \"tgi\"\n{urls}"));
    assert_eq!(read(&s, "queue_depth").await.unwrap().value, 7.0);
    assert_eq!(read(&s, "running").await.unwrap().value, 16.0);
    let first = read(&s, "tokens_per_second").await.unwrap_err();
    assert!(first.contains("needs a second scrape"), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rate = read(&s, "tokens_per_second").await.unwrap().value;
    assert!(rate > 0.0 && rate <= 300.0 / 0.2, "{rate}");
    // the input lengths' sum stands still on both: no prompt tokens a second
    read(&s, "prompt_tokens_per_second").await.unwrap_err();
    assert_eq!(read(&s, "prompt_tokens_per_second").await.unwrap().value, 0.0);
}

#[tokio::test]
async fn the_vllm_preset_names_queue_running_kv_cache_and_token_rates() {
    // each scrape of either server has generated 500 more tokens than the last
    let served = |n: usize| vllm(4, 2, 0.25).replace("91544.0", &format!("{}.0", 1000 + 500 * n));
    let a = TestServer::start(move |_, n| text(200, &served(n))).await;
    // b is a newer vLLM: the KV-cache gauge under its new name
    let newer = vllm(3, 8, 0.75).replace("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc");
    let b = TestServer::start(move |_, _| text(200, &newer)).await;
    let urls = format!("urls = [\"{}\", \"{}\"]", a.url("/metrics"), b.url("/metrics"));
    let s = source(&format!("type = \"scrape\"\npreset = \"vllm\"\n{urls}"));
    assert_eq!(read(&s, "queue_depth").await.unwrap().value, 7.0);
    assert_eq!(read(&s, "running").await.unwrap().value, 10.0);
    assert_eq!(read(&s, "kv_cache").await.unwrap().value, 0.5, "the mean over replicas, under either name");
    let first = read(&s, "tokens_per_second").await.unwrap_err();
    assert!(first.contains("needs a second scrape"), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rate = read(&s, "tokens_per_second").await.unwrap().value;
    // server a's counter grew by 500 between the two reads, over at least 0.2 s; b's stood still
    assert!(rate > 0.0 && rate <= 500.0 / 0.2, "{rate}");
    // selectors still work beside the names
    assert_eq!(read(&s, "vllm:num_requests_waiting").await.unwrap().value, 7.0);

    let config = |extra: &str, q: &str| {
        let c: SourceConfig = toml::from_str(&format!("type = \"scrape\"\n{extra}{urls}")).unwrap();
        c.check_query(q)
    };
    let err = config("preset = \"tgi\"\n", "kv_cache").unwrap_err();
    assert!(err.contains("no KV-cache"), "{err}");
    let err = config("", "queue_depth").unwrap_err();
    assert!(err.contains("set preset"), "{err}");
    assert!(config("preset = \"tgi\"\n", "queue_depth").is_ok());
}

#[tokio::test]
async fn a_restarted_replica_resets_only_its_own_counter() {
    // both replicas have generated 1,000,000 tokens; then a generates 100
    // more while b restarts and generates 10
    let tokens = |n: usize, then: &str| vllm(1, 1, 0.5).replace("91544.0", if n == 0 { "1000000" } else { then });
    let a = TestServer::start(move |_, n| text(200, &tokens(n, "1000100"))).await;
    let b = TestServer::start(move |_, n| text(200, &tokens(n, "10"))).await;
    let urls = format!("urls = [\"{}\", \"{}\"]", a.url("/metrics"), b.url("/metrics"));
    let s = source(&format!("type = \"scrape\"\npreset = \"vllm\"\n{urls}"));
    let first = read(&s, "tokens_per_second").await.unwrap_err();
    assert!(first.contains("needs a second scrape"), "{first}");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let rate = read(&s, "tokens_per_second").await.unwrap().value;
    // 110 tokens over at least 0.2 s, however slow the machine: at most 550 a
    // second, where the fleet's whole 1,000,110 counted as new would be millions
    assert!(rate > 0.0 && rate <= 110.0 / 0.2, "{rate} tokens a second");
    assert_eq!(a.seen().len() + b.seen().len(), 4, "one scrape of each replica per reading");
}
