//! etcd's answer to a request over the gRPC receive limit (`--max-request-bytes` plus 512 KiB):
//! grpc-go's ResourceExhausted "grpc: received message larger than max (N vs. M)". tonic refuses such a
//! message with OutOfRange and a text of its own; this turns one into the other, for unary calls (a
//! middleware on the gRPC routes, where tonic answers with headers only) and for streams (their
//! handlers pass the inbound error through [`grpc_status`]).

use axum::response::Response;
use tonic::{Code, Status};

/// The status etcd (grpc-go) gives for `status` when it is tonic's "message too large"; else `status`.
pub fn grpc_status(status: Status) -> Status {
    match sizes(&status) {
        Some((len, limit)) => Status::resource_exhausted(format!(
            "grpc: received message larger than max ({len} vs. {limit})"
        )),
        None => status,
    }
}

/// The message length and the limit of tonic's decode refusal ("Error, decoded message length too
/// large: found N bytes, the limit is: M bytes").
fn sizes(status: &Status) -> Option<(u64, u64)> {
    if status.code() != Code::OutOfRange {
        return None;
    }
    let rest = status
        .message()
        .strip_prefix("Error, decoded message length too large: found ")?;
    let (len, rest) = rest.split_once(" bytes, the limit is: ")?;
    let limit = rest.strip_suffix(" bytes")?;
    Some((len.parse().ok()?, limit.parse().ok()?))
}

/// Middleware for the gRPC routes: rewrites a headers-only refusal of an oversized request.
pub async fn rewrite(mut res: Response) -> Response {
    let Some(status) = Status::from_header_map(res.headers()) else {
        return res;
    };
    if sizes(&status).is_some() {
        // The new status is ASCII, so it always fits the headers.
        let _ = grpc_status(status).add_header(res.headers_mut());
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tonics_refusal_reads_as_grpc_gos_and_other_statuses_pass() {
        let tonic = Status::out_of_range(
            "Error, decoded message length too large: found 700007 bytes, the limit is: 589824 bytes",
        );
        let s = grpc_status(tonic);
        assert_eq!(s.code(), Code::ResourceExhausted);
        assert_eq!(
            s.message(),
            "grpc: received message larger than max (700007 vs. 589824)"
        );
        let other = grpc_status(Status::out_of_range(
            "etcdserver: mvcc: required revision is a future revision",
        ));
        assert_eq!(other.code(), Code::OutOfRange);
    }
}
