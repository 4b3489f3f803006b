//! The oracle: perfect foresight. At every instant it has exactly the
//! replicas the load needs with no queue ([`Model::needed`]), having started
//! each one the startup delay ahead, so it pays for replicas while they
//! start. Its count at step i is the largest need over the next
//! `startup` seconds (a sliding-window maximum).

use crate::service::Model;
use std::collections::VecDeque;

/// The oracle's count at each step of `dt` seconds, for the given rates.
pub fn plan(model: &Model, rates: &[f64], dt: f64) -> Vec<u32> {
    let need: Vec<u32> = rates.iter().map(|&r| model.needed(r)).collect();
    let ahead = (model.startup / dt).ceil() as usize;
    let mut out = Vec::with_capacity(need.len());
    // indices of a decreasing run of needs over [i, i + ahead]
    let mut window: VecDeque<usize> = VecDeque::new();
    let mut next = 0;
    for i in 0..need.len() {
        while next < need.len() && next <= i + ahead {
            while window.back().is_some_and(|&j| need[j] <= need[next]) {
                window.pop_back();
            }
            window.push_back(next);
            next += 1;
        }
        while window.front().is_some_and(|&j| j < i) {
            window.pop_front();
        }
        out.push(window.front().map(|&j| need[j]).unwrap_or(0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_replicas_the_startup_delay_ahead() {
        let m = Model { capacity: 10.0, startup: 20.0, drain: 0.0, service_time: 0.1, slo: 0.5 };
        let rates = [5.0, 5.0, 5.0, 35.0, 35.0, 5.0, 5.0, 5.0];
        // needs: 1 1 1 4 4 1 1 1; 20 s ahead at 10 s steps = 2 steps
        assert_eq!(plan(&m, &rates, 10.0), [1, 4, 4, 4, 4, 1, 1, 1]);
        let m0 = Model { startup: 0.0, ..m };
        assert_eq!(plan(&m0, &rates, 10.0), [1, 1, 1, 4, 4, 1, 1, 1]);
    }
}
