//! Classify, Regress and MultiInference are forwarded as they are: the message is never decoded,
//! only walked for its model spec and its examples, and the model version nginx resolved is
//! written into its `model_spec` (a second occurrence of the field, which protobuf merges into
//! the first). What the rewriting allocates is reserved before it is done.

use bytes::Bytes;
use prost::Message;
use tfgate_common::wire::{put_len_field, put_varint_field, WireError};
use tfgate_common::Method;
use tfgate_proto::tensorflow::serving::ModelSpec;

use super::fields::{self, Value};
use crate::admission::Reservation;
use crate::request::CoreError;
use crate::target::{ModelTarget, VersionRef};

/// The message's model spec (for MultiInference, its first task's: nginx checked that every
/// task names the same model), merged from every occurrence as protobuf does.
pub fn read_spec(method: Method, message: &[u8], memory: &mut Reservation) -> Result<ModelSpec, CoreError> {
    let holder = match method {
        Method::MultiInference => match first(message, 1).map_err(|e| malformed(&e))? {
            Some(task) => task,
            None => return Ok(ModelSpec::default()),
        },
        _ => message,
    };
    let mut size = 0;
    fields::for_each(holder, |field, value| {
        if let (1, Value::Len(spec)) = (field, value) {
            size += spec.len();
        }
        Ok(())
    })
    .map_err(|e| malformed(&e))?;
    // The joined occurrences, and the decoded spec (its strings are within them).
    memory.grow(2 * size)?;
    let mut merged = Vec::with_capacity(size);
    fields::for_each(holder, |field, value| {
        if let (1, Value::Len(spec)) = (field, value) {
            merged.extend_from_slice(spec);
        }
        Ok(())
    })
    .map_err(|e| malformed(&e))?;
    ModelSpec::decode(&merged[..]).map_err(|e| CoreError::invalid(format!("model_spec does not decode: {e}")))
}

/// The first occurrence of length-delimited field `number`.
fn first(message: &[u8], number: u32) -> Result<Option<&[u8]>, WireError> {
    let mut found = None;
    fields::for_each(message, |field, value| {
        if let (true, None, Value::Len(bytes)) = (field == number, found, value) {
            found = Some(bytes);
        }
        Ok(())
    })?;
    Ok(found)
}

/// The examples of a Classify, Regress or MultiInference message: in its `input` (field 2),
/// `example_list` (1) or `example_list_with_context` (2), each an `examples` (1). A message whose
/// input does not read is refused rather than counted as nothing: TF Serving's parser may still
/// accept what this reader does not (e.g. unknown groups nested deeper than it follows), and
/// would then run examples no quota counted.
pub fn example_count(message: &[u8]) -> Result<u64, CoreError> {
    let mut count = 0;
    fields::for_each(message, |field, value| {
        let (2, Value::Len(input)) = (field, value) else { return Ok(()) };
        fields::for_each(input, |field, value| {
            if let (1 | 2, Value::Len(list)) = (field, value) {
                count += fields::count(list, 1)?;
            }
            Ok(())
        })
    })
    .map_err(|e| CoreError::invalid(format!("the request's input is malformed: {}", describe(&e))))?;
    Ok(count)
}

/// The message with `model_spec { name, version }` of `target` merged in: appended to it (for
/// MultiInference, to every task). What the new message takes is reserved first.
pub fn with_target(
    method: Method,
    message: &Bytes,
    target: &ModelTarget,
    memory: &mut Reservation,
) -> Result<Bytes, CoreError> {
    let spec = spec_bytes(target);
    if method != Method::MultiInference {
        memory.grow(message.len() + spec.len() + 8)?;
        let mut out = Vec::with_capacity(message.len() + spec.len() + 8);
        out.extend_from_slice(message);
        put_len_field(&mut out, 1, &spec);
        return Ok(out.into());
    }
    let tasks = fields::count(message, 1).map_err(|e| malformed(&e))? as usize;
    let size = message.len().saturating_add(tasks.saturating_mul(spec.len() + 16));
    memory.grow(size)?;
    let mut out = Vec::with_capacity(size);
    // Fields other than tasks are copied as they are, in place.
    let mut copied = 0;
    let mut task_bytes = Vec::new();
    fields::for_each_at(message, |field, value, start| {
        let (1, Value::Len(task)) = (field, value) else { return Ok(()) };
        out.extend_from_slice(&message[copied..start]);
        task_bytes.clear();
        task_bytes.extend_from_slice(task);
        put_len_field(&mut task_bytes, 1, &spec);
        put_len_field(&mut out, 1, &task_bytes);
        copied = task.as_ptr() as usize - message.as_ptr() as usize + task.len();
        Ok(())
    })
    .map_err(|e| malformed(&e))?;
    out.extend_from_slice(&message[copied..]);
    Ok(out.into())
}

/// `ModelSpec { name, version or label }` on the wire.
fn spec_bytes(target: &ModelTarget) -> Vec<u8> {
    let mut spec = Vec::new();
    put_len_field(&mut spec, 1, target.model.as_bytes());
    match &target.version {
        VersionRef::Number(n) => {
            let mut version = Vec::new();
            put_varint_field(&mut version, 1, *n as u64);
            put_len_field(&mut spec, 2, &version);
        }
        VersionRef::Label(label) => put_len_field(&mut spec, 4, label.as_bytes()),
        VersionRef::Latest => {}
    }
    spec
}

