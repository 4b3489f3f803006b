//! The LLM serving model: replicas of a model server fed by per-request
//! traces with token counts.
//!
//! - A gateway keeps one FIFO queue; the request at its head goes to the
//!   ready replica with the most free KV cache, once its prompt plus its
//!   output fit there (`kv_tokens` per replica: the KV cache caps concurrency).
//! - A replica first runs the prefill of newly admitted prompts, at
//!   `prefill_tps` tokens/s; the request's first token comes when its prefill
//!   ends (time to first token, TTFT = queueing + prefill).
//! - Then it decodes: each iteration gives every running request one token
//!   and takes `max(itl, running / decode_tps)` seconds, so a replica does
//!   at most `decode_tps` tokens/s and a request's inter-token latency (ITL)
//!   grows with the batch beyond `itl × decode_tps` requests.
//! - A new replica serves after `startup` (minutes, for a model server that
//!   loads weights); a removed one stops at once and its running requests go
//!   back to the head of the queue (their prefill is redone).
//! - A request violates the SLO when its TTFT exceeds `ttft_slo` or its mean
//!   ITL exceeds `itl_slo`.

use std::collections::VecDeque;

/// The LLM serving model's parameters.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LlmModel {
    /// Prompt tokens per second one replica prefills.
    pub prefill_tps: f64,
    /// Most generated tokens per second one replica decodes (at a full batch).
    pub decode_tps: f64,
    /// Seconds per token for a request decoding alone.
    pub itl: f64,
    /// KV-cache size of one replica, in tokens.
    pub kv_tokens: u64,
    /// Seconds before a new replica serves.
    pub startup: f64,
    /// Time-to-first-token objective, seconds.
    pub ttft_slo: f64,
    /// Mean inter-token latency objective, seconds.
    pub itl_slo: f64,
}

impl LlmModel {
    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (name, v) in [("prefill_tps", self.prefill_tps), ("decode_tps", self.decode_tps), ("itl", self.itl)] {
            if !(v.is_finite() && v > 0.0) {
                errs.push(format!("{name} must be a positive number"));
            }
        }
        if self.kv_tokens == 0 {
            errs.push("kv_tokens must be at least 1".into());
        }
        if !(self.startup.is_finite() && self.startup >= 0.0) {
            errs.push("startup must be zero or more seconds".into());
        }
        if !(self.ttft_slo > 0.0 && self.itl_slo >= self.itl) {
            errs.push("ttft_slo must be positive and itl_slo at least itl".into());
        }
        errs
    }
}

/// One request as the service tracks it.
#[derive(Clone, Debug)]
struct Active {
    arrived: f64,
    input: u32,
    output: u32,
    prefill_left: f64,
    generated: f64,
    first_token: Option<f64>,
    cold: bool,
}

impl Active {
    fn kv(&self) -> u64 {
        self.input as u64 + self.output as u64
    }
}

#[derive(Clone, Debug, Default)]
struct Replica {
    ready_at: f64,
    running: Vec<Active>,
}

impl Replica {
    fn kv_used(&self) -> u64 {
        self.running.iter().map(Active::kv).sum()
    }
}

/// A request that finished.
#[derive(Clone, Debug, PartialEq)]
pub struct Done {
    /// Arrival time, seconds.
    pub arrived: f64,
    /// Time to first token, seconds.
    pub ttft: f64,
    /// Mean inter-token latency, seconds (0 for a one-token answer).
    pub itl: f64,
    /// Whether it missed an objective.
    pub violated: bool,
    /// Whether it arrived while no replica was ready (a cold start).
    pub cold: bool,
}

/// What the service looked like at the end of a step (what a scrape of vLLM would show).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LlmStep {
    /// Requests waiting at the gateway.
    pub queue_depth: usize,
    /// Requests running on replicas.
    pub running: usize,
    /// KV-cache use over ready replicas, 0 to 1.
    pub kv_cache: f64,
    /// Tokens generated in the step, per second.
    pub tokens_per_second: f64,
    /// Replicas ready.
    pub ready: u32,
    /// Replicas paid for (ready and starting).
    pub provisioned: u32,
}

/// The service's state.
#[derive(Clone, Debug)]
pub struct LlmService {
    model: LlmModel,
    replicas: Vec<Replica>,
    queue: VecDeque<Active>,
    now: f64,
    done: Vec<Done>,
}

impl LlmService {
    /// A service with `initial` replicas ready at time 0.
    pub fn new(model: LlmModel, initial: u32) -> Self {
        let replicas = (0..initial).map(|_| Replica::default()).collect();
        LlmService { model, replicas, queue: VecDeque::new(), now: 0.0, done: Vec::new() }
    }

    /// The time, seconds.
    pub fn now(&self) -> f64 {
        self.now
    }

    fn ready(&self) -> u32 {
        self.replicas.iter().filter(|r| r.ready_at <= self.now).count() as u32
    }

