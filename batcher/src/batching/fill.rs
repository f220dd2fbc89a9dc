//! Filling one batch from a group's per-subject queues: deficit round-robin by rows.
//!
//! Each pass gives every subject, in round-robin order, a quantum of `capacity / subjects` rows
//! (at least 1). Within its quantum a subject takes whole requests from the head of its queue;
//! a request larger than a whole batch is split, one quantum at a time. Passes repeat while
//! anything fits, so a lone subject still fills the batch. The subject served first moves to
//! the back, so the next batch starts with the next subject.

use super::policy::{Group, Part};

pub(super) fn fill_batch(group: &mut Group, capacity: usize) -> Vec<Part> {
    if !group.mergeable {
        return take_alone(group);
    }
    let capacity = capacity.max(1);
    let first_subject = group.subjects.front().map(|s| s.subject.clone());
    let quantum = capacity.div_ceil(group.subjects.len().max(1)).max(1);
    let mut parts: Vec<Part> = Vec::new();
    let mut remaining = capacity;
    loop {
        let mut progress = false;
        for subject in group.subjects.iter_mut() {
            let mut allowance = quantum;
            while remaining > 0 && allowance > 0 {
                let Some(head) = subject.queue.front_mut() else {
                    break;
                };
                let left = head.rows - head.sent;
                let take = if left <= remaining {
                    left
                } else if left > capacity {
                    // Too large for any batch: split it.
                    remaining.min(allowance)
                } else {
                    // Fits a batch of its own: wait for the next one rather than split.
                    break;
                };
                let start = head.sent;
                head.sent += take;
                let last = head.sent == head.rows;
                let id = head.id;
                if last {
                    subject.queue.pop_front();
                }
                match parts.iter_mut().find(|p| p.id == id) {
                    // Rows of a split request already in this batch: extend them.
                    Some(part) => {
                        part.rows.end += take;
                        part.last = last;
                    }
                    None => parts.push(Part { id, rows: start..start + take, last }),
                }
                group.rows -= take;
                remaining -= take;
                allowance = allowance.saturating_sub(take);
                progress = true;
            }
        }
        if !progress || remaining == 0 {
            break;
        }
    }
    group.subjects.retain(|s| !s.queue.is_empty());
    if group.subjects.front().map(|s| &s.subject) == first_subject.as_ref() {
        group.subjects.rotate_left(1);
    }
    parts
}

/// A request that cannot share a batch goes whole and alone.
fn take_alone(group: &mut Group) -> Vec<Part> {
    let Some(subject) = group.subjects.front_mut() else {
        return Vec::new();
    };
    let Some(head) = subject.queue.pop_front() else {
        return Vec::new();
    };
    group.rows -= head.rows - head.sent;
    group.subjects.retain(|s| !s.queue.is_empty());
    vec![Part { id: head.id, rows: head.sent..head.rows, last: true }]
}
