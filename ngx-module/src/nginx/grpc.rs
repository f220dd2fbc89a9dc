//! Stage 1 of a gRPC call: its model is in the request message, so the body is read first,
//! without blocking the worker. The access handler starts the read and returns `NGX_DONE`;
//! when the body is in, [`body_read`] looks the model up in it (a TF Serving request's
//! `ModelSpec`, a v2 request's name and version; straight from nginx's buffers), keeps the
//! outcome in the request context and runs the phases again, which calls the access handler
//! once more, now with the model known. The body is preserved for `grpc_pass`. This is the
//! pattern of nginx's own mirror module.

use ngx::core::Status;
use ngx::ffi::{
    ngx_buf_t, ngx_chain_t, ngx_http_core_run_phases, ngx_http_finalize_request, ngx_http_read_client_request_body,
    ngx_http_request_t, ngx_read_file, NGX_DONE, NGX_HTTP_SPECIAL_RESPONSE,
};
use ngx::http::{HttpModuleLocationConf, HttpModuleServerConf, Request};

use super::ctx::{self, GrpcBody};
use super::TfgateModule;
use crate::access::{parse_grpc_message, Refusal};
use crate::grpc::{check_body_len, read_frame, FrameError, GrpcCall, Rope};
use crate::route::Target;

/// What stage 1 found out so far.
pub(super) enum Stage {
    /// The body is being read; the handler returns this status.
    Reading(Status),
    Refused(Refusal),
    Ready(Target),
}

/// Stage 1 for a gRPC call of `call`.
pub(super) fn stage_one(request: &mut Request, call: GrpcCall) -> Stage {
    let Some(ctx) = ctx::get_or_create(request) else {
        return Stage::Refused(Refusal::status(500, "out of memory"));
    };
    match &ctx.grpc {
        GrpcBody::Read(Ok(target)) => return Stage::Ready(target.clone()),
        GrpcBody::Read(Err(refusal)) => return Stage::Refused(refusal.clone()),
        GrpcBody::Reading(_) => return Stage::Reading(Status::NGX_DONE),
        GrpcBody::NotRead => ctx.grpc = GrpcBody::Reading(call),
    }
    let r: *mut ngx_http_request_t = request.into();
    // SAFETY: `r` is the live main request in its access phase.
    let rc = unsafe { ngx_http_read_client_request_body(r, Some(body_read)) };
    if rc >= NGX_HTTP_SPECIAL_RESPONSE as isize {
        return Stage::Reading(Status(rc));
    }
    // Reading took a reference on the request; the phase engine stops here until `body_read`.
    // SAFETY: as above.
    unsafe { ngx_http_finalize_request(r, NGX_DONE as isize) };
    Stage::Reading(Status::NGX_DONE)
}

/// The body is in (possibly at once, from inside `ngx_http_read_client_request_body`).
unsafe extern "C" fn body_read(r: *mut ngx_http_request_t) {
    // SAFETY: nginx calls this with the live request whose body it read.
    let request = unsafe { Request::from_ngx_http_request(r) };
    let call = match ctx::get(request).map(|ctx| &ctx.grpc) {
        Some(GrpcBody::Reading(call)) => Some(*call),
        _ => None,
    };
    let outcome = match call {
        Some(call) => read_model(request, call),
        None => Err(Refusal::status(500, "a request body read without its gRPC method")),
    };
    if let Some(ctx) = ctx::get_or_create(request) {
        ctx.grpc = GrpcBody::Read(outcome);
    }
    // SAFETY: as above; these are the steps nginx's mirror module takes to resume the phases
    // with the body kept for the upstream.
    unsafe {
        (*r).set_preserve_body(1);
        (*r).write_event_handler = Some(ngx_http_core_run_phases);
        ngx_http_core_run_phases(r);
    }
}

/// The model the request message names, checked against the catalog.
fn read_model(request: &mut Request, call: GrpcCall) -> Result<Target, Refusal> {
    let (Some(location), Some(server)) = (TfgateModule::location_conf(request), TfgateModule::server_conf(request))
    else {
        return Err(Refusal::status(500, "no configuration"));
    };
    let limit = location.grpc_max_message_size;
    let r: *mut ngx_http_request_t = request.into();
    // Before any of it is read back from a temporary file.
    // SAFETY: the request body nginx just read, alive as long as the request.
    check_body_len(unsafe { body_len(r) }, limit).map_err(frame_refusal)?;
    // SAFETY: as above.
    let pieces = unsafe { body_pieces(r) }.map_err(|why| Refusal::status(500, why))?;
    let slices: Vec<&[u8]> = pieces.iter().map(Piece::bytes).collect();
    let body = Rope::new(&slices);
    let frame = read_frame(&body, limit).map_err(frame_refusal)?;
    parse_grpc_message(&server.catalog, call, &body, frame.offset, frame.len)
}

