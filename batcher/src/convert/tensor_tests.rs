use super::*;
use tfgate_proto::tensorflow::DataType;

fn proto(dtype: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        dtype: dtype as i32,
        tensor_shape: Some(TensorShapeProto {
            dim: dims.iter().map(|&size| Dim { size, name: String::new() }).collect(),
            unknown_rank: false,
        }),
        ..Default::default()
    }
}

#[test]
fn round_trips_through_typed_fields() {
    let tensor = Tensor { dtype: Dtype::Int16, shape: vec![2, 2], values: Values::I32(vec![1, -2, 3, 4]) };
    let p = tensor.clone().into_proto();
    assert_eq!(p.int_val, vec![1, -2, 3, 4]);
    assert_eq!(p.dtype, DataType::DtInt16 as i32);
    assert_eq!(Tensor::from_proto(&p).unwrap(), tensor);
}

#[test]
fn reads_tensor_content_little_endian() {
    let mut p = proto(DataType::DtFloat, &[3]);
    p.tensor_content = [2.5f32, -1.0, 0.0].iter().flat_map(|f| f.to_le_bytes()).collect();
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::F32(vec![2.5, -1.0, 0.0]));

    let mut p = proto(DataType::DtInt64, &[2]);
    p.tensor_content = [7i64, -9].iter().flat_map(|f| f.to_le_bytes()).collect();
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::I64(vec![7, -9]));

    let mut p = proto(DataType::DtInt8, &[2]);
    p.tensor_content = vec![0xff, 0x01].into();
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::I32(vec![-1, 1]));

    let mut p = proto(DataType::DtBool, &[2]);
    p.tensor_content = vec![0, 1].into();
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::Bool(vec![false, true]));
}

#[test]
fn sixteen_bit_floats_use_half_val_and_two_byte_content() {
    for dtype in [Dtype::Half, Dtype::Bfloat16] {
        let tensor = Tensor { dtype, shape: vec![3], values: Values::F32(vec![1.0, -2.5, 0.0]) };
        let p = tensor.clone().into_proto();
        assert!(p.float_val.is_empty() && p.half_val.len() == 3);
        assert_eq!(Tensor::from_proto(&p).unwrap(), tensor);
    }
    let mut p = proto(DataType::DtHalf, &[2]);
    p.tensor_content = vec![0x00, 0x3c, 0x00, 0xc0].into();
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::F32(vec![1.0, -2.0]));
    let mut p = proto(DataType::DtBfloat16, &[1]);
    p.tensor_content = vec![0x80, 0x3f].into();
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::F32(vec![1.0]));
}

#[test]
fn wrong_content_length_is_a_backend_error() {
    let mut p = proto(DataType::DtDouble, &[2]);
    p.tensor_content = vec![0; 9].into();
    let e = Tensor::from_proto(&p).unwrap_err();
    assert_eq!(e.blame, super::super::Blame::Backend);
}

#[test]
fn one_value_fills_the_shape_and_none_means_zeros() {
    let mut p = proto(DataType::DtFloat, &[2, 2]);
    p.float_val = vec![7.0];
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::F32(vec![7.0; 4]));
    let p = proto(DataType::DtInt32, &[3]);
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::I32(vec![0; 3]));
    let mut p = proto(DataType::DtInt32, &[3]);
    p.int_val = vec![1, 2];
    assert_eq!(Tensor::from_proto(&p).unwrap().values, Values::I32(vec![1, 2, 2]));
}

#[test]
fn missing_shape_is_a_scalar() {
    let p = TensorProto { dtype: DataType::DtDouble as i32, double_val: vec![1.5], ..Default::default() };
    let t = Tensor::from_proto(&p).unwrap();
    assert_eq!((t.shape, t.values), (vec![], Values::F64(vec![1.5])));
}

