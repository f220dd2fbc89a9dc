//! A Predict body in TF Serving's REST JSON to input tensors, against fixed signatures: one
//! float input (half_plus_two), and one input of every dtype.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tfgate_batcher::convert::signature::TensorSpec;
use tfgate_batcher::convert::{Dtype, PredictBody, SignatureSpec, Signatures};

const DTYPES: [Dtype; 14] = [
    Dtype::Float,
    Dtype::Double,
    Dtype::Half,
    Dtype::Bfloat16,
    Dtype::Int8,
    Dtype::Int16,
    Dtype::Int32,
    Dtype::Int64,
    Dtype::Uint8,
    Dtype::Uint16,
    Dtype::Uint32,
    Dtype::Uint64,
    Dtype::Bool,
    Dtype::String,
];

fn signatures() -> &'static Signatures {
    static SIGNATURES: OnceLock<Signatures> = OnceLock::new();
    SIGNATURES.get_or_init(|| {
        let spec = |dtype: Dtype, shape: Option<Vec<i64>>| TensorSpec { dtype: dtype.data_type() as i32, shape };
        let one = SignatureSpec {
            inputs: BTreeMap::from([("x".to_string(), spec(Dtype::Float, Some(vec![-1])))]),
            outputs: BTreeMap::from([("y".to_string(), spec(Dtype::Float, Some(vec![-1])))]),
        };
        let all = SignatureSpec {
            inputs: DTYPES.iter().map(|d| (d.tf_name().to_string(), spec(*d, None))).collect(),
            outputs: BTreeMap::new(),
        };
        Signatures { by_name: BTreeMap::from([("serving_default".to_string(), one), ("all".to_string(), all)]) }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = PredictBody::parse(data) else { return };
    let Ok(signature) = signatures().get(&body.signature_name) else { return };
    if let Ok(inputs) = body.into_inputs(signature) {
        for tensor in inputs.tensors.values() {
            // Shape and values always agree.
            let elements: usize = tensor.shape.iter().product();
            assert_eq!(elements, tensor.values.len());
        }
    }
});
