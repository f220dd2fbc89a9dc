//! `--tensor-content`: answers written with `tensor_content` (packed little-endian bytes)
//! instead of the typed `*_val` fields, as some TensorFlow servers do, so that clients are
//! tested on both encodings. Strings stay in `string_val` (they have no packed form).

use tfgate_proto::tensorflow::{DataType, TensorProto};

/// The same tensor with its values moved into `tensor_content`.
pub fn packed(mut t: TensorProto) -> TensorProto {
    if !t.tensor_content.is_empty() {
        return t;
    }
    let n: usize = t.tensor_shape.as_ref().map(|s| s.dim.iter().map(|d| d.size.max(0) as usize).product()).unwrap_or(1);
    let mut out = Vec::new();
    let ok = match DataType::try_from(t.dtype) {
        Ok(DataType::DtFloat) => pack(&mut out, &t.float_val, n, |v: &f32| v.to_le_bytes().to_vec()),
        Ok(DataType::DtDouble) => pack(&mut out, &t.double_val, n, |v: &f64| v.to_le_bytes().to_vec()),
        Ok(DataType::DtInt32) => pack(&mut out, &t.int_val, n, |v: &i32| v.to_le_bytes().to_vec()),
        Ok(DataType::DtInt16 | DataType::DtUint16) => {
            pack(&mut out, &t.int_val, n, |v: &i32| (*v as u16).to_le_bytes().to_vec())
        }
        Ok(DataType::DtInt8 | DataType::DtUint8) => pack(&mut out, &t.int_val, n, |v: &i32| vec![*v as u8]),
        Ok(DataType::DtInt64) => pack(&mut out, &t.int64_val, n, |v: &i64| v.to_le_bytes().to_vec()),
        Ok(DataType::DtUint32) => pack(&mut out, &t.uint32_val, n, |v: &u32| v.to_le_bytes().to_vec()),
        Ok(DataType::DtUint64) => pack(&mut out, &t.uint64_val, n, |v: &u64| v.to_le_bytes().to_vec()),
        Ok(DataType::DtBool) => pack(&mut out, &t.bool_val, n, |v: &bool| vec![u8::from(*v)]),
        Ok(DataType::DtHalf | DataType::DtBfloat16) => {
            pack(&mut out, &t.half_val, n, |v: &i32| (*v as u16).to_le_bytes().to_vec())
        }
        _ => false,
    };
    if ok {
        t.float_val.clear();
        t.double_val.clear();
        t.int_val.clear();
        t.int64_val.clear();
        t.uint32_val.clear();
        t.uint64_val.clear();
        t.bool_val.clear();
        t.half_val.clear();
        t.tensor_content = out.into();
    }
    t
}

/// Packs `values`, a single value filling all `n` elements (TensorFlow's rule).
fn pack<T>(out: &mut Vec<u8>, values: &[T], n: usize, bytes: impl Fn(&T) -> Vec<u8>) -> bool {
    match values {
        [one] => (0..n).for_each(|_| out.extend(bytes(one))),
        all if all.len() == n => all.iter().for_each(|v| out.extend(bytes(v))),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::shape_proto;

    #[test]
    fn packs_typed_values_little_endian() {
        let t = TensorProto {
            dtype: DataType::DtInt16 as i32,
            tensor_shape: Some(shape_proto(&[2])),
            int_val: vec![-2, 3],
            ..Default::default()
        };
        let p = packed(t);
        assert_eq!((p.tensor_content.to_vec(), p.int_val), (vec![0xfe, 0xff, 3, 0], vec![]));
        let t = TensorProto {
            dtype: DataType::DtFloat as i32,
            tensor_shape: Some(shape_proto(&[2])),
            float_val: vec![1.0],
            ..Default::default()
        };
        assert_eq!(packed(t).tensor_content.len(), 8);
        let s = TensorProto { dtype: DataType::DtString as i32, string_val: vec![b"a".to_vec()], ..Default::default() };
        assert_eq!(packed(s.clone()), s);
    }
}