#[test]
fn malformed_backend_tensors_are_errors_not_panics() {
    let mut too_many = proto(DataType::DtFloat, &[1]);
    too_many.float_val = vec![1.0, 2.0];
    let huge = proto(DataType::DtFloat, &[1 << 40, 1 << 40]);
    let negative = proto(DataType::DtFloat, &[-1]);
    let complex = proto(DataType::DtComplex64, &[1]);
    let mut strings_packed = proto(DataType::DtString, &[1]);
    strings_packed.tensor_content = vec![1].into();
    let mut unknown_rank = proto(DataType::DtFloat, &[]);
    unknown_rank.tensor_shape.as_mut().unwrap().unknown_rank = true;
    for p in [too_many, huge, negative, complex, strings_packed, unknown_rank] {
        assert!(Tensor::from_proto(&p).is_err(), "{p:?}");
    }
}

#[test]
fn the_size_a_tensor_will_take_is_known_before_it_is_read() {
    // One value filling 2^26 floats: 256 MiB once read, from a message of a few bytes.
    let mut p = proto(DataType::DtFloat, &[1, 1 << 26]);
    p.float_val = vec![1.0];
    assert_eq!(read_size(&p).unwrap(), 4 << 26);
    // One 1 KiB string filling 2^20 elements: 1 GiB of strings and 4 MiB of offsets.
    let mut p = proto(DataType::DtString, &[1, 1 << 20]);
    p.string_val = vec![vec![b'x'; 1024]];
    assert_eq!(read_size(&p).unwrap(), (1024 << 20) + (4 << 20));
    // What is computed is what reading takes.
    let mut p = proto(DataType::DtInt16, &[3, 5]);
    p.int_val = vec![7, 8];
    assert_eq!(read_size(&p).unwrap(), Tensor::from_request_proto(&p).unwrap().values.heap_bytes());
    let mut p = proto(DataType::DtString, &[4]);
    p.string_val = vec![b"ab".to_vec(), b"cde".to_vec()];
    assert_eq!(read_size(&p).unwrap(), 2 + 3 + 3 + 3 + 16);
    // Shapes past the element bound, and types tfgate cannot read, are refused as the client's.
    let huge = proto(DataType::DtDouble, &[1 << 20, 1 << 20]);
    assert_eq!(read_size(&huge).unwrap_err().blame, crate::convert::Blame::Request);
    assert!(read_size(&proto(DataType::DtComplex64, &[1])).is_err());
    // A batch dimension of 2^62 over nothing holds no element, but is 2^62 rows: refused.
    let empty_rows = proto(DataType::DtFloat, &[1 << 62, 0]);
    assert_eq!(read_size(&empty_rows).unwrap_err().blame, crate::convert::Blame::Request);
    assert!(Tensor::from_request_proto(&empty_rows).is_err());
    assert_eq!(read_size(&proto(DataType::DtFloat, &[1 << 20, 0])).unwrap(), 0);
}

#[test]
fn filled_strings_take_what_was_reserved_for_them() {
    // One short string filling a million elements: no allocation per element.
    let mut p = proto(DataType::DtString, &[1 << 20]);
    p.string_val = vec![b"a".to_vec()];
    let read = Tensor::from_request_proto(&p).unwrap();
    assert_eq!(read.values.heap_bytes(), read_size(&p).unwrap());
    let Values::Bytes(strings) = &read.values else { panic!("not strings") };
    assert_eq!((strings.len(), strings.get(123_456)), (1 << 20, Some(&b"a"[..])));
    let mut p = proto(DataType::DtString, &[3]);
    p.string_val = vec![b"ab".to_vec(), b"c".to_vec()];
    let Values::Bytes(strings) = Tensor::from_request_proto(&p).unwrap().values else { panic!("not strings") };
    assert_eq!((0..3).map(|i| strings.get(i).unwrap()).collect::<Vec<_>>(), [&b"ab"[..], b"c", b"c"]);
    p.string_val.push(b"d".to_vec());
    p.string_val.push(b"e".to_vec());
    assert!(Tensor::from_request_proto(&p).is_err(), "more values than elements");
}
