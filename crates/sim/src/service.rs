//! The simulated service: replicas that serve a fluid stream of requests.
//!
//! Each ready replica serves `capacity` requests per second. A new replica
//! serves after `startup`; a removed one stops at once, or after `drain`
//! during which it still serves but takes no part in the desired count.
//! Work beyond capacity waits in a queue (a fluid queue: fractions of a
//! request are fine), and a request's latency is the service time plus the
//! time to work off the queue ahead of it: `service_time + backlog / capacity`.

use std::collections::VecDeque;

/// The service's parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Requests per second one ready replica serves.
    pub capacity: f64,
    /// Seconds before a new replica serves.
    pub startup: f64,
    /// Seconds a removed replica keeps serving (0: removal is immediate).
    pub drain: f64,
    /// Seconds one request takes without queueing.
    pub service_time: f64,
    /// The latency objective, seconds.
    pub slo: f64,
}

impl Model {
    /// Problems with the parameters.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if !(self.capacity.is_finite() && self.capacity > 0.0) {
            errs.push("capacity (requests/s per replica) must be a positive number".into());
        }
        for (name, v) in [("startup", self.startup), ("drain", self.drain), ("service time", self.service_time)] {
            if !(v.is_finite() && v >= 0.0) {
                errs.push(format!("{name} must be zero or more seconds"));
            }
        }
        if !(self.slo.is_finite() && self.slo > self.service_time) {
            errs.push("the SLO must be longer than the service time".into());
        }
        errs
    }

    /// The fewest ready replicas that serve `rate` with no queue (and so meet the SLO).
    pub fn needed(&self, rate: f64) -> u32 {
        if rate <= 0.0 { 0 } else { ((rate / self.capacity) - 1e-9).ceil().max(1.0) as u32 }
    }
}

/// What happened in one step.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// Requests that arrived.
    pub arrived: f64,
    /// Requests served.
    pub served: f64,
    /// Requests waiting at the end of the step.
    pub backlog: f64,
    /// Replicas serving (ready, plus draining).
    pub serving: u32,
    /// Replicas paid for (ready, starting and draining).
    pub provisioned: u32,
    /// Requests per second the serving replicas can handle.
    pub capacity: f64,
    /// Latency of a request arriving at the end of the step, seconds (infinite with no capacity and a queue).
    pub latency: f64,
    /// Requests that arrived in the step and will wait longer than the SLO.
    pub violating: f64,
    /// Busy share of the serving replicas, 0 to 1.
    pub utilisation: f64,
}

/// The service's state.
#[derive(Clone, Debug)]
pub struct Service {
    model: Model,
    ready: u32,
    /// Times at which starting replicas become ready, soonest first.
    starting: VecDeque<f64>,
    /// Times at which draining replicas stop.
    draining: VecDeque<f64>,
    backlog: f64,
}

impl Service {
    /// A service with `ready` replicas serving and an empty queue.
    pub fn new(model: Model, ready: u32) -> Self {
        Service { model, ready, starting: VecDeque::new(), draining: VecDeque::new(), backlog: 0.0 }
    }

    /// Replicas asked for: ready and starting (draining ones are on their way out).
    pub fn current(&self) -> u32 {
        self.ready + self.starting.len() as u32
    }

    /// Replicas ready to serve.
    pub fn ready(&self) -> u32 {
        self.ready
    }

    /// Requests waiting.
    pub fn backlog(&self) -> f64 {
        self.backlog
    }

    /// Sets the count at time `now`: starts replicas (ready after the startup
    /// delay) or removes them, starting ones first, then ready ones (which
    /// drain if the model says so).
    pub fn scale(&mut self, now: f64, desired: u32) {
        let current = self.current();
        if desired > current {
            for _ in current..desired {
                self.starting.push_back(now + self.model.startup);
            }
        } else {
            let mut remove = current - desired;
            while remove > 0 && self.starting.pop_back().is_some() {
                remove -= 1;
            }
            let from_ready = remove.min(self.ready);
            self.ready -= from_ready;
            if self.model.drain > 0.0 {
                for _ in 0..from_ready {
                    self.draining.push_back(now + self.model.drain);
                }
            }
        }
    }

