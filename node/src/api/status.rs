//! The one table from errors to etcd's gRPC status codes and exact texts. clientv3 (and so etcdctl and
//! Kubernetes) recognises errors by these texts (etcd `api/v3rpc/rpctypes/error.go`), and retries
//! reads only on Unavailable. An error etcd does not know is answered as Unknown with its text, as
//! etcd's `togRPCError` does.

use tonic::{Code, Status};

use crate::member::MemberError;
use crate::mvcc::MvccError;

/// Every error the etcd API answers with: the member's, and the request checks made before a request
/// reaches the member.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The member could not serve the request.
    #[error(transparent)]
    Member(#[from] MemberError),
    /// A request without a key.
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    /// A put with `ignore_value` that also carries a value.
    #[error("etcdserver: value is provided")]
    ValueProvided,
    /// A put with `ignore_lease` that also carries a lease.
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    /// A txn with more operations than allowed.
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    /// A txn that writes one key twice.
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    /// A request over `--max-request-bytes`.
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    /// A lease TTL over etcd's maximum.
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    /// MemberAdd without valid peer URLs.
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    /// Proclaim for a leader key that no longer leads (etcd's `concurrency.ErrElectionNotLeader`).
    #[error("election: not leader")]
    ElectionNotLeader,
    /// Leader of an election nobody campaigns in (`concurrency.ErrElectionNoLeader`).
    #[error("election: no leader")]
    ElectionNoLeader,
    /// Proclaim or Resign without a leader key (`v3election.ErrMissingLeaderKey`).
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// A lock waiter whose key went with its lease (`concurrency.ErrSessionExpired`).
    #[error("mutex: session is expired")]
    LockSessionExpired,
    /// A call cairn does not implement, with what to use instead.
    #[error("{0}")]
    Unimplemented(String),
}

impl From<MvccError> for ApiError {
    fn from(e: MvccError) -> Self {
        ApiError::Member(MemberError::Mvcc(e))
    }
}

/// etcd's code for each error.
fn code(e: &ApiError) -> Code {
    use MemberError as M;
    match e {
        ApiError::Member(m) => match m {
            M::NoLeader | M::Timeout | M::Stopped | M::Unhealthy => Code::Unavailable,
            M::NotLeader
            | M::PeerUrlExists
            | M::MemberNotLearner
            | M::LearnerNotReady
            | M::NotEnoughStartedMembers
            | M::BadLeaderTransferee => Code::FailedPrecondition,
            M::MemberNotFound => Code::NotFound,
            M::Mvcc(e) => match e {
                MvccError::Compacted | MvccError::FutureRevision => Code::OutOfRange,
                MvccError::LeaseNotFound => Code::NotFound,
                MvccError::LeaseExists => Code::FailedPrecondition,
                MvccError::DuplicateKey | MvccError::KeyNotFound | MvccError::Malformed(_) => {
                    Code::InvalidArgument
                }
                MvccError::Storage(_) => Code::Internal,
                MvccError::NoSpace => Code::ResourceExhausted,
                MvccError::Corrupt => Code::DataLoss,
            },
            M::Other(_) => Code::Unknown,
        },
        ApiError::EmptyKey
        | ApiError::ValueProvided
        | ApiError::LeaseProvided
        | ApiError::TooManyOps
        | ApiError::DuplicateKey
        | ApiError::RequestTooLarge
        | ApiError::MemberBadUrls => Code::InvalidArgument,
        ApiError::LeaseTtlTooLarge => Code::OutOfRange,
        // etcd returns these as plain Go errors, which gRPC sends as Unknown.
        ApiError::ElectionNotLeader
        | ApiError::ElectionNoLeader
        | ApiError::MissingLeaderKey
        | ApiError::LockSessionExpired => Code::Unknown,
        ApiError::Unimplemented(_) => Code::Unimplemented,
    }
}

/// The status etcd would answer for `e`.
pub fn to_status(e: impl Into<ApiError>) -> Status {
    let e = e.into();
    Status::new(code(&e), e.to_string())
}

/// An error of a call made through etcd's in-process client, as etcd's lock and election services
/// return it: clientv3 turns every error etcd knows into a plain error (`rpctypes.Error`), which gRPC
/// then sends as Unknown with the same text (e.g. Lock with a lease that does not exist answers
/// Unknown "etcdserver: requested lease not found").
pub fn through_client(s: Status) -> Status {
    Status::new(Code::Unknown, s.message())
}

#[cfg(test)]
mod tests {
    use super::*;
    use MemberError as M;

