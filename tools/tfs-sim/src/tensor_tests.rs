use super::*;

fn float_proto(shape: &[i64], vals: &[f32]) -> TensorProto {
    TensorProto {
        dtype: DataType::DtFloat as i32,
        tensor_shape: Some(shape_proto(shape)),
        float_val: vals.to_vec(),
        ..Default::default()
    }
}

#[test]
fn reads_float_val() {
    let t = Tensor::from_proto("x", &float_proto(&[3], &[1.0, 2.0, 5.0])).unwrap();
    assert_eq!(t, Tensor { shape: vec![3], values: Values::Float(vec![1.0, 2.0, 5.0]) });
}

#[test]
fn reads_tensor_content() {
    let mut p = float_proto(&[2, 1], &[]);
    p.tensor_content = [1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let t = Tensor::from_proto("x", &p).unwrap();
    assert_eq!(t.values, Values::Float(vec![1.5, -2.0]));
    assert_eq!(t.shape, vec![2, 1]);

    let p = TensorProto {
        dtype: DataType::DtInt64 as i32,
        tensor_shape: Some(shape_proto(&[2])),
        tensor_content: [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    };
    assert_eq!(Tensor::from_proto("i", &p).unwrap().values, Values::Int64(vec![7, -1]));
}

#[test]
fn tensor_content_wrong_length_is_rejected() {
    let mut p = float_proto(&[2], &[]);
    p.tensor_content = vec![0; 7].into();
    let e = Tensor::from_proto("x", &p).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
}

#[test]
fn single_element_fills_the_shape() {
    let t = Tensor::from_proto("x", &float_proto(&[2, 2], &[4.0])).unwrap();
    assert_eq!(t.values, Values::Float(vec![4.0; 4]));
}

#[test]
fn count_mismatch_is_rejected() {
    let e = Tensor::from_proto("x", &float_proto(&[3], &[1.0, 2.0])).unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert!(e.message().contains("2 values"), "{}", e.message());
    assert!(Tensor::from_proto("x", &float_proto(&[2], &[])).is_err());
}

#[test]
fn missing_shape_is_scalar_and_empty_shape_allowed() {
    let mut p = float_proto(&[], &[3.0]);
    p.tensor_shape = None;
    assert_eq!(Tensor::from_proto("x", &p).unwrap().shape, Vec::<i64>::new());
    let t = Tensor::from_proto("x", &float_proto(&[0], &[])).unwrap();
    assert_eq!(t.values, Values::Float(vec![]));
}

#[test]
fn bad_shapes_and_dtypes_are_rejected() {
    assert!(Tensor::from_proto("x", &float_proto(&[-1], &[1.0])).is_err());
    assert!(Tensor::from_proto("x", &float_proto(&[1 << 20, 1 << 20], &[1.0])).is_err());
    let p = TensorProto { dtype: DataType::DtComplex64 as i32, ..Default::default() };
    let e = Tensor::from_proto("x", &p).unwrap_err();
    assert!(e.message().contains("DT_COMPLEX64"), "{}", e.message());
}

#[test]
fn other_dtypes_are_checked_and_kept_for_echoing() {
    let half = TensorProto {
        dtype: DataType::DtHalf as i32,
        tensor_shape: Some(shape_proto(&[2])),
        half_val: vec![0x3c00, 0x4000],
        ..Default::default()
    };
    let t = Tensor::from_proto("x", &half).unwrap();
    assert_eq!((t.dtype(), t.to_proto()), (DataType::DtHalf, half.clone()));
    let mut short = half.clone();
    short.half_val = vec![];
    assert!(Tensor::from_proto("x", &short).is_err());
    let packed = TensorProto {
        dtype: DataType::DtUint64 as i32,
        tensor_shape: Some(shape_proto(&[1])),
        tensor_content: vec![0; 7].into(),
        ..Default::default()
    };
    assert!(Tensor::from_proto("x", &packed).is_err());
}

#[test]
fn round_trips_through_proto() {
    let t = Tensor { shape: vec![2], values: Values::String(vec![b"a".to_vec(), vec![0xff]]) };
    let p = t.to_proto();
    assert_eq!(p.dtype, DataType::DtString as i32);
    assert_eq!(Tensor::from_proto("s", &p).unwrap(), t);
    let t = Tensor { shape: vec![1, 2], values: Values::Bool(vec![true, false]) };
    assert_eq!(Tensor::from_proto("b", &t.to_proto()).unwrap(), t);
}
