//! The pure part of spreading calls over targets: which target a call goes to.

/// A target as the balancing choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// No transport failure since its last answer.
    pub up: bool,
    /// Down, with its backoff over: worth a try when no target is up.
    pub due: bool,
    /// Not known to lack the model.
    pub serves_model: bool,
    pub outstanding: usize,
    /// Tried already by this call.
    pub excluded: bool,
}

/// The target for a call, among those not excluded: targets that are up, and of those the ones
/// serving the model, with the fewest calls outstanding; ties are taken in turn, `start` (which
/// the caller advances at every call) choosing among them. A target that is down gets a call
/// only when none is up and `down_allowed` (a call's first attempt: it may find one back),
/// those with their backoff over first.
///
/// Turns are taken among the tied targets alone, never by walking the list from `start` to the
/// next eligible one: then a target after a run of skipped ones would get all their turns as
/// well (with 20 dead targets behind 7 live ones, the first live one took 75% of the calls).
pub fn choose_target(candidates: &[Candidate], start: usize, down_allowed: bool) -> Option<usize> {
    let open = || candidates.iter().enumerate().filter(|(_, c)| !c.excluded);
    let rank = |c: &Candidate| (!c.up, !c.due, !c.serves_model, c.outstanding);
    let best = open().filter(|(_, c)| c.up || down_allowed).map(|(_, c)| rank(c)).min()?;
    let ties = open().filter(|(_, c)| rank(c) == best).count();
    open().filter(|(_, c)| rank(c) == best).nth(start % ties).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(up: bool, serves_model: bool, outstanding: usize) -> Candidate {
        Candidate { up, due: false, serves_model, outstanding, excluded: false }
    }

    const LIVE: Candidate = Candidate { up: true, due: false, serves_model: true, outstanding: 0, excluded: false };
    const DEAD: Candidate = Candidate { up: false, due: false, serves_model: true, outstanding: 0, excluded: false };

    #[test]
    fn least_outstanding_among_healthy_targets() {
        let targets = [c(true, true, 3), c(true, true, 1), c(true, true, 2)];
        assert_eq!(choose_target(&targets, 0, true), Some(1));
        let targets = [c(false, true, 0), c(true, true, 9)];
        assert_eq!(choose_target(&targets, 0, true), Some(1), "down targets last");
        let targets = [c(true, false, 0), c(true, true, 5)];
        assert_eq!(choose_target(&targets, 0, true), Some(1), "targets without the model last");
        let targets = [c(false, true, 0), c(false, true, 0)];
        assert!(choose_target(&targets, 0, true).is_some(), "all down: a first attempt still tries one");
        assert_eq!(choose_target(&targets, 0, false), None, "... a retry does not");
        let mut due = targets;
        due[1].due = true;
        assert_eq!(choose_target(&due, 0, true), Some(1), "the one whose backoff is over first");
    }

    #[test]
    fn ties_rotate_and_exclusions_hold() {
        let targets = [c(true, true, 0); 3];
        let picks: Vec<_> = (0..3).map(|s| choose_target(&targets, s, true).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2]);
        let mut targets = [c(true, true, 0), c(true, true, 5)];
        targets[0].excluded = true;
        assert_eq!(choose_target(&targets, 0, true), Some(1));
        targets[1].excluded = true;
        assert_eq!(choose_target(&targets, 0, true), None);
    }

    /// Calls made one after another (nothing outstanding) over 7 live targets listed before 20
    /// dead ones, then over 8 live ones scattered among 100: each live target gets the same
    /// share, and the dead ones none.
    #[test]
    fn dead_targets_hand_their_turns_to_every_live_one_alike() {
        let mut static_list = vec![LIVE; 7];
        static_list.extend([DEAD; 20]);
        let mut dns: Vec<Candidate> = vec![DEAD; 100];
        for i in [3, 4, 17, 40, 41, 42, 77, 99] {
            dns[i] = LIVE;
        }
        for targets in [static_list, dns] {
            let live = targets.iter().filter(|c| c.up).count();
            let mut calls = vec![0; targets.len()];
            for start in 0..live * 1000 {
                calls[choose_target(&targets, start, true).unwrap()] += 1;
            }
            for (i, n) in calls.iter().enumerate() {
                assert_eq!(*n, if targets[i].up { 1000 } else { 0 }, "target {i}: {calls:?}");
            }
        }
    }
}
