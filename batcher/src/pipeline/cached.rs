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
use crate::target::VersionRef;

/// Serves `call` through `cache`; a call whose rows cannot be told apart goes to the batcher
/// as it is.
pub async fn predict(app: &App, cache: &Arc<RowCache>, call: PredictCall) -> Result<BatchAnswer, CoreError> {
    let Some(rows) = row_count(&call) else { return app.batcher.predict(call).await };
    let Ok(keys) = row_keys(&call_prefix(&call.target, &call.signature_name), &call.inputs, rows) else {
        return app.batcher.predict(call).await;
    };
    let (plan, leads) = cache.plan(&call.target, &keys, call.info.deadline, Instant::now());
    let deadline = tokio::time::Instant::from_std(call.info.deadline);
    let target = call.target.clone();
    // For calls of some of the rows; a call whose rows are all its own needs none.
    let template = (plan.leads.len() != rows).then(|| Template::of(&call));
    // The rows sent: the call as it came when every row is its own (then no row waits for
    // another call, and its inputs are not needed again), else its distinct new rows.
    let (computed, inputs) = if plan.leads.is_empty() {
        (Vec::new(), call.inputs)
    } else if plan.leads.len() == rows {
        match split(app.batcher.predict(call).await?, rows).await? {
            Split::Rows(computed) => (computed, BTreeMap::new()),
            // Outputs that turned out not to split by rows: the answer as the batcher gave it
            // (the rows in flight are released, their followers send them).
            Split::Whole(answer) => return Ok(answer),
        }
    } else {
        let template = template.as_ref().ok_or_else(|| CoreError::internal("no template for a partial call"))?;
        let picked: Vec<usize> = plan.leads.iter().map(|(row, _)| *row).collect();
        let sub = template.call(gather(&call.inputs, &picked)?);
        match split(app.batcher.predict(sub).await?, picked.len()).await? {
            Split::Rows(computed) => (computed, call.inputs),
            Split::Whole(_) => {
                drop(leads);
                return app.batcher.predict(template.call(call.inputs)).await;
            }
        }
    };
    if let Some(first) = computed.first() {
        cache.saw_version(&target, first.facts.version, first.facts.sent);
    }
    let mut shared_facts = SharedFacts::default();
    let kept: Vec<SharedRow> = if cache.settings().bytes > 0 {
        computed.iter().map(|row| own_copy(row, &mut shared_facts)).collect::<Result<_, _>>()?
    } else {
        Vec::new()
    };
    // Followers get the row's own copy where there is one, not a hold on the whole batch.
    leads.complete(if kept.is_empty() { &computed } else { &kept }, &kept);

    // Each row's answer, and whether it was computed for this call (`Some(i)`: its i-th).
    let mut answers: Vec<Option<(SharedRow, Option<usize>)>> = vec![None; rows];
    let mut follows: Vec<Option<Follow>> = plan.follows.into_iter().map(Some).collect();
    let mut followed: Vec<Option<Option<SharedRow>>> = vec![None; follows.len()];
    for (row, source) in plan.rows.iter().enumerate() {
        answers[row] = match *source {
            Source::Hit(i) => Some((plan.hits[i].clone(), None)),
            Source::Lead(i) => Some((computed[i].clone(), Some(i))),
            Source::Follow(i) => {
                if followed[i].is_none() {
                    let follow = follows[i].take().ok_or_else(|| CoreError::internal("a followed row was lost"))?;
                    followed[i] = Some(wait(follow, deadline).await?);
                }
                followed[i].clone().flatten().map(|shared| (shared, None))
            }
        };
    }
    // Rows whose call failed or went away, and rows from elsewhere of another version than this
    // answer's (`latest` or a label moving while cached rows still answered): sent again, by
    // this call. Its own rows stay as the backend answered them (a call split across batches
    // while a version loads may get both, as it would without the cache).
    // A numbered version is in every key: its rows cannot differ.
    let numbered = matches!(target.version, VersionRef::Number(_));
    let version = answer_version(&computed, &answers);
    let resend: Vec<usize> = (0..rows)
        .filter(|&row| match &answers[row] {
            None => true,
            Some((shared, own)) => own.is_none() && !numbered && shared.facts.version != version,
        })
        .collect();
    if !resend.is_empty() {
        let template = template.as_ref().ok_or_else(|| CoreError::internal("no template for a partial call"))?;
        let sub = template.call(gather(&inputs, &resend)?);
        let Split::Rows(again) = split(app.batcher.predict(sub).await?, resend.len()).await? else {
            return Err(CoreError::internal("the model's outputs do not split by rows: row_cache cannot be used"));
        };
        if let Some(first) = again.first() {
            cache.saw_version(&target, first.facts.version, first.facts.sent);
        }
        for (n, (row, shared)) in resend.into_iter().zip(again).enumerate() {
            answers[row] = Some((shared, Some(computed.len() + n)));
        }
    }

    // A row computed for this call counts there once; any repeat, and every row from
    // elsewhere, is shared (no backend time of its own).
    let mut counted = std::collections::HashSet::new();
    let mut pieces_in = Vec::with_capacity(rows);
    for answer in answers {
        let (row, own) = answer.ok_or_else(|| CoreError::internal("a row of the call has no answer"))?;
        let first_use = own.is_some_and(|i| counted.insert(i));
        let facts = if first_use || row.facts.shared { row.facts.clone() } else { shared_facts.of(&row.facts) };
        pieces_in.push((Answer(row.outputs, facts), row.row));
    }
    let pieces = runs(pieces_in)
        .into_iter()
        .map(|(Answer(outputs, facts), calls, answer_rows)| {
            (calls.start, RowPiece { outputs, rows: answer_rows, facts })
        })
        .collect();
    Ok(BatchAnswer::Rows(RowStream::from_pieces(pieces, rows)))
}

