use super::*;

/// A random mix of everything; every row of every request is sent exactly once and in order,
/// unless the request was refused, expired, left late or was cancelled, and batches respect
/// every limit.
#[test]
fn random_traffic_keeps_every_invariant() {
    for dispatch in [Dispatch::Adaptive, Dispatch::Fixed] {
        random_traffic(dispatch);
    }
}

fn random_traffic(dispatch: Dispatch) {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let clock = Clock(Instant::now());
    let mut q = ModelQueue::new(Limits {
        dispatch,
        max_delay: Some(Duration::from_micros(50)),
        allowed_batch_sizes: vec![4, 8, 16],
        ..limits(16, 3)
    });
    let groups = ["a", "b", "c"];
    let mut rows_of: HashMap<u64, (usize, &str)> = HashMap::new();
    let mut sent: HashMap<u64, usize> = HashMap::new();
    let mut gone: Vec<u64> = Vec::new();
    let mut inflight: Vec<BatchId> = Vec::new();
    for step in 0..20_000u64 {
        let now = clock.at(step * 10);
        match random(10) {
            0..=4 => {
                let rows = 1 + random(40) as usize;
                let group = groups[random(3) as usize];
                let subject = ["s1", "s2", "s3", "s4"][random(4) as usize];
                rows_of.insert(step, (rows, group));
                if let Admission::Refused { .. } = q.push(arrival(step, group, subject, rows, now), now) {
                    gone.push(step);
                }
            }
            5 => {
                if let Some(&id) = rows_of.keys().nth(random(rows_of.len().max(1) as u64) as usize) {
                    if q.cancel(id) {
                        gone.push(id);
                    }
                }
            }
            6 | 7 if !inflight.is_empty() => {
                let batch = inflight.swap_remove(random(inflight.len() as u64) as usize);
                let latency = (random(8) > 0).then(|| Duration::from_micros(10 + random(200)));
                q.batch_done(batch, latency);
            }
            _ => {}
        }
        for (id, rows_sent) in q.expire(now) {
            assert_eq!(rows_sent, sent.get(&id).copied().unwrap_or(0), "rows reported sent");
            gone.push(id);
        }
        loop {
            let batch = match q.next(now) {
                Next::Dispatch(batch) => batch,
                Next::Late(late) => {
                    for (id, rows_sent) in late {
                        assert_eq!(rows_sent, sent.get(&id).copied().unwrap_or(0), "rows reported sent");
                        gone.push(id);
                    }
                    continue;
                }
                _ => break,
            };
            inflight.push(batch.id);
            assert!(inflight.len() <= 3, "more batches in flight than allowed");
            assert!(batch.rows <= 16 && batch.rows >= 1);
            assert!(batch.padded_rows >= batch.rows && [4, 8, 16].contains(&batch.padded_rows));
            for part in &batch.parts {
                let (rows, group) = rows_of[&part.id];
                assert_eq!(group, batch.group, "mixed groups");
                let done = sent.entry(part.id).or_default();
                assert_eq!(part.rows.start, *done, "rows out of order or repeated");
                *done = part.rows.end;
                assert_eq!(part.last, *done == rows);
                assert!(!gone.contains(&part.id), "a cancelled or expired request was sent");
            }
        }
    }
    // Drain: with every batch answered, everything left is sent or expires.
    let end = clock.at(20_000 * 10);
    for (step, id) in inflight.into_iter().enumerate() {
        q.batch_done(id, None);
        let now = end + Duration::from_millis(step as u64);
        loop {
            match q.next(now) {
                Next::Dispatch(batch) => {
                    q.batch_done(batch.id, None);
                    for part in &batch.parts {
                        *sent.entry(part.id).or_default() = part.rows.end;
                    }
                }
                Next::Late(late) => gone.extend(late.into_iter().map(|(id, _)| id)),
                _ => break,
            }
        }
    }
    gone.extend(q.expire(end + Duration::from_secs(2)).into_iter().map(|(id, _)| id));
    assert_eq!(q.queued_requests(), 0);
    for (id, (rows, _)) in &rows_of {
        let done = sent.get(id).copied().unwrap_or(0);
        assert!(done == *rows || gone.contains(id), "request {id}: {done} of {rows} rows sent");
    }
}
