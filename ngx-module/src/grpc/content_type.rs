//! Which requests are gRPC calls. A gRPC client always sends `content-type: application/grpc`,
//! optionally with the message codec after a `+` (`application/grpc+proto`,
//! `application/grpc+json`), over HTTP/2, and reads every answer as a gRPC status. The path
//! cannot say it (any path may be called), nor can HTTP/2 alone (REST runs over it too).

/// What a request's content type says about its messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Not a gRPC call (`application/grpc-web`, which needs a translating proxy, included).
    NotGrpc,
    /// `application/grpc`, `application/grpc+proto`: protobuf messages, which tfgate reads.
    Protobuf,
    /// A gRPC call with another codec (`application/grpc+json`...): messages tfgate cannot read.
    OtherCodec,
}

const GRPC: &[u8] = b"application/grpc";

/// What a request is: a gRPC call needs HTTP/2 (or later: its status travels in trailers, and
/// an HTTP/1 client could not read a trailers-only answer).
pub fn request_framing(content_type: Option<&[u8]>, http2: bool) -> Framing {
    if http2 {
        grpc_framing(content_type)
    } else {
        Framing::NotGrpc
    }
}

/// Reads a `content-type` value (media types are case-insensitive; parameters after `;` are
/// ignored, as gRPC servers do).
pub fn grpc_framing(content_type: Option<&[u8]>) -> Framing {
    let Some(value) = content_type else {
        return Framing::NotGrpc;
    };
    let value = value.trim_ascii();
    let Some(rest) = value.get(GRPC.len()..).filter(|_| value[..GRPC.len()].eq_ignore_ascii_case(GRPC)) else {
        return Framing::NotGrpc;
    };
    let codec = match rest.first() {
        None | Some(b';') => return Framing::Protobuf,
        Some(b'+') => rest[1..].split(|&b| b == b';').next().unwrap_or_default().trim_ascii(),
        Some(_) => return Framing::NotGrpc,
    };
    // An empty codec is gRPC's default, protobuf (as gRPC's own servers read it).
    if codec.is_empty() || codec.eq_ignore_ascii_case(b"proto") {
        Framing::Protobuf
    } else {
        Framing::OtherCodec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_content_types() {
        for protobuf in [
            &b"application/grpc"[..],
            b"application/grpc+proto",
            b"Application/GRPC+Proto",
            b" application/grpc ",
            b"application/grpc; charset=utf-8",
            b"application/grpc+proto;x=y",
            b"application/grpc+",
        ] {
            assert_eq!(grpc_framing(Some(protobuf)), Framing::Protobuf, "{:?}", String::from_utf8_lossy(protobuf));
        }
        for other in [&b"application/grpc+json"[..], b"application/grpc+thrift; x=1"] {
            assert_eq!(grpc_framing(Some(other)), Framing::OtherCodec, "{:?}", String::from_utf8_lossy(other));
        }
        for not in [
            &b"application/json"[..],
            b"application/grpc-web",
            b"application/grpc-web+proto",
            b"application/grpcx",
            b"application/grp",
            b"",
            b"\xff\xfe",
        ] {
            assert_eq!(grpc_framing(Some(not)), Framing::NotGrpc, "{:?}", String::from_utf8_lossy(not));
        }
        assert_eq!(grpc_framing(None), Framing::NotGrpc);
        assert_eq!(request_framing(Some(b"application/grpc"), true), Framing::Protobuf);
        assert_eq!(request_framing(Some(b"application/grpc"), false), Framing::NotGrpc, "HTTP/1");
    }
}