    /// Sets the replica count: new replicas start (ready after `startup`);
    /// removal takes starting replicas first, then the ready ones that came
    /// up last (the least busy among those that came up together), whose
    /// running requests go back to the head of the queue.
    pub fn scale(&mut self, n: u32) {
        while (self.replicas.len() as u32) < n {
            self.replicas.push(Replica { ready_at: self.now + self.model.startup, running: Vec::new() });
        }
        while self.replicas.len() as u32 > n {
            let idx = (0..self.replicas.len())
                .max_by(|&a, &b| {
                    let (ra, rb) = (&self.replicas[a], &self.replicas[b]);
                    ra.ready_at.total_cmp(&rb.ready_at).then(rb.running.len().cmp(&ra.running.len()))
                })
                .unwrap_or(0);
            let r = self.replicas.swap_remove(idx);
            for mut a in r.running.into_iter().rev() {
                a.prefill_left = a.input as f64;
                a.generated = 0.0;
                a.first_token = None;
                self.queue.push_front(a);
            }
        }
    }

    /// A request arrives now.
    pub fn arrive(&mut self, input: u32, output: u32) {
        let cold = self.ready() == 0;
        let output = output.max(1);
        self.queue.push_back(Active {
            arrived: self.now,
            input,
            output,
            prefill_left: input as f64,
            generated: 0.0,
            first_token: None,
            cold,
        });
    }

    /// Places queued requests, head first, while the head fits somewhere.
    fn admit(&mut self) {
        while let Some(head) = self.queue.front() {
            let need = head.kv();
            let best = self
                .replicas
                .iter_mut()
                .filter(|r| r.ready_at <= self.now)
                .max_by_key(|r| self.model.kv_tokens.saturating_sub(r.kv_used()));
            match best {
                Some(r)
                    if r.kv_used() + need <= self.model.kv_tokens
                        || (r.running.is_empty() && need > self.model.kv_tokens) =>
                {
                    // a request larger than a whole cache still runs alone (as a server would truncate or page)
                    let a = self.queue.pop_front().expect("the head exists");
                    r.running.push(a);
                }
                _ => break,
            }
        }
    }

    /// Runs the service for `dt` seconds; returns the end-of-step view.
    pub fn advance(&mut self, dt: f64) -> LlmStep {
        let start = self.now;
        let end = start + dt;
        let mut generated = 0.0;
        // replicas that become ready within the step start serving at their ready time
        let m = self.model.clone();
        self.now = start;
        self.admit();
        let mut finished = Vec::new();
        for r in &mut self.replicas {
            let mut t = r.ready_at.max(start);
            while t < end {
                // prefill first
                if let Some(a) = r.running.iter_mut().find(|a| a.prefill_left > 0.0) {
                    let can = (end - t) * m.prefill_tps;
                    if can >= a.prefill_left {
                        t += a.prefill_left / m.prefill_tps;
                        a.prefill_left = 0.0;
                        a.first_token = Some(t);
                        a.generated = 1.0;
                        generated += 1.0;
                    } else {
                        a.prefill_left -= can;
                        t = end;
                    }
                    continue;
                }
                let n = r.running.len();
                if n == 0 {
                    break;
                }
                let tau = m.itl.max(n as f64 / m.decode_tps);
                let left = r.running.iter().map(|a| a.output as f64 - a.generated).fold(f64::INFINITY, f64::min);
                let tokens = ((end - t) / tau).min(left.max(0.0));
                for a in &mut r.running {
                    a.generated += tokens;
                }
                generated += tokens * n as f64;
                t += tokens * tau;
                if tokens >= left {
                    let (gone, stay): (Vec<Active>, Vec<Active>) =
                        r.running.drain(..).partition(|a| a.generated >= a.output as f64 - 1e-9);
                    r.running = stay;
                    for a in gone {
                        finished.push((a, t));
                    }
                }
                if tokens <= 0.0 && left > 0.0 {
                    break;
                }
            }
        }
        for (a, at) in finished {
            let first = a.first_token.unwrap_or(at);
            let ttft = first - a.arrived;
            let itl = if a.output > 1 { (at - first) / (a.output - 1) as f64 } else { 0.0 };
            let violated = ttft > m.ttft_slo + 1e-9 || itl > m.itl_slo + 1e-9;
            self.done.push(Done { arrived: a.arrived, ttft, itl, violated, cold: a.cold });
        }
        self.now = end;
        self.admit();
        let ready: Vec<&Replica> = self.replicas.iter().filter(|r| r.ready_at <= end).collect();
        let kv_cache = if ready.is_empty() {
            0.0
        } else {
            ready.iter().map(|r| r.kv_used() as f64 / m.kv_tokens as f64).sum::<f64>() / ready.len() as f64
        };
        LlmStep {
            queue_depth: self.queue.len(),
            running: self.replicas.iter().map(|r| r.running.len()).sum(),
            kv_cache: kv_cache.min(1.0),
            tokens_per_second: generated / dt,
            ready: ready.len() as u32,
            provisioned: self.replicas.len() as u32,
        }
    }

    /// The requests finished so far.
    pub fn done(&self) -> &[Done] {
        &self.done
    }

    /// The unfinished requests that arrived while no replica was ready: how
    /// many, and the longest of their waits for a first token (up to now for
    /// those still without one), seconds.
    pub fn cold_unfinished(&self) -> (usize, f64) {
        let running = self.replicas.iter().flat_map(|r| &r.running);
        let cold: Vec<&Active> = self.queue.iter().chain(running).filter(|a| a.cold).collect();
        let waits = cold.iter().map(|a| a.first_token.unwrap_or(self.now) - a.arrived);
        (cold.len(), waits.fold(0.0, f64::max))
    }
}

#[cfg(test)]
#[path = "llm_tests.rs"]
mod tests;