/// The version an answer for `latest` or a label is given in: that of the rows computed for
/// it, else the newest among the others.
fn answer_version(computed: &[SharedRow], answers: &[Option<(SharedRow, Option<usize>)>]) -> Option<i64> {
    match computed.first() {
        Some(row) => row.facts.version,
        None => answers.iter().flatten().filter_map(|(row, _)| row.facts.version).max(),
    }
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

/// A batch queue's answer cut into its rows, or kept whole when its outputs turn out not to
/// hold one row per input row.
enum Split {
    Rows(Vec<SharedRow>),
    Whole(BatchAnswer),
}

/// The `rows` rows of a batch queue's answer, one by one.
async fn split(answer: BatchAnswer, rows: usize) -> Result<Split, CoreError> {
    let mut out = Vec::with_capacity(rows);
    match answer {
        BatchAnswer::Whole(outputs, facts) => {
            if outputs.values().any(|t| t.shape.first() != Some(&rows)) {
                return Ok(Split::Whole(BatchAnswer::Whole(outputs, facts)));
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
    Ok(Split::Rows(out))
}

/// A row copied out of its batch's outputs, as the cache keeps it.
fn own_copy(row: &SharedRow, shared: &mut SharedFacts) -> Result<SharedRow, CoreError> {
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
struct SharedFacts(Vec<(Arc<BatchFacts>, Arc<BatchFacts>)>);

impl SharedFacts {
    fn of(&mut self, facts: &Arc<BatchFacts>) -> Arc<BatchFacts> {
        if facts.shared {
            return facts.clone();
        }
        if let Some((_, shared)) = self.0.iter().find(|(original, _)| Arc::ptr_eq(original, facts)) {
            return shared.clone();
        }
        let shared = Arc::new(BatchFacts { shared: true, cost: std::time::Duration::ZERO, ..(**facts).clone() });
        self.0.push((facts.clone(), shared.clone()));
        shared
    }
}
