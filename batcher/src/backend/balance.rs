//! The pure parts of spreading calls over targets: which target a call goes to, and the
//! names of gRPC codes in metric labels.

/// A target as the balancing choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Up, or down with its backoff over (worth a try).
    pub usable: bool,
    /// Not known to lack the model.
    pub serves_model: bool,
    pub outstanding: usize,
    pub excluded: bool,
}

/// Usable first, then serving the model, then least outstanding calls; among equals, the first
/// from `start` (which the caller rotates).
pub fn choose_target(candidates: &[Candidate], start: usize) -> Option<usize> {
    let n = candidates.len();
    (0..n).map(|k| (start + k) % n).filter(|&i| !candidates[i].excluded).min_by_key(|&i| {
        let c = candidates[i];
        (!c.usable, !c.serves_model, c.outstanding)
    })
}

/// gRPC code names as in the gRPC spec (metric labels).
pub fn code_label(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(usable: bool, serves_model: bool, outstanding: usize) -> Candidate {
        Candidate { usable, serves_model, outstanding, excluded: false }
    }

    #[test]
    fn least_outstanding_among_healthy_targets() {
        let targets = [c(true, true, 3), c(true, true, 1), c(true, true, 2)];
        assert_eq!(choose_target(&targets, 0), Some(1));
        let targets = [c(false, true, 0), c(true, true, 9)];
        assert_eq!(choose_target(&targets, 0), Some(1), "down targets last");
        let targets = [c(true, false, 0), c(true, true, 5)];
        assert_eq!(choose_target(&targets, 0), Some(1), "targets without the model last");
        let targets = [c(false, true, 0), c(false, true, 0)];
        assert!(choose_target(&targets, 0).is_some(), "all down: still try one");
    }

    #[test]
    fn ties_rotate_and_exclusions_hold() {
        let targets = [c(true, true, 0); 3];
        let picks: Vec<_> = (0..3).map(|s| choose_target(&targets, s).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2]);
        let mut targets = [c(true, true, 0), c(true, true, 5)];
        targets[0].excluded = true;
        assert_eq!(choose_target(&targets, 0), Some(1));
        targets[1].excluded = true;
        assert_eq!(choose_target(&targets, 0), None);
    }
}
