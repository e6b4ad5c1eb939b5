//! One target's health as ALB's `describe-target-health` shows it: a state, a reason code and a
//! description, moved by the outcome of each check against the group's thresholds. Pure: no
//! clock, no I/O.
//!
//! - A registered target starts `initial` (`Elb.RegistrationInProgress`); its first failing
//!   check makes the reason `Elb.InitialHealthChecking`.
//! - ONE passing check makes an `initial` target `healthy` (ALB: "after your target is
//!   registered, it must pass one health check to be considered healthy").
//! - `unhealthy_threshold_count` failures in a row make an `initial` or `healthy` target
//!   `unhealthy`, with the reason of the last failure (`Target.ResponseCodeMismatch`,
//!   `Target.Timeout`, `Target.FailedHealthChecks`); failures that are weir's own
//!   (`Elb.InternalError`: no socket, …) make it `unavailable` instead.
//! - `healthy_threshold_count` passes in a row make an `unhealthy`/`unavailable` target `healthy`.

use lb_l7::TargetState;

/// What one health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Connected (TCP), or answered with a status the matcher accepts (HTTP/HTTPS).
    Pass,
    /// Answered with a status the matcher refuses.
    Mismatch(u16),
    /// No answer within `timeout_seconds`.
    Timeout,
    /// Refused, reset, or a malformed answer; the text says which.
    Failed(String),
    /// weir could not run the check (no socket, no TLS client, …).
    Internal(String),
}

impl Outcome {
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Pass)
    }
}

/// ALB's reason codes (`TargetHealth.Reason`), with what weir adds to the description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    RegistrationInProgress,
    InitialHealthChecking,
    ResponseCodeMismatch(u16),
    Timeout,
    FailedHealthChecks(String),
    InternalError(String),
    /// The target group is not the target of any listener's action: not checked, no traffic.
    NotInUse,
    /// `health_check.enabled = false`: weir routes to the target without checking it.
    HealthCheckDisabled,
    /// Removed (deregistered, or gone from the file by a reload): `draining` until the group's
    /// `deregistration_delay.timeout_seconds` is over.
    DeregistrationInProgress,
}

impl Reason {
    pub fn code(&self) -> &'static str {
        match self {
            Reason::RegistrationInProgress => "Elb.RegistrationInProgress",
            Reason::InitialHealthChecking => "Elb.InitialHealthChecking",
            Reason::ResponseCodeMismatch(_) => "Target.ResponseCodeMismatch",
            Reason::Timeout => "Target.Timeout",
            Reason::FailedHealthChecks(_) => "Target.FailedHealthChecks",
            Reason::InternalError(_) => "Elb.InternalError",
            Reason::NotInUse => "Target.NotInUse",
            Reason::HealthCheckDisabled => "Target.HealthCheckDisabled",
            Reason::DeregistrationInProgress => "Target.DeregistrationInProgress",
        }
    }

    /// ALB's description text, with the detail weir knows.
    pub fn description(&self) -> String {
        match self {
            Reason::RegistrationInProgress => "Target registration is in progress".into(),
            Reason::InitialHealthChecking => "Initial health checks in progress".into(),
            Reason::ResponseCodeMismatch(c) => {
                format!("Health checks failed with these codes: [{c}]")
            }
            Reason::Timeout => "Request timed out".into(),
            Reason::FailedHealthChecks(why) => format!("Health checks failed: {why}"),
            Reason::InternalError(why) => {
                format!("Health checks failed due to an internal error: {why}")
            }
            Reason::NotInUse => {
                "Target group is not configured to receive traffic from the load balancer".into()
            }
            Reason::HealthCheckDisabled => "Health checks are disabled".into(),
            Reason::DeregistrationInProgress => "Target deregistration is in progress".into(),
        }
    }

    fn of_failure(o: &Outcome) -> Option<Reason> {
        match o {
            Outcome::Pass => None,
            Outcome::Mismatch(c) => Some(Reason::ResponseCodeMismatch(*c)),
            Outcome::Timeout => Some(Reason::Timeout),
            Outcome::Failed(w) => Some(Reason::FailedHealthChecks(w.clone())),
            Outcome::Internal(w) => Some(Reason::InternalError(w.clone())),
        }
    }
}

/// The group's `healthy_threshold_count` and `unhealthy_threshold_count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// One target's health and the run of results that moves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    pub state: TargetState,
    /// `None` when healthy and checked (ALB gives no reason then).
    pub reason: Option<Reason>,
    passes: u32,
    failures: u32,
}

impl Health {
    /// A target just registered: `initial`, no check yet.
    pub fn registered() -> Health {
        Health::fixed(TargetState::Initial, Some(Reason::RegistrationInProgress))
    }

    /// A state no check moves: `healthy` (checks disabled) or `unused` (group not in use).
    pub fn fixed(state: TargetState, reason: Option<Reason>) -> Health {
        Health {
            state,
            reason,
            passes: 0,
            failures: 0,
        }
    }

