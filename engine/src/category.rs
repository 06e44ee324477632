//! [`ErrorCategory`]: what kind of fault an error is. A leaf module: every error type of the
//! engine and of the connectors reports one, and the server maps it to a gRPC code in one place.

/// What kind of fault an error is; decides the gRPC status code and whether a retry may help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// The caller sent something invalid; fix the input (`INVALID_ARGUMENT`).
    InvalidArgument,
    /// The named object does not exist (`NOT_FOUND`).
    NotFound,
    /// An object with that id exists already (`ALREADY_EXISTS`).
    AlreadyExists,
    /// The system is not in a state where the call can run, e.g. a disabled mapping
    /// (`FAILED_PRECONDITION`).
    FailedPrecondition,
    /// A warehouse or destination refused the credentials (`UNAUTHENTICATED` on the external
    /// system; surfaced as `FAILED_PRECONDITION` by the API because the caller's own token is fine).
    ExternalAuth,
    /// Access to an external object was denied (`PERMISSION_DENIED`).
    PermissionDenied,
    /// An external system is unreachable or failing; a retry later may help (`UNAVAILABLE`).
    Unavailable,
    /// The operation ran past its time limit (`DEADLINE_EXCEEDED`).
    DeadlineExceeded,
    /// The operation was cancelled (`CANCELLED`).
    Cancelled,
    /// The feature is declared but not built yet (`UNIMPLEMENTED`).
    Unimplemented,
    /// A bug or local I/O failure in retl (`INTERNAL`).
    Internal,
}
