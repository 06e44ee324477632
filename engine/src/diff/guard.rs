//! The mass-delete safety stop, as a pure decision: when more than a fraction of a mapping's
//! synced keys vanish from one extract, that is far more often a broken model than real
//! deletions, so the deletes are held back (and the state keeps those keys) until a run is
//! triggered with the drop confirmed.

/// When deletes are held back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MassDeletePolicy {
    /// Fraction of the state's keys that may vanish in one run.
    pub max_fraction: f64,
    /// Below this many keys in the state the stop does not apply.
    pub min_keys: u64,
}

/// What to do with a run's deletes.
#[derive(Debug, Clone, PartialEq)]
pub enum DeleteDecision {
    /// Send (or record) the deletes.
    Proceed,
    /// Hold every delete back; the warning says why and how to confirm.
    HoldBack {
        /// The run report's warning.
        warning: String,
    },
}

/// Decides about `deleted` of `state_keys` synced keys; `confirmed` lets a drop through.
pub fn decide(
    policy: &MassDeletePolicy,
    deleted: u64,
    state_keys: u64,
    confirmed: bool,
) -> DeleteDecision {
    if deleted == 0 || confirmed || state_keys < policy.min_keys {
        return DeleteDecision::Proceed;
    }
    let fraction = deleted as f64 / state_keys.max(1) as f64;
    if fraction <= policy.max_fraction {
        return DeleteDecision::Proceed;
    }
    DeleteDecision::HoldBack {
        warning: format!(
            "safety stop: {deleted} of {state_keys} synced keys ({:.0}%) are missing from the extract, more than the {:.0}% allowed in one run, so no delete was sent and the state keeps them; this is more often a broken model than real deletions. If the deletions are real, run the sync again with confirm_mass_delete (CLI: retl sync run <mapping> --confirm-mass-delete)",
            fraction * 100.0,
            policy.max_fraction * 100.0
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: MassDeletePolicy = MassDeletePolicy {
        max_fraction: 0.5,
        min_keys: 10,
    };

    #[test]
    fn holds_back_a_drop_above_the_fraction() {
        match decide(&POLICY, 60, 100, false) {
            DeleteDecision::HoldBack { warning } => {
                assert!(warning.contains("60 of 100") && warning.contains("confirm-mass-delete"))
            }
            other => panic!("expected a hold-back, got {other:?}"),
        }
    }

    #[test]
    fn lets_through_small_drops_small_states_and_confirmed_drops() {
        assert_eq!(decide(&POLICY, 50, 100, false), DeleteDecision::Proceed);
        assert_eq!(decide(&POLICY, 9, 9, false), DeleteDecision::Proceed);
        assert_eq!(decide(&POLICY, 100, 100, true), DeleteDecision::Proceed);
        assert_eq!(decide(&POLICY, 0, 100, false), DeleteDecision::Proceed);
    }
}
