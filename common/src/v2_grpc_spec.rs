//! The model an Open Inference Protocol gRPC request names, read from its wire format without
//! decoding the rest (tensors and raw contents are skipped by their length).
//!
//! `inference.ModelInferRequest`, `ModelReadyRequest` and `ModelMetadataRequest` all hold the
//! model as two top-level strings: the name (`model_name` / `name` = 1) and the version
//! (`model_version` / `version` = 2, empty for the server's choice). The reader must read what
//! the daemon (prost) reads after it: the last occurrence of a scalar field wins, so the whole
//! message is read, in any field order; a known field with another wire type, or a string that
//! is not UTF-8, is an error, as for prost; unknown fields, groups included, are skipped.

use crate::rest_path::{check_name, PathError, VersionSelector};
use crate::v2_path::{parse_v2_version, V2ModelMethod, V2ModelPath};
use crate::wire::{Cursor, Rope, WireError, LEN};

/// Longest name or version read (far beyond any real one; [`check_name`] then holds them to
/// its own limit, with a clearer message).
const MAX_FIELD: usize = 1024;

/// The model fields of a v2 request message, as sent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct V2Spec {
    /// Field 1: `model_name` (ModelInfer) or `name` (ModelReady, ModelMetadata).
    pub name: String,
    /// Field 2: `model_version` or `version`; empty when unset.
    pub version: String,
}

/// Why a request's model could not be read; [`std::fmt::Display`] words it for the client
/// (`grpc-message`), and it quotes nothing from the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2SpecError {
    /// The wire format: truncated, or malformed (a bad varint, a string over the budget, ...).
    Wire(WireError),
    /// The name or the version sent with a wire type other than length-delimited.
    WrongWireType(&'static str),
    /// The name or the version is not UTF-8.
    NotUtf8(&'static str),
}

impl From<WireError> for V2SpecError {
    fn from(e: WireError) -> V2SpecError {
        V2SpecError::Wire(e)
    }
}

impl std::fmt::Display for V2SpecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            V2SpecError::Wire(WireError::Truncated) => f.write_str("the request message is truncated"),
            V2SpecError::Wire(WireError::Malformed(why)) => write!(f, "the request message is malformed: {why}"),
            V2SpecError::WrongWireType(field) => write!(f, "the {field} has the wrong wire type"),
            V2SpecError::NotUtf8(field) => write!(f, "the {field} is not UTF-8"),
        }
    }
}

impl std::error::Error for V2SpecError {}

const NAME: &str = "model name (field 1)";
const VERSION: &str = "model version (field 2)";

/// The model fields of the v2 request message at `body[offset..offset + len]`.
pub fn read_v2_spec(body: &Rope<'_>, offset: u64, len: u64) -> Result<V2Spec, V2SpecError> {
    let mut message = Cursor::new(*body, offset, offset.saturating_add(len));
    let mut spec = V2Spec::default();
    while let Some((field, wire)) = message.key()? {
        match (field, wire) {
            (1, LEN) => spec.name = text(&mut message, NAME)?,
            (2, LEN) => spec.version = text(&mut message, VERSION)?,
            (1, _) => return Err(V2SpecError::WrongWireType(NAME)),
            (2, _) => return Err(V2SpecError::WrongWireType(VERSION)),
            _ => message.skip(field, wire)?,
        }
    }
    Ok(spec)
}

fn text(message: &mut Cursor<'_>, what: &'static str) -> Result<String, V2SpecError> {
    String::from_utf8(message.bytes(MAX_FIELD)?).map_err(|_| V2SpecError::NotUtf8(what))
}