    /// Applies one check's outcome; returns whether the state changed (the reason may change
    /// without it).
    pub fn observe(&mut self, o: &Outcome, t: Thresholds) -> bool {
        let before = self.state;
        match Reason::of_failure(o) {
            None => {
                self.failures = 0;
                self.passes = self.passes.saturating_add(1);
                let enough = match self.state {
                    TargetState::Initial => true,
                    TargetState::Unhealthy | TargetState::Unavailable => self.passes >= t.healthy,
                    _ => false,
                };
                if enough || self.state == TargetState::Healthy {
                    self.state = TargetState::Healthy;
                    self.reason = None;
                }
            }
            Some(reason) => {
                self.passes = 0;
                self.failures = self.failures.saturating_add(1);
                let internal = matches!(reason, Reason::InternalError(_));
                match self.state {
                    TargetState::Initial | TargetState::Healthy if self.failures >= t.unhealthy => {
                        self.state = if internal {
                            TargetState::Unavailable
                        } else {
                            TargetState::Unhealthy
                        };
                        self.reason = Some(reason);
                    }
                    TargetState::Initial => self.reason = Some(Reason::InitialHealthChecking),
                    TargetState::Unhealthy | TargetState::Unavailable => self.reason = Some(reason),
                    _ => {}
                }
            }
        }
        self.state != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Thresholds = Thresholds {
        healthy: 3,
        unhealthy: 2,
    };

    fn run(h: &mut Health, outcomes: &[Outcome]) -> Vec<&'static str> {
        outcomes
            .iter()
            .map(|o| {
                h.observe(o, T);
                h.state.name()
            })
            .collect()
    }

    #[test]
    fn a_new_target_is_healthy_after_one_pass() {
        let mut h = Health::registered();
        assert_eq!(
            h.reason.as_ref().unwrap().code(),
            "Elb.RegistrationInProgress"
        );
        assert!(h.observe(&Outcome::Pass, T));
        assert_eq!((h.state, h.reason), (TargetState::Healthy, None));
    }

    #[test]
    fn a_new_target_that_fails_stays_initial_then_turns_unhealthy() {
        let mut h = Health::registered();
        assert!(!h.observe(&Outcome::Timeout, T));
        assert_eq!(h.state, TargetState::Initial);
        assert_eq!(
            h.reason.as_ref().unwrap().code(),
            "Elb.InitialHealthChecking"
        );
        assert!(h.observe(&Outcome::Mismatch(404), T));
        assert_eq!(h.state, TargetState::Unhealthy);
        let r = h.reason.unwrap();
        assert_eq!(r.code(), "Target.ResponseCodeMismatch");
        assert_eq!(
            r.description(),
            "Health checks failed with these codes: [404]"
        );
    }

    #[test]
    fn thresholds_count_results_in_a_row() {
        let mut h = Health::registered();
        let f = || Outcome::Failed("connection refused".into());
        let seq = [
            Outcome::Pass,
            f(),
            Outcome::Pass, // breaks the run of failures
            f(),
            f(),
            Outcome::Pass,
            Outcome::Pass,
            f(), // breaks the run of passes
            Outcome::Pass,
            Outcome::Pass,
            Outcome::Pass,
        ];
        assert_eq!(
            run(&mut h, &seq),
            [
                "healthy",
                "healthy",
                "healthy",
                "healthy",
                "unhealthy",
                "unhealthy",
                "unhealthy",
                "unhealthy",
                "unhealthy",
                "unhealthy",
                "healthy"
            ]
        );
    }

    #[test]
    fn the_reason_follows_the_last_failure() {
        let mut h = Health::registered();
        run(&mut h, &[Outcome::Pass, Outcome::Timeout, Outcome::Timeout]);
        assert_eq!(h.reason.as_ref().unwrap().code(), "Target.Timeout");
        assert_eq!(
            h.reason.as_ref().unwrap().description(),
            "Request timed out"
        );
        assert!(!h.observe(&Outcome::Failed("connection refused".into()), T));
        let r = h.reason.unwrap();
        assert_eq!(r.code(), "Target.FailedHealthChecks");
        assert_eq!(r.description(), "Health checks failed: connection refused");
    }

    #[test]
    fn weirs_own_failures_make_a_target_unavailable() {
        let mut h = Health::registered();
        let e = || Outcome::Internal("no file descriptors".into());
        assert_eq!(
            run(&mut h, &[Outcome::Pass, e(), e()]),
            ["healthy", "healthy", "unavailable"]
        );
        assert_eq!(h.reason.as_ref().unwrap().code(), "Elb.InternalError");
        assert_eq!(
            run(&mut h, &[Outcome::Pass, Outcome::Pass, Outcome::Pass]),
            ["unavailable", "unavailable", "healthy"]
        );
    }

    #[test]
    fn fixed_states_do_not_move() {
        let mut h = Health::fixed(TargetState::Unused, Some(Reason::NotInUse));
        assert!(!h.observe(&Outcome::Timeout, T));
        assert!(!h.observe(&Outcome::Timeout, T));
        assert!(!h.observe(&Outcome::Pass, T));
        assert_eq!(h.state, TargetState::Unused);
        assert_eq!(h.reason.unwrap().code(), "Target.NotInUse");
    }
}
