//! Where each row of a call gets its answer, decided before anything is sent: from the cache,
//! from another call computing the same row now, from an earlier row of this call with the same
//! key, or from this call's own backend call (its "leads", the rows sent). Pure.

use std::collections::HashMap;

use super::key::RowKey;

/// One row's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `hits[i]`.
    Hit(usize),
    /// `follows[i]`: another call is computing this row.
    Follow(usize),
    /// Row `i` of this call's backend call.
    Lead(usize),
}

/// A call's rows, each with its source.
#[derive(Debug)]
pub struct Plan<H, F> {
    pub rows: Vec<Source>,
    pub hits: Vec<H>,
    pub follows: Vec<F>,
    /// The call's row of each row sent, in order, and its key.
    pub leads: Vec<(usize, RowKey)>,
    /// Rows answered by a row with the same key earlier in this call (not sent again).
    pub duplicates: usize,
}

impl<H, F> Plan<H, F> {
    /// Rows answered without being computed for this call.
    pub fn shared_rows(&self) -> usize {
        self.rows.len() - self.leads.len()
    }
}

/// Looks each distinct key up once: in the cache (`cached`), then among the rows other calls
/// are computing (`in_flight`); a key found in neither is sent, once.
pub fn plan<H, F>(
    keys: &[RowKey],
    mut cached: impl FnMut(&RowKey) -> Option<H>,
    mut in_flight: impl FnMut(&RowKey) -> Option<F>,
) -> Plan<H, F> {
    let mut plan = Plan {
        rows: Vec::with_capacity(keys.len()),
        hits: Vec::new(),
        follows: Vec::new(),
        leads: Vec::new(),
        duplicates: 0,
    };
    // Only calls of several rows can repeat a key; a single row needs no map.
    let mut seen: HashMap<&RowKey, Source> = HashMap::new();
    for (row, key) in keys.iter().enumerate() {
        if let Some(&source) = seen.get(key) {
            plan.duplicates += 1;
            plan.rows.push(source);
            continue;
        }
        let source = if let Some(hit) = cached(key) {
            plan.hits.push(hit);
            Source::Hit(plan.hits.len() - 1)
        } else if let Some(follow) = in_flight(key) {
            plan.follows.push(follow);
            Source::Follow(plan.follows.len() - 1)
        } else {
            plan.leads.push((row, *key));
            Source::Lead(plan.leads.len() - 1)
        };
        if keys.len() > 1 {
            seen.insert(key, source);
        }
        plan.rows.push(source);
    }
    plan
}

/// Consecutive runs of rows that come from consecutive rows of one answer: `(call rows, answer
/// rows)` pairs, so an answer computed for the call as it was sent stays one piece.
pub fn runs<T: PartialEq>(
    rows: impl IntoIterator<Item = (T, usize)>,
) -> Vec<(T, std::ops::Range<usize>, std::ops::Range<usize>)> {
    let mut out: Vec<(T, std::ops::Range<usize>, std::ops::Range<usize>)> = Vec::new();
    for (call_row, (answer, answer_row)) in rows.into_iter().enumerate() {
        if let Some((last, calls, answers)) = out.last_mut() {
            if *last == answer && answers.end == answer_row && calls.end == call_row {
                calls.end += 1;
                answers.end += 1;
                continue;
            }
        }
        out.push((answer, call_row..call_row + 1, answer_row..answer_row + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(n: u8) -> RowKey {
        [n; 32]
    }

    #[test]
    fn each_distinct_key_is_looked_up_once_and_sent_at_most_once() {
        let keys = [k(1), k(2), k(1), k(3), k(4), k(2), k(5)];
        let mut lookups = Vec::new();
        let plan = plan(
            &keys,
            |key| {
                lookups.push(key[0]);
                (key[0] == 3).then_some("cached 3")
            },
            |key| (key[0] == 4).then_some("computing 4"),
        );
        assert_eq!(lookups, vec![1, 2, 3, 4, 5]);
        assert_eq!(
            plan.rows,
            vec![
                Source::Lead(0),
                Source::Lead(1),
                Source::Lead(0),
                Source::Hit(0),
                Source::Follow(0),
                Source::Lead(1),
                Source::Lead(2)
            ]
        );
        assert_eq!(plan.leads, vec![(0, k(1)), (1, k(2)), (6, k(5))]);
        assert_eq!((plan.hits, plan.follows, plan.duplicates), (vec!["cached 3"], vec!["computing 4"], 2));
    }

    #[test]
    fn shared_rows_are_those_not_sent() {
        let keys = [k(1), k(1), k(2)];
        let plan = plan(&keys, |key| (key[0] == 2).then_some(()), |_| None::<()>);
        assert_eq!((plan.shared_rows(), plan.leads.len()), (2, 1));
    }

    #[test]
    fn runs_join_consecutive_rows_of_one_answer() {
        let rows = [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("a", 4), ("a", 5)];
        assert_eq!(runs(rows), vec![("a", 0..2, 0..2), ("b", 2..3, 0..1), ("a", 3..4, 2..3), ("a", 4..6, 4..6)]);
        assert!(runs(Vec::<(u8, usize)>::new()).is_empty());
    }
}
