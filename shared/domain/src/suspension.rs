//! Suspend and resume, as Application Auto Scaling's `SuspendedState` has
//! them: dynamic scale-in, dynamic scale-out and scheduled scaling, each
//! suspended on its own. An operator stops the scaler touching a service with
//! one command and no stack update; the state lives with the service.

use super::evaluation::{Direction, Hold, PolicyEvaluation};
use serde::{Deserialize, Serialize};

/// What is suspended on one service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    /// Policies (step and target tracking) do not remove tasks.
    #[serde(default)]
    pub dynamic_scale_in: bool,
    /// Policies do not add tasks.
    #[serde(default)]
    pub dynamic_scale_out: bool,
    /// Time windows neither narrow the bounds nor move the count.
    #[serde(default)]
    pub scheduled: bool,
}

/// The words kept in the service's tag, one per suspended part.
const WORDS: [&str; 3] = ["dynamic-in", "dynamic-out", "scheduled"];

impl Suspended {
    /// Everything: the scaler leaves the service alone (manual commands still act).
    pub const ALL: Suspended = Suspended {
        dynamic_scale_in: true,
        dynamic_scale_out: true,
        scheduled: true,
    };

    fn parts(self) -> [bool; 3] {
        [
            self.dynamic_scale_in,
            self.dynamic_scale_out,
            self.scheduled,
        ]
    }

    fn from_parts([dynamic_scale_in, dynamic_scale_out, scheduled]: [bool; 3]) -> Self {
        Self {
            dynamic_scale_in,
            dynamic_scale_out,
            scheduled,
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Suspended::default()
    }

    /// `self` with the parts `more` names suspended too.
    pub fn with(self, more: Suspended) -> Self {
        let (a, b) = (self.parts(), more.parts());
        Self::from_parts([0, 1, 2].map(|i| a[i] || b[i]))
    }

    /// `self` with the parts `resumed` names resumed.
    pub fn without(self, resumed: Suspended) -> Self {
        let (a, b) = (self.parts(), resumed.parts());
        Self::from_parts([0, 1, 2].map(|i| a[i] && !b[i]))
    }

    /// The tag value: `dynamic-in dynamic-out scheduled`, or empty.
    pub fn encode(self) -> String {
        WORDS
            .iter()
            .zip(self.parts())
            .filter(|(_, on)| *on)
            .map(|(w, _)| *w)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Reads a tag value; unknown words are ignored.
    pub fn decode(value: &str) -> Self {
        let words: Vec<&str> = value.split_whitespace().collect();
        Self::from_parts(WORDS.map(|w| words.contains(&w)))
    }

    /// Whether policies may move the count in `direction`.
    pub fn allows(self, direction: Direction) -> bool {
        match direction {
            Direction::In => !self.dynamic_scale_in,
            Direction::Out => !self.dynamic_scale_out,
        }
    }

    /// A policy's evaluation with its change held when its direction is
    /// suspended. The evaluation keeps its direction, so a policy that wants
    /// out still stops others scaling in.
    pub fn hold(self, mut evaluation: PolicyEvaluation) -> PolicyEvaluation {
        if let (Some(_), Some(direction)) = (evaluation.target, evaluation.direction) {
            if !self.allows(direction) {
                evaluation.target = None;
                evaluation.held_by = Some(Hold::Suspended);
            }
        }
        evaluation
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scaling::Breach;

    fn wants(direction: Direction, target: u32) -> PolicyEvaluation {
        let mut e = PolicyEvaluation::new("cpu", Breach::Unknown { why: String::new() }, 4);
        e.direction = Some(direction);
        e.target = Some(target);
        e
    }

    /// AWS: each of the three is suspended and resumed on its own.
    #[test]
    fn each_part_suspends_only_its_own_direction() {
        let only_in = Suspended {
            dynamic_scale_in: true,
            ..Suspended::default()
        };
        let only_out = Suspended {
            dynamic_scale_out: true,
            ..Suspended::default()
        };
        for (suspended, direction, target, held) in [
            (only_in, Direction::In, None, Some(Hold::Suspended)),
            (only_in, Direction::Out, Some(6), None),
            (only_out, Direction::Out, None, Some(Hold::Suspended)),
            (only_out, Direction::In, Some(6), None),
            (Suspended::default(), Direction::In, Some(6), None),
            (Suspended::ALL, Direction::Out, None, Some(Hold::Suspended)),
        ] {
            let e = suspended.hold(wants(direction, 6));
            assert_eq!(
                (e.target, e.held_by),
                (target, held),
                "{suspended:?} {direction:?}"
            );
            assert_eq!(
                e.direction,
                Some(direction),
                "the wish is kept for the vote"
            );
        }
    }

    #[test]
    fn suspend_adds_resume_removes_and_the_tag_round_trips() {
        let only_in = Suspended {
            dynamic_scale_in: true,
            ..Suspended::default()
        };
        let scheduled = Suspended {
            scheduled: true,
            ..Suspended::default()
        };
        let both = only_in.with(scheduled);
        assert_eq!(both.encode(), "dynamic-in scheduled");
        assert_eq!(both.without(only_in), scheduled);
        assert!(Suspended::ALL.without(Suspended::ALL).is_none());
        for s in [Suspended::default(), only_in, both, Suspended::ALL] {
            assert_eq!(Suspended::decode(&s.encode()), s);
        }
        assert_eq!(Suspended::decode("scheduled bogus"), scheduled);
        assert!(Suspended::ALL
            .encode()
            .chars()
            .all(crate::scaling::tag_char_allowed));
    }
}
