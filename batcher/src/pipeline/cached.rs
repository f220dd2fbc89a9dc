//! The row cache around the batch queue, for a model with `row_cache`: each row of the call is
//! answered from the cache, from another call computing the same row now, or from the one
//! backend call this call makes for the rest (its distinct rows seen nowhere else). The answer
//! is the call's rows in order, each piece saying which backend call computed it; rows not
//! computed for this call carry that call's facts marked shared (no backend time of their own).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::app::App;
use crate::batching::key::{grouping, outputs_split_by_rows};
use crate::batching::rows::{gather_rows, take_rows};
use crate::batching::{BatchAnswer, BatchFacts, RowPiece, RowStream};
use crate::convert::{Outputs, Tensor};
use crate::request::{Code, CoreError, PredictCall};
use crate::row_cache::key::{call_prefix, row_keys};
use crate::row_cache::plan::{runs, Source};
use crate::row_cache::{Follow, RowCache, SharedRow};

/// Serves `call` through `cache`; a call whose rows cannot be told apart goes to the batcher
/// as it is.
pub async fn predict(app: &App, cache: &Arc<RowCache>, call: PredictCall) -> Result<BatchAnswer, CoreError> {
    let Some(rows) = row_count(&call) else { return app.batcher.predict(call).await };
    let Ok(keys) = row_keys(&call_prefix(&call.target, &call.signature_name), &call.inputs, rows) else {
        return app.batcher.predict(call).await;
    };
    let (plan, leads) = cache.plan(&call.target, &keys, Instant::now());
    let target = call.target.clone();
    let deadline = tokio::time::Instant::from_std(call.info.deadline);
    let template = Template::of(&call);
    // The rows sent: the call as it came when every row is its own (then no row waits for
    // another call, and its inputs are not needed again), else its distinct new rows.
    let (computed, inputs) = if plan.leads.is_empty() {
        (Vec::new(), call.inputs)
    } else if plan.leads.len() == rows {
        (rows_of(app.batcher.predict(call).await?, rows).await?, BTreeMap::new())
    } else {
        let picked: Vec<usize> = plan.leads.iter().map(|(row, _)| *row).collect();
        let sub = template.call(gather(&call.inputs, &picked)?);
        (rows_of(app.batcher.predict(sub).await?, picked.len()).await?, call.inputs)
    };
    if let Some(first) = computed.first() {
        cache.saw_version(&target, first.facts.version, Instant::now());
    }
    let shared_facts = SharedFacts::default();
    let kept: Vec<SharedRow> = if cache.settings().bytes > 0 {
        computed.iter().map(|row| own_copy(row, &shared_facts)).collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    leads.complete(&computed, &kept);

    // Rows another call was computing; those it failed to give are sent by this call.
    let mut followed = Vec::with_capacity(plan.follows.len());
    let mut orphans = Vec::new();
    for (i, follow) in plan.follows.into_iter().enumerate() {
        match wait(follow, deadline).await? {
            Some(row) => followed.push(Some(row)),
            None => {
                followed.push(None);
                orphans.push(i);
            }
        }
    }
    if !orphans.is_empty() {
        let rows_of_orphans: Vec<usize> = orphans
            .iter()
            .map(|&i| plan.rows.iter().position(|s| *s == Source::Follow(i)).unwrap_or_default())
            .collect();
        let sub = template.call(gather(&inputs, &rows_of_orphans)?);
        let answered = rows_of(app.batcher.predict(sub).await?, rows_of_orphans.len()).await?;
        for (i, row) in orphans.into_iter().zip(answered) {
            followed[i] = Some(row);
        }
    }

    // Each row's answer; a row computed for this call counts there once, any repeat is shared.
    let mut first_use = vec![true; computed.len()];
    let answers = plan.rows.iter().map(|source| -> Result<(SharedRow, bool), CoreError> {
        Ok(match *source {
            Source::Hit(i) => (plan.hits[i].clone(), true),
            Source::Follow(i) => match &followed[i] {
                Some(row) => (row.clone(), true),
                None => return Err(CoreError::internal("a row shared with another call was lost")),
            },
            Source::Lead(i) => {
                let first = std::mem::replace(&mut first_use[i], false);
                (computed[i].clone(), !first)
            }
        })
    });
    let answers: Vec<(SharedRow, bool)> = answers.collect::<Result<_, _>>()?;
    let pieces = runs(answers.into_iter().map(|(row, shared)| {
        let facts = if shared && !row.facts.shared { shared_facts.of(&row.facts) } else { row.facts.clone() };
        (Answer(row.outputs, facts), row.row)
    }));
    let pieces = pieces
        .into_iter()
        .map(|(Answer(outputs, facts), calls, answer_rows)| {
            (calls.start, RowPiece { outputs, rows: answer_rows, facts })
        })
        .collect();
    Ok(BatchAnswer::Rows(RowStream::from_pieces(pieces, rows)))
}

/// The rows a call carries when they can be told apart (its inputs join along dimension 0 and
/// the signature's outputs split by rows), as the batcher decides.
fn row_count(call: &PredictCall) -> Option<usize> {
    let signature = call.signatures.by_name.get(&call.signature_name)?;
    if !outputs_split_by_rows(&signature.outputs) {
        return None;
    }
    let grouping = grouping(0, &call.target.version, &call.signature_name, &call.inputs, &signature.inputs);
    grouping.mergeable.then_some(grouping.rows)
}

/// What a call made for some of the rows shares with the caller's.
struct Template {
    target: crate::target::ModelTarget,
    signature_name: String,
    signatures: Arc<crate::convert::Signatures>,
    class: crate::request::Class,
    info: crate::request::RequestInfo,
}

impl Template {
    fn of(call: &PredictCall) -> Template {
        Template {
            target: call.target.clone(),
            signature_name: call.signature_name.clone(),
            signatures: call.signatures.clone(),
            class: call.class,
            info: call.info.clone(),
        }
    }

    fn call(&self, inputs: BTreeMap<String, Tensor>) -> PredictCall {
        PredictCall {
            target: self.target.clone(),
            signature_name: self.signature_name.clone(),
            inputs,
            signatures: self.signatures.clone(),
            class: self.class,
            info: self.info.clone(),
        }
    }
}

fn gather(inputs: &BTreeMap<String, Tensor>, rows: &[usize]) -> Result<BTreeMap<String, Tensor>, CoreError> {
    inputs
        .iter()
        .map(|(name, tensor)| Ok((name.clone(), gather_rows(tensor, rows).map_err(CoreError::internal)?)))
        .collect()
}

/// The `rows` rows of a batch queue's answer, one by one.
async fn rows_of(answer: BatchAnswer, rows: usize) -> Result<Vec<SharedRow>, CoreError> {
    let mut out = Vec::with_capacity(rows);
    match answer {
        BatchAnswer::Whole(outputs, facts) => {
            if outputs.values().any(|t| t.shape.first() != Some(&rows)) {
                return Err(CoreError::internal(
                    "the model's outputs do not hold one row per input row: row_cache cannot split them",
                ));
            }
            out.extend((0..rows).map(|row| SharedRow { outputs: outputs.clone(), row, facts: facts.clone() }));
        }
        BatchAnswer::Rows(stream) => {
            for piece in stream.collect().await? {
                out.extend(piece.rows.map(|row| SharedRow {
                    outputs: piece.outputs.clone(),
                    row,
                    facts: piece.facts.clone(),
                }));
            }
        }
    }
    if out.len() != rows {
        return Err(CoreError::internal("the batch queue answered another number of rows"));
    }
    Ok(out)
}

/// A row copied out of its batch's outputs, as the cache keeps it.
fn own_copy(row: &SharedRow, shared: &SharedFacts) -> Result<SharedRow, CoreError> {
    let outputs: Outputs = take_rows(&row.outputs, row.row..row.row + 1).map_err(CoreError::internal)?;
    Ok(SharedRow { outputs: Arc::new(outputs), row: 0, facts: shared.of(&row.facts) })
}

/// Waits for a row another call is computing; `None` if that call failed or went away.
async fn wait(mut follow: Follow, deadline: tokio::time::Instant) -> Result<Option<SharedRow>, CoreError> {
    match tokio::time::timeout_at(deadline, follow.wait_for(Option::is_some)).await {
        Ok(Ok(row)) => Ok(row.clone()),
        Ok(Err(_)) => Ok(None),
        Err(_) => Err(CoreError::new(
            Code::DeadlineExceeded,
            "request timed out waiting for a row another request was computing",
        )
        .with_reason("timeout")),
    }
}

/// An answer's identity, for joining consecutive rows into one piece.
struct Answer(Arc<Outputs>, Arc<BatchFacts>);

impl PartialEq for Answer {
    fn eq(&self, other: &Answer) -> bool {
        Arc::ptr_eq(&self.0, &other.0) && Arc::ptr_eq(&self.1, &other.1)
    }
}

/// The shared form of each backend call's facts, made once per call.
#[derive(Default)]
struct SharedFacts(std::sync::Mutex<Vec<(Arc<BatchFacts>, Arc<BatchFacts>)>>);

impl SharedFacts {
    fn of(&self, facts: &Arc<BatchFacts>) -> Arc<BatchFacts> {
        if facts.shared {
            return facts.clone();
        }
        let mut made = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, shared)) = made.iter().find(|(original, _)| Arc::ptr_eq(original, facts)) {
            return shared.clone();
        }
        let shared = Arc::new(BatchFacts { shared: true, cost: std::time::Duration::ZERO, ..(**facts).clone() });
        made.push((facts.clone(), shared.clone()));
        shared
    }
}
