use super::*;
use crate::convert::{Blame, Dtype, Values};

fn tensor(dtype: Dtype, shape: &[usize], values: Values) -> TensorProto {
    Tensor { dtype, shape: shape.to_vec(), values }.into_proto()
}

fn decode(outputs: Vec<(&str, TensorProto)>) -> Result<Outputs, ConvertError> {
    let map = outputs.into_iter().map(|(n, t)| (n.to_string(), t)).collect();
    decode_outputs(&map)
}

fn answer(format: Format, outputs: Vec<(&str, TensorProto)>) -> Result<String, ConvertError> {
    let outputs = decode(outputs)?;
    predict_response_json(format, AnswerSource::Whole(&outputs)).map(|b| String::from_utf8(b).unwrap())
}

#[test]
fn row_single_output_is_plain_values() {
    let y = tensor(Dtype::Float, &[3], Values::F32(vec![2.5, 3.0, 4.5]));
    assert_eq!(answer(Format::Row, vec![("y", y)]).unwrap(), r#"{"predictions":[2.5,3.0,4.5]}"#);
    let y = tensor(Dtype::Int64, &[2, 2], Values::I64(vec![1, 2, 3, 4]));
    assert_eq!(answer(Format::Row, vec![("y", y)]).unwrap(), r#"{"predictions":[[1,2],[3,4]]}"#);
}

#[test]
fn row_several_outputs_are_objects_per_row() {
    let a = tensor(Dtype::Bool, &[2], Values::Bool(vec![true, false]));
    let b = tensor(Dtype::Double, &[2, 1], Values::F64(vec![0.5, 1.5]));
    assert_eq!(
        answer(Format::Row, vec![("b", b), ("a", a)]).unwrap(),
        r#"{"predictions":[{"a":true,"b":[0.5]},{"a":false,"b":[1.5]}]}"#
    );
}

#[test]
fn row_outputs_must_share_a_batch_dimension() {
    let a = tensor(Dtype::Int32, &[2], Values::I32(vec![1, 2]));
    let b = tensor(Dtype::Int32, &[3], Values::I32(vec![1, 2, 3]));
    let e = answer(Format::Row, vec![("a", a.clone()), ("b", b)]).unwrap_err();
    assert_eq!(e.message, "Tensor name: b has inconsistent batch size: 3 expecting: 2");
    let scalar = tensor(Dtype::Int32, &[], Values::I32(vec![1]));
    assert!(answer(Format::Row, vec![("s", scalar.clone())]).unwrap_err().message.contains("has no shape information"));
    assert_eq!(answer(Format::Columnar, vec![("s", scalar)]).unwrap(), r#"{"outputs":1}"#);
    let empty = tensor(Dtype::Int32, &[0], Values::I32(vec![]));
    assert!(answer(Format::Row, vec![("e", empty)]).unwrap_err().message.contains("invalid batch size: 0"));
}

#[test]
fn columnar_answers() {
    let y = tensor(Dtype::Float, &[2, 1], Values::F32(vec![0.1, 0.2]));
    assert_eq!(answer(Format::Columnar, vec![("y", y.clone())]).unwrap(), r#"{"outputs":[[0.1],[0.2]]}"#);
    let s = tensor(Dtype::String, &[1], Values::Bytes(vec![b"hi".to_vec()].into()));
    assert_eq!(
        answer(Format::Columnar, vec![("y", y), ("s", s)]).unwrap(),
        r#"{"outputs":{"s":["hi"],"y":[[0.1],[0.2]]}}"#
    );
}

#[test]
fn bytes_outputs_are_b64_and_non_finite_floats_bare() {
    let s = tensor(Dtype::String, &[2], Values::Bytes(vec![vec![0xff], b"a".to_vec()].into()));
    let f = tensor(Dtype::Float, &[2], Values::F32(vec![f32::NAN, f32::INFINITY]));
    assert_eq!(
        answer(Format::Row, vec![("s_bytes", s.clone()), ("f", f)]).unwrap(),
        r#"{"predictions":[{"f":NaN,"s_bytes":{"b64":"/w=="}},{"f":Infinity,"s_bytes":{"b64":"YQ=="}}]}"#
    );
    assert_eq!(
        answer(Format::Columnar, vec![("s_bytes", s)]).unwrap(),
        r#"{"outputs":[{"b64":"/w=="},{"b64":"YQ=="}]}"#
    );
}

#[test]
fn row_slices_of_batches_are_written_in_request_order() {
    let batch1 = decode(vec![
        ("y", tensor(Dtype::Int32, &[4, 1], Values::I32(vec![0, 1, 2, 3]))),
        ("z", tensor(Dtype::Bool, &[4], Values::Bool(vec![true, false, true, false]))),
    ])
    .unwrap();
    let batch2 = decode(vec![
        ("y", tensor(Dtype::Int32, &[2, 1], Values::I32(vec![10, 11]))),
        ("z", tensor(Dtype::Bool, &[2], Values::Bool(vec![true, true]))),
    ])
    .unwrap();
    let slices = [RowSlice { outputs: &batch1, rows: 2..4 }, RowSlice { outputs: &batch2, rows: 0..1 }];
    let row = predict_response_json(Format::Row, AnswerSource::Rows(&slices)).unwrap();
    assert_eq!(
        String::from_utf8(row).unwrap(),
        r#"{"predictions":[{"y":[2],"z":true},{"y":[3],"z":false},{"y":[10],"z":true}]}"#
    );
    let columnar = predict_response_json(Format::Columnar, AnswerSource::Rows(&slices)).unwrap();
    assert_eq!(String::from_utf8(columnar).unwrap(), r#"{"outputs":{"y":[[2],[3],[10]],"z":[true,false,true]}}"#);
    let other = decode(vec![("w", tensor(Dtype::Int32, &[1], Values::I32(vec![1])))]).unwrap();
    let mixed = [RowSlice { outputs: &batch1, rows: 0..1 }, RowSlice { outputs: &other, rows: 0..1 }];
    let e = predict_response_json(Format::Row, AnswerSource::Rows(&mixed)).unwrap_err();
    assert_eq!(e.blame, Blame::Backend);
}

#[test]
fn reads_tensor_content_and_single_values() {
    let mut packed = tensor(Dtype::Float, &[2], Values::F32(vec![]));
    packed.tensor_content = [1.5f32, -2.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    assert_eq!(answer(Format::Row, vec![("y", packed)]).unwrap(), r#"{"predictions":[1.5,-2.0]}"#);
    let filled = tensor(Dtype::Int32, &[2, 2], Values::I32(vec![7]));
    assert_eq!(answer(Format::Columnar, vec![("y", filled)]).unwrap(), r#"{"outputs":[[7,7],[7,7]]}"#);
}

#[test]
fn unreadable_outputs_are_backend_errors() {
    let mut bad = tensor(Dtype::Float, &[2], Values::F32(vec![]));
    bad.tensor_content = vec![1, 2, 3].into();
    let e = answer(Format::Row, vec![("y", bad)]).unwrap_err();
    assert_eq!(e.blame, Blame::Backend);
    assert!(e.message.starts_with("output y:"), "{}", e.message);
    assert_eq!(answer(Format::Row, vec![]).unwrap_err().blame, Blame::Backend);
}