    /// Advances `dt` seconds from `now` with `rate` requests per second arriving.
    pub fn step(&mut self, now: f64, dt: f64, rate: f64) -> Step {
        while self.starting.front().is_some_and(|&t| t <= now) {
            self.starting.pop_front();
            self.ready += 1;
        }
        while self.draining.front().is_some_and(|&t| t <= now) {
            self.draining.pop_front();
        }
        let serving = self.ready + self.draining.len() as u32;
        let capacity = serving as f64 * self.model.capacity;
        let arrived = rate.max(0.0) * dt;
        let work = self.backlog + arrived;
        let served = work.min(capacity * dt);
        self.backlog = work - served;
        if self.backlog < 1e-9 {
            self.backlog = 0.0;
        }
        let latency = if self.backlog == 0.0 {
            self.model.service_time
        } else if capacity > 0.0 {
            self.model.service_time + self.backlog / capacity
        } else {
            f64::INFINITY
        };
        // a microsecond of slack absorbs floating-point error in a plan sized exactly to the SLO
        let violating = if latency > self.model.slo + 1e-6 { arrived } else { 0.0 };
        let utilisation = if capacity > 0.0 { (served / dt / capacity).min(1.0) } else { 0.0 };
        Step {
            arrived,
            served,
            backlog: self.backlog,
            serving,
            provisioned: serving + self.starting.len() as u32,
            capacity,
            latency,
            violating,
            utilisation,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        Model { capacity: 10.0, startup: 30.0, drain: 0.0, service_time: 0.1, slo: 0.5 }
    }

    #[test]
    fn load_below_capacity_never_queues() {
        let mut s = Service::new(model(), 2);
        for t in 0..10 {
            let st = s.step(t as f64, 1.0, 15.0);
            assert_eq!((st.arrived, st.served, st.backlog), (15.0, 15.0, 0.0));
            assert_eq!(st.latency, 0.1);
            assert_eq!(st.violating, 0.0);
            assert!((st.utilisation - 0.75).abs() < 1e-12);
        }
    }

    #[test]
    fn load_above_capacity_grows_the_queue_and_the_latency_linearly() {
        // 25 req/s against 20 req/s: 5 more waiting every second
        let mut s = Service::new(model(), 2);
        let mut latencies = Vec::new();
        for t in 0..4 {
            let st = s.step(t as f64, 1.0, 25.0);
            assert!((st.backlog - 5.0 * (t + 1) as f64).abs() < 1e-9);
            latencies.push(st.latency);
        }
        // 0.1 + 5/20, + 10/20, + 15/20, + 20/20
        assert_eq!(latencies, [0.35, 0.6, 0.85, 1.1]);
        // the first second is within the 0.5 s SLO, the later ones are not
        let mut s = Service::new(model(), 2);
        let v: Vec<f64> = (0..3).map(|t| s.step(t as f64, 1.0, 25.0).violating).collect();
        assert_eq!(v, [0.0, 25.0, 25.0]);
    }

    #[test]
    fn a_step_up_is_served_after_the_startup_delay_and_the_queue_drains() {
        let mut s = Service::new(model(), 1);
        s.scale(0.0, 3);
        assert_eq!((s.current(), s.ready()), (3, 1));
        let mut t = 0.0;
        let mut st = Step::default();
        while t < 30.0 {
            st = s.step(t, 1.0, 20.0); // 10 req/s more than one replica serves
            t += 1.0;
        }
        assert_eq!(st.provisioned, 3);
        assert!((s.backlog() - 300.0).abs() < 1e-9, "{}", s.backlog());
        // at t = 30 the two new replicas serve: 30 req/s against 20 arriving drains 10/s
        let st = s.step(30.0, 1.0, 20.0);
        assert_eq!(st.serving, 3);
        assert!((st.backlog - 290.0).abs() < 1e-9);
        for k in 31..59 {
            s.step(k as f64, 1.0, 20.0);
        }
        assert!(s.step(59.0, 1.0, 20.0).backlog.abs() < 1e-9, "drained after 30 s");
    }

    #[test]
    fn removal_is_immediate_or_drains() {
        let mut s = Service::new(model(), 4);
        s.scale(0.0, 1);
        assert_eq!(s.step(0.0, 1.0, 0.0).serving, 1);
        let mut m = model();
        m.drain = 5.0;
        let mut s = Service::new(m, 4);
        s.scale(0.0, 1);
        assert_eq!(s.current(), 1);
        assert_eq!(s.step(1.0, 1.0, 0.0).provisioned, 4, "draining replicas still cost");
        assert_eq!(s.step(5.0, 1.0, 0.0).serving, 1);
        // starting replicas are cancelled before ready ones are removed
        let mut s = Service::new(model(), 2);
        s.scale(0.0, 5);
        s.scale(1.0, 3);
        assert_eq!((s.current(), s.ready()), (3, 2));
    }

    #[test]
    fn replicas_needed_for_a_rate() {
        let m = model();
        assert_eq!([0.0, 0.1, 10.0, 10.5, 30.0].map(|r| m.needed(r)), [0, 1, 1, 2, 3]);
    }
}