    /// Every variant, with etcd's code and text (rpctypes/error.go of etcd v3.4). A variant added
    /// without a row here fails `every_variant_has_a_row` to compile.
    fn table() -> Vec<(ApiError, Code, &'static str)> {
        use Code::*;
        let m = |e: MemberError| ApiError::Member(e);
        let v = |e: MvccError| ApiError::Member(M::Mvcc(e));
        vec![
            (m(M::NoLeader), Unavailable, "etcdserver: no leader"),
            (m(M::Timeout), Unavailable, "etcdserver: request timed out"),
            (
                m(M::NotLeader),
                FailedPrecondition,
                "etcdserver: not leader",
            ),
            (m(M::Stopped), Unavailable, "etcdserver: server stopped"),
            (
                m(M::MemberNotFound),
                NotFound,
                "etcdserver: member not found",
            ),
            (
                m(M::PeerUrlExists),
                FailedPrecondition,
                "etcdserver: Peer URLs already exists",
            ),
            (
                m(M::MemberNotLearner),
                FailedPrecondition,
                "etcdserver: can only promote a learner member",
            ),
            (
                m(M::LearnerNotReady),
                FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                m(M::Unhealthy),
                Unavailable,
                "etcdserver: unhealthy cluster",
            ),
            (
                m(M::NotEnoughStartedMembers),
                FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                m(M::BadLeaderTransferee),
                FailedPrecondition,
                "etcdserver: bad leader transferee",
            ),
            (m(M::Other("raft stopped".into())), Unknown, "raft stopped"),
            (
                v(MvccError::Compacted),
                OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                v(MvccError::FutureRevision),
                OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                v(MvccError::LeaseNotFound),
                NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                v(MvccError::LeaseExists),
                FailedPrecondition,
                "etcdserver: lease already exists",
            ),
            (
                v(MvccError::DuplicateKey),
                InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                v(MvccError::KeyNotFound),
                InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                v(MvccError::NoSpace),
                ResourceExhausted,
                "etcdserver: mvcc: database space exceeded",
            ),
            (
                v(MvccError::Corrupt),
                DataLoss,
                "etcdserver: corrupt cluster",
            ),
            // Not in etcd's table (etcd decodes before proposing): cairn's own texts.
            (
                v(MvccError::Malformed("x".into())),
                InvalidArgument,
                "etcdserver: malformed request: x",
            ),
            (
                v(MvccError::Storage("x".into())),
                Internal,
                "etcdserver: storage: x",
            ),
            (
                ApiError::EmptyKey,
                InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                ApiError::ValueProvided,
                InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                ApiError::LeaseProvided,
                InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                ApiError::TooManyOps,
                InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                ApiError::DuplicateKey,
                InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                ApiError::RequestTooLarge,
                InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                ApiError::LeaseTtlTooLarge,
                OutOfRange,
                "etcdserver: too large lease TTL",
            ),
            (
                ApiError::MemberBadUrls,
                InvalidArgument,
                "etcdserver: given member URLs are invalid",
            ),
            (ApiError::ElectionNotLeader, Unknown, "election: not leader"),
            (ApiError::ElectionNoLeader, Unknown, "election: no leader"),
            (
                ApiError::MissingLeaderKey,
                Unknown,
                "\"leader\" field must be provided",
            ),
            (
                ApiError::LockSessionExpired,
                Unknown,
                "mutex: session is expired",
            ),
            (
                ApiError::Unimplemented("cairn: x".into()),
                Unimplemented,
                "cairn: x",
            ),
        ]
    }

    #[test]
    fn every_error_carries_etcds_code_and_text() {
        for (e, want_code, want_text) in table() {
            let s = to_status(e.clone());
            assert_eq!((s.code(), s.message()), (want_code, want_text), "{e:?}");
        }
    }

    #[test]
    fn every_variant_has_a_row() {
        let listed = |e: &ApiError| table().iter().any(|(t, _, _)| t == e);
        // Exhaustive on purpose: a new variant stops compiling here until it gets a row above.
        for (e, _, _) in table() {
            let kind = match &e {
                ApiError::Member(m) => match m {
                    M::NoLeader
                    | M::Timeout
                    | M::NotLeader
                    | M::Stopped
                    | M::MemberNotFound
                    | M::PeerUrlExists
                    | M::MemberNotLearner
                    | M::LearnerNotReady
                    | M::Unhealthy
                    | M::NotEnoughStartedMembers
                    | M::BadLeaderTransferee
                    | M::Other(_) => "member",
                    M::Mvcc(
                        MvccError::Compacted
                        | MvccError::FutureRevision
                        | MvccError::LeaseNotFound
                        | MvccError::LeaseExists
                        | MvccError::DuplicateKey
                        | MvccError::KeyNotFound
                        | MvccError::Malformed(_)
                        | MvccError::NoSpace
                        | MvccError::Corrupt
                        | MvccError::Storage(_),
                    ) => "mvcc",
                },
                ApiError::EmptyKey
                | ApiError::ValueProvided
                | ApiError::LeaseProvided
                | ApiError::TooManyOps
                | ApiError::DuplicateKey
                | ApiError::RequestTooLarge
                | ApiError::LeaseTtlTooLarge
                | ApiError::MemberBadUrls
                | ApiError::Unimplemented(_) => "request",
                ApiError::ElectionNotLeader
                | ApiError::ElectionNoLeader
                | ApiError::MissingLeaderKey
                | ApiError::LockSessionExpired => "concurrency",
            };
            assert!(listed(&e), "{kind} error {e:?}");
        }
        assert_eq!(table().len(), 35, "one row per variant");
    }
}