fn malformed(error: &WireError) -> CoreError {
    CoreError::invalid(format!("the request message is malformed: {}", describe(error)))
}

fn describe(error: &WireError) -> &'static str {
    match error {
        WireError::Truncated => "truncated",
        WireError::Malformed(why) => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admission::MemoryBudget;
    use tfgate_proto::tensorflow::serving::model_spec::VersionChoice;

    fn spec_bytes(name: &str, label: &str) -> Vec<u8> {
        ModelSpec {
            name: name.into(),
            version_choice: Some(VersionChoice::VersionLabel(label.into())),
            ..Default::default()
        }
        .encode_to_vec()
    }

    /// The model specs of every task of a MultiInference message.
    fn task_specs(message: &[u8]) -> Vec<ModelSpec> {
        let mut specs = Vec::new();
        fields::for_each(message, |field, value| {
            if let (1, Value::Len(task)) = (field, value) {
                let budget = MemoryBudget::new(1 << 20);
                specs.push(read_spec(Method::Classify, task, &mut budget.reservation()).unwrap());
            }
            Ok(())
        })
        .unwrap();
        specs
    }

    #[test]
    fn the_resolved_version_is_merged_into_every_model_spec() {
        let budget = MemoryBudget::new(1 << 20);
        let mut memory = budget.reservation();
        let target = ModelTarget { model: "m".into(), version: VersionRef::Number(7) };
        // Classify: model_spec = 1, input = 2 (opaque here).
        let mut classify = Vec::new();
        put_len_field(&mut classify, 1, &spec_bytes("m", "canary"));
        put_len_field(&mut classify, 2, b"opaque input");
        let out = with_target(Method::Classify, &classify.clone().into(), &target, &mut memory).unwrap();
        assert!(out.starts_with(&classify), "the original bytes are kept");
        let spec = read_spec(Method::Classify, &out, &mut memory).unwrap();
        assert_eq!((spec.name.as_str(), spec.version_choice), ("m", Some(VersionChoice::Version(7))));
        // MultiInference: tasks = 1 { model_spec = 1, method_name = 2 }, input = 2.
        let mut task = Vec::new();
        put_len_field(&mut task, 1, &spec_bytes("m", "canary"));
        put_len_field(&mut task, 2, &[b'x'; 200]);
        let mut multi = Vec::new();
        put_len_field(&mut multi, 1, &task);
        put_len_field(&mut multi, 2, b"opaque input");
        put_len_field(&mut multi, 1, &task);
        let out = with_target(Method::MultiInference, &multi.into(), &target, &mut memory).unwrap();
        let specs = task_specs(&out);
        assert_eq!(specs.len(), 2);
        assert!(specs.iter().all(|s| s.version_choice == Some(VersionChoice::Version(7))));
        let mut input_kept = false;
        fields::for_each(&out, |field, value| {
            input_kept |= (field, value) == (2, Value::Len(b"opaque input"));
            Ok(())
        })
        .unwrap();
        assert!(input_kept);
        assert!(read_spec(Method::Classify, &Bytes::from_static(&[0x0a, 9]), &mut memory).is_err());
    }

    #[test]
    fn rewriting_a_message_of_many_tasks_is_reserved_first() {
        let budget = MemoryBudget::new(64 << 10);
        let target = ModelTarget { model: "m".repeat(200), version: VersionRef::Number(7) };
        // 10,000 empty tasks: 20 KB that would grow past 2 MB.
        let multi: Vec<u8> = [0x0a, 0x00].repeat(10_000);
        let e = with_target(Method::MultiInference, &multi.into(), &target, &mut budget.reservation()).unwrap_err();
        assert_eq!(e.http_status(), 413);
    }

    #[test]
    fn quotas_count_the_examples_of_every_list() {
        let examples = |n: usize| {
            let mut list = Vec::new();
            for _ in 0..n {
                put_len_field(&mut list, 1, b"an Example");
            }
            list
        };
        let message = |list_field: u32, n: usize| {
            let mut input = Vec::new();
            put_len_field(&mut input, list_field, &examples(n));
            let mut message = Vec::new();
            put_len_field(&mut message, 1, &spec_bytes("m", "canary"));
            put_len_field(&mut message, 2, &input);
            message
        };
        let example_count = |m: &[u8]| example_count(m).unwrap();
        assert_eq!(example_count(&message(1, 3)), 3);
        // example_list_with_context; a second, empty input adds nothing.
        let mut with_context = message(2, 2);
        assert_eq!(example_count(&with_context), 2);
        with_context.extend_from_slice(&[0x12, 0x00]);
        assert_eq!(example_count(&with_context), 2);
        assert_eq!(example_count(&message(1, 0)), 0);
        assert!(super::example_count(&[0x12, 0x05, 0x0a]).is_err(), "a truncated input is refused");
        // An input this reader cannot follow (unknown groups nested too deep) is refused, never
        // counted as no examples.
        let mut deep = Vec::new();
        deep.extend(std::iter::repeat_n(0x1b_u8, 40)); // start group 3, 40 deep
        deep.extend(std::iter::repeat_n(0x1c_u8, 40)); // end group 3
        let mut input = Vec::new();
        put_len_field(&mut input, 1, &examples(2));
        input.extend_from_slice(&deep);
        let mut message = Vec::new();
        put_len_field(&mut message, 2, &input);
        assert!(super::example_count(&message).is_err());
    }
}
