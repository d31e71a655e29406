//! JSON as grpc-gateway v1's default marshaler (jsonpb, `OrigName: true`) reads and writes it for etcd:
//! proto field names out, proto or lowerCamel names in, bytes as base64, 64-bit integers as strings, zero
//! values omitted, enums by name, unknown input fields ignored; and its error bodies and status mapping.

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use prost_reflect::{DeserializeOptions, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde::Serialize;
use tonic::Code;

/// jsonpb's output rules (`OrigName: true`, `EmitDefaults: false`, `EnumsAsInts: false`).
const OUT: SerializeOptions = SerializeOptions::new()
    .stringify_64_bit_integers(true)
    .use_enum_numbers(false)
    .use_proto_field_name(true)
    .skip_default_fields(true);

/// etcd 3.4's gateway accepts (and drops) fields its messages do not have.
const IN: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(false);

/// A JSON object of the request body as the protobuf message `desc`, encoded.
pub fn to_proto(desc: &MessageDescriptor, value: serde_json::Value) -> Result<Bytes, String> {
    let msg = DynamicMessage::deserialize_with_options(desc.clone(), value, &IN)
        .map_err(|e| e.to_string())?;
    Ok(msg.encode_to_vec().into())
}

/// A protobuf message `desc` as its JSON.
pub fn to_json(desc: &MessageDescriptor, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let msg = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    msg.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &OUT)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// Splits a request body into its JSON values as they arrive (grpc-gateway decodes a stream body with
/// one `json.Decoder`: values back to back, any whitespace between).
#[derive(Default)]
pub struct Splitter {
    buf: BytesMut,
}

impl Splitter {
    /// Add bytes received.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete value, None when more bytes are needed, or the parse error.
    pub fn next_value(&mut self) -> Result<Option<serde_json::Value>, String> {
        let mut values = serde_json::Deserializer::from_slice(&self.buf).into_iter();
        match values.next() {
            None => Ok(None),
            Some(Ok(v)) => {
                let used = values.byte_offset();
                self.buf.advance(used);
                Ok(Some(v))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(e.to_string()),
        }
    }

    /// Whether only whitespace is left (at the end of the body: a clean end of the stream).
    pub fn is_blank(&self) -> bool {
        self.buf.iter().all(u8::is_ascii_whitespace)
    }
}

/// grpc-gateway v1's `HTTPStatusFromCode`.
pub fn http_status(code: Code) -> u16 {
    match code {
        Code::Ok => 200,
        Code::Cancelled => 408,
        Code::Unknown => 500,
        Code::InvalidArgument => 400,
        Code::DeadlineExceeded => 504,
        Code::NotFound => 404,
        Code::AlreadyExists => 409,
        Code::PermissionDenied => 403,
        Code::Unauthenticated => 401,
        Code::ResourceExhausted => 429,
        // grpc-gateway 1.9.5 (etcd 3.4.23's go.mod) deliberately answers 400 here, not 412.
        Code::FailedPrecondition => 400,
        Code::Aborted => 409,
        Code::OutOfRange => 400,
        Code::Unimplemented => 501,
        Code::Internal => 500,
        Code::Unavailable => 503,
        Code::DataLoss => 500,
    }
}

/// grpc-gateway v1's error body of a unary call (field order as it writes them).
#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
    code: i32,
}

/// The body of a failed unary call: `{"error": ..., "message": ..., "code": N}`.
pub fn error_body(code: Code, message: &str) -> Vec<u8> {
    let body = ErrorBody {
        error: message,
        message,
        code: code as i32,
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

/// grpc-gateway v1's `StreamError`, sent as `{"error": {...}}` when a stream fails.
#[derive(Serialize)]
struct StreamError<'a> {
    grpc_code: i32,
    http_code: u16,
    message: &'a str,
    http_status: &'a str,
}

/// `{"error": StreamError}`.
#[derive(Serialize)]
struct ErrorChunk<'a> {
    error: StreamError<'a>,
}

/// The chunk that ends a failed stream.
pub fn stream_error_chunk(code: Code, message: &str) -> Vec<u8> {
    let http = http_status(code);
    let reason = axum::http::StatusCode::from_u16(http)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let chunk = ErrorChunk {
        error: StreamError {
            grpc_code: code as i32,
            http_code: http,
            message,
            http_status: reason,
        },
    };
    serde_json::to_vec(&chunk).unwrap_or_default()
}

/// One message of a stream: `{"result": <message>}` and the newline delimiter.
pub fn stream_result_chunk(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 12);
    out.extend_from_slice(b"{\"result\":");
    out.extend_from_slice(json);
    out.extend_from_slice(b"}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::gateway::routes::Routes;

    fn range() -> (MessageDescriptor, MessageDescriptor) {
        let routes = Routes::new().expect("routes");
        let rpc = routes.get("kv/range").expect("kv/range").clone();
        (rpc.input, rpc.output)
    }

    #[test]
    fn input_takes_proto_and_camel_names_and_ignores_unknown_fields() {
        let (input, _) = range();
        let a = to_proto(
            &input,
            serde_json::json!({"key": "Zm9v", "range_end": "Zm9w", "limit": "2", "bogus": 1}),
        )
        .expect("proto names");
        let b = to_proto(
            &input,
            serde_json::json!({"key": "Zm9v", "rangeEnd": "Zm9w", "limit": 2}),
        )
        .expect("camel names");
        assert_eq!(a, b);
        assert!(to_proto(&input, serde_json::json!({"key": "@@"})).is_err());
    }

    #[test]
    fn output_uses_proto_names_strings_for_64_bit_and_omits_zero_values() {
        let (_, output) = range();
        let resp = etcd_client::proto::PbRangeResponse {
            header: Some(etcd_client::proto::PbResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![etcd_client::proto::PbKeyValue {
                key: b"foo".to_vec(),
                value: b"bar".to_vec(),
                create_revision: 3,
                mod_revision: 3,
                version: 1,
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json = to_json(&output, &resp.encode_to_vec()).expect("json");
        assert_eq!(
            String::from_utf8_lossy(&json),
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"kvs":[{"key":"Zm9v","create_revision":"3","mod_revision":"3","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn splitter_yields_values_as_they_complete() {
        let mut s = Splitter::default();
        s.push(b"{\"ID\":\"1\"} {\"ID\"");
        assert_eq!(s.next_value(), Ok(Some(serde_json::json!({"ID": "1"}))));
        assert_eq!(s.next_value(), Ok(None));
        s.push(br#":2}"#);
        assert_eq!(s.next_value(), Ok(Some(serde_json::json!({"ID": 2}))));
        assert!(s.is_blank());
        s.push(b"nope");
        assert!(s.next_value().is_err());
    }

    #[test]
    fn errors_read_like_grpc_gateway_v1() {
        assert_eq!(
            String::from_utf8_lossy(&error_body(Code::InvalidArgument, "bad")),
            r#"{"error":"bad","message":"bad","code":3}"#
        );
        assert_eq!(http_status(Code::Unimplemented), 501);
        assert_eq!(
            String::from_utf8_lossy(&stream_error_chunk(Code::NotFound, "gone")),
            r#"{"error":{"grpc_code":5,"http_code":404,"message":"gone","http_status":"Not Found"}}"#
        );
    }
}
