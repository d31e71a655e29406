//! The one table from internal errors to etcd's gRPC status codes and exact texts. clientv3 (and so
//! etcdctl and Kubernetes) recognises errors by these texts (etcd `api/v3rpc/rpctypes/error.go`), and
//! retries reads only on Unavailable.

use tonic::{Code, Status};

use crate::member::ServeError;
use crate::mvcc::MvccError;

/// Map an error to the status etcd would answer.
pub fn to_status(e: ServeError) -> Status {
    match e {
        ServeError::NoLeader => Status::unavailable("etcdserver: no leader"),
        ServeError::Timeout => Status::unavailable("etcdserver: request timed out"),
        ServeError::NotLeader => Status::failed_precondition("etcdserver: not leader"),
        ServeError::Mvcc(m) => mvcc(m),
        ServeError::Internal(msg) => internal(&msg),
    }
}

/// Store errors: deterministic ones, and the value file's I/O failure.
pub fn mvcc(e: MvccError) -> Status {
    let code = match e {
        MvccError::Compacted | MvccError::FutureRevision => Code::OutOfRange,
        MvccError::LeaseNotFound => Code::NotFound,
        MvccError::LeaseExists => Code::FailedPrecondition,
        MvccError::DuplicateKey | MvccError::KeyNotFound | MvccError::Malformed(_) => {
            Code::InvalidArgument
        }
        MvccError::Storage(_) => Code::Internal,
    };
    Status::new(code, format!("etcdserver: {e}"))
}

/// Membership and forwarding failures carry etcd's own texts; pick etcd's code for each.
fn internal(msg: &str) -> Status {
    let text = format!("etcdserver: {msg}");
    let code = match msg {
        "member not found" => Code::NotFound,
        "Peer URLs already exists" | "can only promote a learner member" => {
            Code::FailedPrecondition
        }
        m if m.starts_with("re-configuration failed") => Code::FailedPrecondition,
        "unhealthy cluster" => Code::Unavailable,
        // Storage or transport trouble: Unavailable lets clients retry elsewhere.
        _ => Code::Unavailable,
    };
    Status::new(code, text)
}

/// InvalidArgument with one of etcd's request-validation texts.
pub fn invalid(text: &'static str) -> Status {
    Status::invalid_argument(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_etcds_codes_and_texts() {
        let s = to_status(ServeError::Mvcc(MvccError::Compacted));
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted"
            )
        );
        let s = to_status(ServeError::NoLeader);
        assert_eq!(
            (s.code(), s.message()),
            (Code::Unavailable, "etcdserver: no leader")
        );
        let s = to_status(ServeError::Mvcc(MvccError::LeaseNotFound));
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: requested lease not found")
        );
        let s = to_status(ServeError::Internal("member not found".into()));
        assert_eq!(
            (s.code(), s.message()),
            (Code::NotFound, "etcdserver: member not found")
        );
        let s = to_status(ServeError::Mvcc(MvccError::DuplicateKey));
        assert_eq!(
            (s.code(), s.message()),
            (
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request"
            )
        );
    }
}
