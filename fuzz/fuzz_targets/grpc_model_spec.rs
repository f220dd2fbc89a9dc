//! The module's reading of a gRPC request's ModelSpec from the wire: never panics, reads the
//! same however the body is cut into nginx buffers, and agrees with prost (what the daemon and
//! TF Serving decode) on every message both accept, multiple and reordered occurrences
//! included, and refuses every message prost refuses. Input: one byte choosing the method, one choosing the cuts, then the message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_tfgate_module::grpc::{read_model_spec, GrpcMethod, ModelSpec, Rope, VersionChoice};
use prost::Message;
use tfgate_proto::tensorflow::serving::model_spec::VersionChoice as ProstChoice;
use tfgate_proto::tensorflow::serving::GetModelStatusRequest;

const METHODS: [GrpcMethod; 3] = [GrpcMethod::Predict, GrpcMethod::GetModelStatus, GrpcMethod::MultiInference];

fuzz_target!(|data: &[u8]| {
    let [method, cuts, message @ ..] = data else { return };
    let method = METHODS[*method as usize % METHODS.len()];
    let whole = read(method, &[message]);
    let step = 1 + *cuts as usize % 7;
    let pieces: Vec<&[u8]> = message.chunks(step).collect();
    assert_eq!(read(method, &pieces), whole, "the cuts changed the reading");
    if method == GrpcMethod::MultiInference {
        return;
    }
    // Field 1 is the model_spec in every request but MultiInference's; GetModelStatusRequest
    // has nothing else, so prost skips the rest as unknown fields. What prost refuses, the
    // module refuses too (it refuses more: names over 1024 bytes, groups nested deeper than 32).
    let decoded = GetModelStatusRequest::decode(message);
    if let (Ok(spec), Err(e)) = (&whole, &decoded) {
        panic!("the module read {spec:?} from a message prost refuses: {e}");
    }
    if let (Ok(spec), Ok(decoded)) = (&whole, decoded) {
        let decoded = decoded.model_spec.unwrap_or_default();
        assert_eq!(spec.name, decoded.name);
        assert_eq!(spec.signature_name, decoded.signature_name);
        let version = match decoded.version_choice {
            None => None,
            Some(ProstChoice::Version(n)) => Some(VersionChoice::Number(n)),
            Some(ProstChoice::VersionLabel(l)) => Some(VersionChoice::Label(l)),
        };
        assert_eq!(spec.version, version);
    }
});

fn read(method: GrpcMethod, pieces: &[&[u8]]) -> Result<ModelSpec, String> {
    let rope = Rope::new(pieces);
    read_model_spec(method, &rope, 0, rope.len()).map_err(|e| e.0)
}
