//! How many batches the backend runs side by side.

/// How many batches the backend runs side by side (executors, or targets). A batch sent while
/// others are in flight either runs beside them (it takes its own time) or waits for the first of
/// them to finish (it takes that much longer); which one happened is learnt per depth.
#[derive(Debug, Clone, PartialEq)]
pub struct Parallelism {
    /// Per depth (batches in flight when one was sent, itself included): the moving average of
    /// "it waited" (0 or 1), and how much evidence there is. Evidence fades, so that a depth is
    /// probed again now and then: the backend may have grown.
    by_depth: Vec<(f64, f64)>,
}

/// Evidence below this is no evidence.
const KNOWN: f64 = 0.5;

impl Parallelism {
    pub fn new(max_depth: usize) -> Parallelism {
        Parallelism { by_depth: vec![(0.0, 0.0); max_depth.max(1)] }
    }

    pub fn resize(&mut self, max_depth: usize) {
        self.by_depth.resize(max_depth.max(1), (0.0, 0.0));
    }

    /// The deepest level that can be learnt (the batches a model may have in flight).
    pub fn depths(&self) -> usize {
        self.by_depth.len()
    }

    /// A batch was answered: what is known fades a little.
    pub fn fade(&mut self) {
        for (_, evidence) in &mut self.by_depth {
            *evidence *= 0.995;
        }
    }

    pub fn observe(&mut self, depth: usize, waited: bool) {
        let seen = if waited { 1.0 } else { 0.0 };
        if let Some((average, evidence)) = depth.checked_sub(1).and_then(|i| self.by_depth.get_mut(i)) {
            *average = if *evidence < KNOWN { seen } else { *average + 0.25 * (seen - *average) };
            *evidence += 1.0;
        }
    }

    /// Batches known to run side by side: the deepest level reached through levels that were
    /// seen and did not wait (at least 1).
    pub fn executors(&self) -> usize {
        let mut known = 1;
        for (i, &(waited, evidence)) in self.by_depth.iter().enumerate().skip(1) {
            if evidence < KNOWN || waited >= 0.5 {
                break;
            }
            known = i + 1;
        }
        known
    }

    /// Whether sending at `depth` would teach something (too little evidence there yet).
    pub fn worth_probing(&self, depth: usize) -> bool {
        depth.checked_sub(1).and_then(|i| self.by_depth.get(i)).is_some_and(|&(_, evidence)| evidence < KNOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallelism_is_the_depth_that_does_not_wait() {
        let mut p = Parallelism::new(4);
        assert_eq!(p.executors(), 1);
        assert!(p.worth_probing(2));
        p.observe(2, false);
        assert_eq!(p.executors(), 2, "a second batch ran as fast as one");
        p.observe(3, true);
        assert_eq!(p.executors(), 2, "a third one waited");
        assert!(!p.worth_probing(3));
        for _ in 0..400 {
            p.fade();
        }
        assert!(p.worth_probing(3), "evidence fades: the backend may have changed");
    }
}
