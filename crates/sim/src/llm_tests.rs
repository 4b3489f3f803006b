//! The LLM model on cases worked out by hand.

use super::*;

fn model() -> LlmModel {
    LlmModel {
        prefill_tps: 10_000.0,
        decode_tps: 1_000.0,
        itl: 0.02,
        kv_tokens: 100_000,
        startup: 0.0,
        ttft_slo: 1.0,
        itl_slo: 0.05,
    }
}

fn run(s: &mut LlmService, until: f64) -> LlmStep {
    let mut last = LlmStep::default();
    while s.now() < until - 1e-9 {
        last = s.advance(0.01);
    }
    last
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn one_request_prefills_then_decodes_at_the_solo_itl() {
    let mut s = LlmService::new(model(), 1);
    s.arrive(1000, 11);
    run(&mut s, 1.0);
    let d = &s.done()[0];
    // prefill 1000 / 10,000 = 0.1 s; then 10 tokens × 0.02 s
    assert!(close(d.ttft, 0.1, 1e-6), "{d:?}");
    assert!(close(d.itl, 0.02, 1e-6), "{d:?}");
    assert!(!d.violated && !d.cold);
}

#[test]
fn the_kv_cache_caps_concurrency() {
    let mut m = model();
    m.kv_tokens = 3000;
    let mut s = LlmService::new(m, 1);
    for _ in 0..3 {
        s.arrive(1000, 500); // 1,500 tokens each: two fit
    }
    let step = s.advance(0.01);
    assert_eq!((step.running, step.queue_depth), (2, 1));
    assert!(close(step.kv_cache, 1.0, 1e-9));
    run(&mut s, 25.0);
    let done = s.done();
    assert_eq!(done.len(), 3);
    // the first two prefill one after the other (0.1 s, 0.2 s), then decode
    // together: 499 tokens × 0.02 s → both finish at 10.18 s; the third is
    // admitted at the end of that step and prefills for 0.1 s
    assert!(close(done[0].ttft, 0.1, 1e-6) && close(done[1].ttft, 0.2, 1e-6), "{done:?}");
    assert!(close(done[2].ttft, 10.29, 0.011), "{done:?}");
    assert!(done[2].violated, "waited 10 s for its first token");
}

#[test]
fn a_big_batch_slows_every_token() {
    let mut m = model();
    m.prefill_tps = 1e9;
    m.decode_tps = 100.0;
    m.itl_slo = 0.03;
    let mut s = LlmService::new(m, 1);
    for _ in 0..4 {
        s.arrive(10, 101);
    }
    let step = run(&mut s, 2.0);
    // 4 running, max(0.02, 4 / 100) = 0.04 s per iteration: 4 × 25 tokens/s
    assert!(close(step.tokens_per_second, 100.0, 1e-6), "{step:?}");
    run(&mut s, 6.0);
    for d in s.done() {
        assert!(close(d.itl, 0.04, 1e-6), "{d:?}");
        assert!(d.violated, "ITL over 0.03");
    }
}

#[test]
fn a_cold_start_makes_the_first_request_wait_for_the_replica() {
    let mut m = model();
    m.startup = 180.0;
    let mut s = LlmService::new(m, 0);
    s.arrive(1000, 2);
    s.scale(1);
    let step = s.advance(0.01);
    assert_eq!((step.ready, step.provisioned, step.queue_depth), (0, 1, 1));
    run(&mut s, 181.0);
    let d = &s.done()[0];
    assert!(d.cold);
    assert!(close(d.ttft, 180.1, 0.011), "{d:?}");
    assert!(d.violated);
}

#[test]
fn removing_a_busy_replica_requeues_its_requests() {
    let mut s = LlmService::new(model(), 2);
    s.arrive(1000, 1000);
    s.arrive(1000, 1000);
    let step = s.advance(0.01);
    assert_eq!(step.running, 2);
    s.scale(1);
    let step = s.advance(0.01);
    assert_eq!(step.provisioned, 1);
    assert_eq!(step.running + step.queue_depth, 2, "nothing lost");
    run(&mut s, 60.0);
    assert_eq!(s.done().len(), 2);
}

#[test]
fn validation_names_the_parameter() {
    let mut m = model();
    m.decode_tps = 0.0;
    m.kv_tokens = 0;
    let errs = m.validate();
    assert!(errs.iter().any(|e| e.starts_with("decode_tps")), "{errs:?}");
    assert!(errs.iter().any(|e| e.starts_with("kv_tokens")), "{errs:?}");
    assert!(model().validate().is_empty());
}
