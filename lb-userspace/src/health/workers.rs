//! The checker's findings to every worker, over the control channel
//! ([`crate::workers::control`]): the whole table as a sticky message (what a worker started
//! later gets first, and every running worker gets too), changes and passing checks as
//! broadcasts; and what the workers say back about their draining targets (their metrics
//! reports, kept per worker by [`crate::metrics::store::Store`]).

use std::net::SocketAddr;

use lb_l7::control::{CheckedTarget, ControlMsg, TargetHealth};
use lb_l7::generation::DrainReport;

use super::{Publish, checker::DrainReports};
use crate::workers::control::ControlHandle;

/// The sticky message's key.
pub const STICKY_KEY: &str = "target-health";

pub struct ToWorkers(pub ControlHandle);

impl Publish for ToWorkers {
    fn table(&mut self, all: Vec<TargetHealth>) {
        self.0
            .set_sticky(STICKY_KEY, &ControlMsg::TargetStates(all));
    }
    fn changes(&mut self, changed: Vec<TargetHealth>) {
        self.0.broadcast(&ControlMsg::TargetStates(changed));
    }
    fn passed(&mut self, passed: Vec<(String, SocketAddr)>) {
        let p = passed
            .into_iter()
            .map(|(group, target)| CheckedTarget { group, target })
            .collect();
        self.0.broadcast(&ControlMsg::HealthChecksPassed(p));
    }
}

impl DrainReports for crate::metrics::store::Store {
    fn reports(&self) -> Vec<Option<DrainReport>> {
        self.drain_reports()
    }
    fn changed(&self) -> impl Future<Output = ()> + Send {
        self.drain_changed()
    }
}
