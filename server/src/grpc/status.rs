//! Engine errors and request-shape problems as gRPC statuses: the one place that decides codes.

use retl_engine::{Error, ErrorCategory};
use tonic::{Code, Status};

/// The gRPC code of an engine error category.
///
/// `ExternalAuth` is `FAILED_PRECONDITION`, not `UNAUTHENTICATED`: the caller's own token was
/// accepted; it is the warehouse or destination that refused the credentials stored in retl.
pub fn code(category: ErrorCategory) -> Code {
    match category {
        ErrorCategory::InvalidArgument => Code::InvalidArgument,
        ErrorCategory::NotFound => Code::NotFound,
        ErrorCategory::AlreadyExists => Code::AlreadyExists,
        ErrorCategory::FailedPrecondition => Code::FailedPrecondition,
        ErrorCategory::ExternalAuth => Code::FailedPrecondition,
        ErrorCategory::PermissionDenied => Code::PermissionDenied,
        ErrorCategory::Unavailable => Code::Unavailable,
        ErrorCategory::DeadlineExceeded => Code::DeadlineExceeded,
        ErrorCategory::Cancelled => Code::Cancelled,
        ErrorCategory::Unimplemented => Code::Unimplemented,
        ErrorCategory::Internal => Code::Internal,
    }
}

/// An engine error as a gRPC status; the message is the error's `Display`.
pub fn status(err: Error) -> Status {
    let category = err.category();
    if category == ErrorCategory::Internal {
        tracing::error!(error = %err, "internal error");
    }
    Status::new(code(category), err.to_string())
}

/// A request-shape problem found by the server (missing field, bad oneof): `INVALID_ARGUMENT`
/// naming the field, e.g. `invalid_argument("model.sql", "is required")`.
pub fn invalid_argument(field: &str, message: &str) -> Status {
    Status::invalid_argument(format!("{field} {message}"))
}

/// A required field that is missing or empty.
pub fn required(field: &str) -> Status {
    invalid_argument(field, "is required")
}

/// A declared RPC or field that is not built yet.
pub fn unimplemented(what: &str) -> Status {
    Status::unimplemented(format!(
        "{what} is not implemented yet in this version of retl"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_map_to_codes() {
        let cases = [
            (Error::invalid("model.sql", "bad"), Code::InvalidArgument),
            (Error::not_found("source", "x"), Code::NotFound),
            (
                Error::AlreadyExists {
                    kind: "source",
                    id: "x".into(),
                },
                Code::AlreadyExists,
            ),
            (Error::precondition("disabled"), Code::FailedPrecondition),
            (
                Error::Source(retl_engine::source::SourceError::Authentication {
                    message: "bad password".into(),
                }),
                Code::FailedPrecondition,
            ),
            (
                Error::Source(retl_engine::source::SourceError::PermissionDenied {
                    message: "no grant".into(),
                }),
                Code::PermissionDenied,
            ),
            (
                Error::Source(retl_engine::source::SourceError::Unavailable {
                    message: "down".into(),
                }),
                Code::Unavailable,
            ),
            // A read that fails again on retry (a corrupt file, a broken row): not UNAVAILABLE,
            // which clients retry.
            (
                Error::Source(retl_engine::source::SourceError::Read {
                    message: "broken.parquet is not a Parquet file".into(),
                }),
                Code::FailedPrecondition,
            ),
            (
                Error::Cancelled {
                    reason: "user".into(),
                },
                Code::Cancelled,
            ),
            (
                Error::Unimplemented {
                    what: "schedules".into(),
                },
                Code::Unimplemented,
            ),
            (Error::internal("oops"), Code::Internal),
        ];
        for (err, want) in cases {
            let msg = err.to_string();
            let st = status(err);
            assert_eq!(st.code(), want, "{msg}");
            assert_eq!(st.message(), msg);
        }
    }
}