impl V2Spec {
    /// The request as a path would name it, under the same rules: a name is required and must
    /// pass [`check_name`]; the version is read by [`parse_v2_version`].
    pub fn into_model_path(self, method: V2ModelMethod) -> Result<V2ModelPath, PathError> {
        if self.name.is_empty() {
            return Err(PathError { status: 400, message: "the request has no model name".into() });
        }
        check_name(&self.name, "model name")?;
        let selector: VersionSelector = parse_v2_version(&self.version)?;
        Ok(V2ModelPath { model: self.name, selector, method })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{put_len_field, put_varint, put_varint_field};

    // Field numbers of inference.ModelInferRequest (proto/proto/inference/grpc_service.proto).
    const MODEL_NAME: u32 = 1;
    const MODEL_VERSION: u32 = 2;
    const ID: u32 = 3;
    const PARAMETERS: u32 = 4;
    const INPUTS: u32 = 5;
    const OUTPUTS: u32 = 6;
    const RAW_INPUT_CONTENTS: u32 = 7;

    fn field(number: u32, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_len_field(&mut out, number, bytes);
        out
    }

    fn read(message: &[u8]) -> Result<V2Spec, V2SpecError> {
        let parts = [message];
        read_v2_spec(&Rope::new(&parts), 0, message.len() as u64)
    }

    fn spec(name: &str, version: &str) -> V2Spec {
        V2Spec { name: name.into(), version: version.into() }
    }

    /// A ModelInferRequest as tritonclient writes one: the model first, then an id,
    /// parameters, one FP32 input [1, 4] with its raw contents, one requested output.
    fn infer_request() -> Vec<u8> {
        let mut input = field(1, b"INPUT0");
        input.extend(field(2, b"FP32"));
        let mut shape = Vec::new();
        put_varint(&mut shape, 1);
        put_varint(&mut shape, 4);
        input.extend(field(3, &shape));
        let mut parameter = field(1, b"binary_data_output");
        parameter.extend(field(2, &[0x08, 1])); // InferParameter { bool_param = 1: true }
        [
            field(MODEL_NAME, b"half_plus_two"),
            field(MODEL_VERSION, b"2"),
            field(ID, b"42"),
            field(PARAMETERS, &parameter),
            field(INPUTS, &input),
            field(OUTPUTS, &field(1, b"OUTPUT0")),
            field(RAW_INPUT_CONTENTS, &[0u8; 16]),
        ]
        .concat()
    }

    #[test]
    fn reads_an_infer_request_and_the_ready_and_metadata_requests() {
        assert_eq!(read(&infer_request()), Ok(spec("half_plus_two", "2")));
        // ModelReadyRequest / ModelMetadataRequest: { string name = 1; string version = 2; }.
        assert_eq!(read(&[field(1, b"m"), field(2, b"stable")].concat()), Ok(spec("m", "stable")));
        assert_eq!(read(&field(1, b"m")), Ok(spec("m", "")));
        assert_eq!(read(&[]), Ok(V2Spec::default()), "an empty message names nothing");
    }

    #[test]
    fn fields_in_any_order_and_the_last_occurrence_wins() {
        let tensors = [field(INPUTS, &field(1, b"x")), field(RAW_INPUT_CONTENTS, &[0xaa; 300])].concat();
        let model_last = [tensors.clone(), field(MODEL_VERSION, b"7"), field(MODEL_NAME, b"late")].concat();
        assert_eq!(read(&model_last), Ok(spec("late", "7")));
        let repeated = [
            field(MODEL_NAME, b"allowed"),
            field(MODEL_VERSION, b"stable"),
            tensors,
            field(MODEL_NAME, b"secret"),
            field(MODEL_VERSION, b"3"),
        ]
        .concat();
        assert_eq!(read(&repeated), Ok(spec("secret", "3")));
        // An empty last occurrence clears the field, as it does for prost.
        let cleared = [field(MODEL_VERSION, b"3"), field(MODEL_NAME, b"m"), field(MODEL_VERSION, b"")].concat();
        assert_eq!(read(&cleared), Ok(spec("m", "")));
    }

    #[test]
    fn unknown_fields_of_every_wire_type_are_skipped() {
        let mut message = Vec::new();
        put_varint_field(&mut message, 9, 300); // varint
        message.extend([(10 << 3) | 1, 1, 2, 3, 4, 5, 6, 7, 8]); // fixed64
        message.extend(field(11, &[0x0a; 40])); // length-delimited
        message.extend([(12 << 3) | 3, (13 << 3), 1, (14 << 3) | 2, 1, 0x0a, (12 << 3) | 4]); // group
        message.extend([(15 << 3) | 5, 1, 2, 3, 4]); // fixed32
        message.extend(field(MODEL_NAME, b"m"));
        put_varint(&mut message, u64::from((1u32 << 29) - 1) << 3); // the largest field number
        message.push(0);
        message.extend(field(MODEL_VERSION, b"v"));
        assert_eq!(read(&message), Ok(spec("m", "v")));
        // A group that holds what looks like a name is skipped whole.
        let group = [vec![(15 << 3) | 3], field(MODEL_NAME, b"inside"), vec![(15 << 3) | 4]].concat();
        assert_eq!(read(&[field(MODEL_NAME, b"outside"), group].concat()), Ok(spec("outside", "")));
    }

    #[test]
    fn split_across_buffers_anywhere_it_reads_the_same() {
        let message = infer_request();
        for split in 0..=message.len() {
            let parts: [&[u8]; 3] = [&message[..split], &[], &message[split..]];
            let rope = Rope::new(&parts);
            assert_eq!(read_v2_spec(&rope, 0, rope.len()), Ok(spec("half_plus_two", "2")), "split at {split}");
        }
        // And at an offset into the body (behind a gRPC frame's 5-byte prefix).
        let next = [0x1a, 0x40, b'x']; // what follows: a field cut short if read as this message's
        let framed = [&[0, 0, 0, 0, message.len() as u8][..], &message, &next].concat();
        let parts = [&framed[..]];
        assert_eq!(read_v2_spec(&Rope::new(&parts), 5, message.len() as u64), Ok(spec("half_plus_two", "2")));
        assert_eq!(read_v2_spec(&Rope::new(&parts), 5, u64::MAX), Err(V2SpecError::Wire(WireError::Truncated)));
    }

    #[test]
    fn truncated_at_every_byte_is_an_error_unless_cut_between_fields() {
        let fields = [field(MODEL_NAME, b"m"), field(ID, b"abc"), field(MODEL_VERSION, b"12")];
        let message = fields.concat();
        let mut boundaries = vec![0];
        for f in &fields {
            boundaries.push(boundaries.last().copied().unwrap_or(0) + f.len());
        }
        for cut in 0..message.len() {
            let got = read(&message[..cut]);
            match boundaries.iter().position(|&b| b == cut) {
                Some(0) => assert_eq!(got, Ok(V2Spec::default())),
                Some(1 | 2) => assert_eq!(got, Ok(spec("m", "")), "cut at {cut}"),
                Some(_) => unreachable!(),
                None => {
                    assert_eq!(got, Err(V2SpecError::Wire(WireError::Truncated)), "cut at {cut}");
                    assert_eq!(got.unwrap_err().to_string(), "the request message is truncated");
                }
            }
        }
        assert_eq!(read(&message), Ok(spec("m", "12")));
        // Cut inside a skipped tensor or a group.
        let infer = infer_request();
        for cut in [infer.len() - 1, infer.len() - 16] {
            assert_eq!(read(&infer[..cut]), Err(V2SpecError::Wire(WireError::Truncated)), "cut at {cut}");
        }
        let open_group = [field(MODEL_NAME, b"m"), vec![(9 << 3) | 3, 0x48, 1]].concat();
        assert_eq!(read(&open_group), Err(V2SpecError::Wire(WireError::Truncated)));
    }

    #[test]
    fn oversized_lengths_are_refused_without_allocating_them() {
        // A name or version over the budget: refused by its length, before any byte is read.
        let mut claim = vec![(1 << 3) | 2];
        put_varint(&mut claim, (MAX_FIELD + 1) as u64);
        let long = [claim, vec![b'a'; MAX_FIELD + 1]].concat();
        assert_eq!(
            read(&long),
            Err(V2SpecError::Wire(WireError::Malformed("a string field too long for a model name")))
        );
        assert_eq!(read(&field(MODEL_VERSION, &[b'7'; MAX_FIELD + 1])).map(drop), read(&long).map(drop));
        assert_eq!(read(&field(MODEL_NAME, &[b'a'; MAX_FIELD])).map(|s| s.name.len()), Ok(MAX_FIELD));
        // Lengths past the message's end, up to the largest varint: truncated, never allocated.
        for claimed in [2u64, 1 << 20, 1 << 40, u64::MAX] {
            for number in [MODEL_NAME, MODEL_VERSION, RAW_INPUT_CONTENTS] {
                let mut message = Vec::new();
                put_varint(&mut message, (u64::from(number) << 3) | 2);
                put_varint(&mut message, claimed);
                message.push(b'x');
                assert_eq!(read(&message), Err(V2SpecError::Wire(WireError::Truncated)), "{number} {claimed}");
            }
        }
    }

    #[test]
    fn wrong_wire_types_bad_utf8_and_malformed_input_are_errors() {
        assert_eq!(read(&[0x08, 1]), Err(V2SpecError::WrongWireType(NAME)), "name as a varint");
        assert_eq!(read(&[0x15, 1, 2, 3, 4]), Err(V2SpecError::WrongWireType(VERSION)), "version as fixed32");
        assert_eq!(read(&[0x0b, 0x0c]), Err(V2SpecError::WrongWireType(NAME)), "name as a group");
        assert_eq!(read(&field(MODEL_NAME, &[0xff, 0xfe])), Err(V2SpecError::NotUtf8(NAME)));
        assert_eq!(read(&field(MODEL_VERSION, &[b'1', 0xc3])), Err(V2SpecError::NotUtf8(VERSION)));
        let cases: [&[u8]; 5] = [
            &[0x00, 1],                                                          // field 0
            &[0x4f],                                                             // wire type 7
            &[0x4c],                                                             // a group end alone
            &[0x4b, 0x54],                                                       // a group closed by another number
            &[0x48, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02], // a varint beyond 64 bits
        ];
        for case in cases {
            let e = read(case).unwrap_err();
            assert!(matches!(e, V2SpecError::Wire(WireError::Malformed(_))), "{case:?}: {e:?}");
            assert!(e.to_string().starts_with("the request message is malformed: "), "{e}");
        }
        assert_eq!(V2SpecError::WrongWireType(NAME).to_string(), "the model name (field 1) has the wrong wire type");
        assert_eq!(V2SpecError::NotUtf8(VERSION).to_string(), "the model version (field 2) is not UTF-8");
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let seed_message = infer_request();
        let mut random = crate::v2_path::tests::xorshift(0xD1B54A32D192ED03);
        for _ in 0..20_000 {
            let r = random.next().unwrap_or(0);
            let mut message = seed_message[..(r % seed_message.len() as u64) as usize].to_vec();
            for (at, value) in random.by_ref().take(3).map(|r| (r as usize, (r >> 32) as u8)) {
                let len = message.len().max(1);
                if let Some(b) = message.get_mut(at % len) {
                    *b = value;
                }
            }
            if let Ok(found) = read(&message) {
                assert!(found.name.len() <= MAX_FIELD && found.version.len() <= MAX_FIELD);
            }
        }
    }

    #[test]
    fn into_model_path_applies_the_rest_grammar() {
        let path = |name: &str, version: &str| spec(name, version).into_model_path(V2ModelMethod::Infer);
        let expected = |selector| Ok(V2ModelPath { model: "m".into(), selector, method: V2ModelMethod::Infer });
        assert_eq!(path("m", ""), expected(VersionSelector::Unspecified));
        assert_eq!(path("m", "3"), expected(VersionSelector::Number(3)));
        assert_eq!(path("m", "stable"), expected(VersionSelector::Label("stable".into())));
        assert_eq!(path("", "1").unwrap_err().message, "the request has no model name");
        for (name, version) in [
            ("a/b", ""),
            ("..", ""),
            ("m#x", ""),
            ("m\n", ""),
            (&"a".repeat(300), ""),
            ("m", "a/b"),
            ("m", ".."),
            ("m", "a?b"),
            ("m", "99999999999999999999"),
            ("m", &"b".repeat(300)),
        ] {
            let e = path(name, version).unwrap_err();
            assert_eq!(e.status, 400, "{name:?} {version:?}");
            assert!(e.message.len() < 120, "{}", e.message);
        }
        let ready = spec("m", "").into_model_path(V2ModelMethod::Ready).unwrap();
        assert_eq!(ready.to_path(), "/v2/models/m/ready");
    }
}