fn frame_refusal(e: FrameError) -> Refusal {
    match e {
        FrameError::Truncated => Refusal::status(400, "the request has no complete gRPC message"),
        FrameError::Compressed => {
            Refusal::status(501, "compressed requests (grpc-encoding) are not supported; send them uncompressed")
        }
        FrameError::TooLarge { len, limit } => Refusal::status(
            413,
            format!("request message of {len} bytes, more than tfgate_grpc_max_message_size ({limit})"),
        ),
        FrameError::BodyTooLarge { len, limit } => Refusal::status(
            413,
            format!("request body of {len} bytes, more than one message of tfgate_grpc_max_message_size ({limit})"),
        ),
        FrameError::Trailing { extra } => Refusal::status(
            400,
            format!("a unary call carries one message; the request has {extra} more bytes after it"),
        ),
    }
}

/// One buffer of the body: in memory (nginx's), or read from the temporary file nginx wrote a
/// large body to (`client_body_buffer_size` smaller than the body).
enum Piece<'a> {
    Memory(&'a [u8]),
    File(Vec<u8>),
}

impl Piece<'_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Piece::Memory(bytes) => bytes,
            Piece::File(bytes) => bytes,
        }
    }
}

/// The body's length, in memory and in its temporary file, without reading it.
///
/// # Safety
/// `r` must be a live request whose body has been read.
unsafe fn body_len(r: *mut ngx_http_request_t) -> u64 {
    let mut len = 0u64;
    // SAFETY: the caller's contract; a request without a body has no `request_body`.
    let Some(body) = (unsafe { (*r).request_body.as_ref() }) else {
        return 0;
    };
    let mut link: *mut ngx_chain_t = body.bufs;
    // SAFETY: `bufs` is a null-terminated chain of buffers allocated from the request pool.
    while let Some(chain) = unsafe { link.as_ref() } {
        // SAFETY: as above; every link holds a buffer.
        if let Some(buf) = unsafe { chain.buf.as_ref() } {
            len = len.saturating_add(buffer_len(buf));
        }
        link = chain.next;
    }
    len
}

/// The bytes a body buffer holds, as [`piece`] reads them.
fn buffer_len(buf: &ngx_buf_t) -> u64 {
    if in_memory(buf) {
        (buf.last as usize).saturating_sub(buf.pos as usize) as u64
    } else {
        u64::try_from(buf.file_last.saturating_sub(buf.file_pos)).unwrap_or(0)
    }
}

fn in_memory(buf: &ngx_buf_t) -> bool {
    buf.in_file() == 0 || buf.temporary() != 0 || buf.memory() != 0 || buf.mmap() != 0
}

/// # Safety
/// `r` must be a live request whose body has been read.
unsafe fn body_pieces<'a>(r: *mut ngx_http_request_t) -> Result<Vec<Piece<'a>>, &'static str> {
    let mut pieces = Vec::new();
    // SAFETY: the caller's contract; a request without a body has no `request_body`.
    let Some(body) = (unsafe { (*r).request_body.as_ref() }) else {
        return Ok(pieces);
    };
    let mut link: *mut ngx_chain_t = body.bufs;
    // SAFETY: `bufs` is a null-terminated chain of buffers allocated from the request pool.
    while let Some(chain) = unsafe { link.as_ref() } {
        // SAFETY: as above; every link holds a buffer.
        if let Some(buf) = unsafe { chain.buf.as_ref() } {
            // SAFETY: as above.
            pieces.push(unsafe { piece(buf) }?);
        }
        link = chain.next;
    }
    Ok(pieces)
}

/// # Safety
/// `buf` must be a buffer of a live request body.
unsafe fn piece<'a>(buf: &ngx_buf_t) -> Result<Piece<'a>, &'static str> {
    if in_memory(buf) {
        let len = (buf.last as usize).saturating_sub(buf.pos as usize);
        if len == 0 {
            return Ok(Piece::Memory(&[]));
        }
        // SAFETY: an in-memory buffer holds `last - pos` bytes at `pos`, for the request's life.
        return Ok(Piece::Memory(unsafe { std::slice::from_raw_parts(buf.pos, len) }));
    }
    let len = usize::try_from(buf.file_last - buf.file_pos).map_err(|_| "a body buffer with a negative length")?;
    let mut bytes = vec![0u8; len];
    let mut done = 0;
    while done < len {
        // SAFETY: the temporary file nginx wrote this body to, open for the request's life; the
        // destination has room for `len - done` more bytes.
        let n =
            unsafe { ngx_read_file(buf.file, bytes.as_mut_ptr().add(done), len - done, buf.file_pos + done as i64) };
        if n <= 0 {
            return Err("cannot read the request body back from its temporary file");
        }
        done += n as usize;
    }
    Ok(Piece::File(bytes))
}
