//! What the destinations whose API writes one record per request share: the one-record
//! batch, the URL of a record's endpoint, and the outcome of a record's write.
//!
//! Such an API has no batch endpoint, so its type's batch size is 1 and `Action::send`
//! delivers one record (with the look-ups it needs); a larger batch (a user's
//! `limits.batch_size` override) is handed back as too large, which makes the engine split it
//! without a request.

use reqwest::Url;
use retl_engine::destination::{DestinationError, Payload, RecordOutcome};

use crate::destinations::http::{self, Answer};

/// The one record of `batch` (`None` for an empty batch).
///
/// # Errors
/// [`DestinationError::PayloadTooLarge`] for more than one record, naming `api`.
pub(crate) fn single<'a>(
    batch: &'a [Payload],
    api: &str,
) -> Result<Option<&'a Payload>, DestinationError> {
    if batch.len() > 1 {
        return Err(DestinationError::PayloadTooLarge {
            message: format!(
                "{} records in one request; {api} takes one record per request (set limits.batch_size to 1)",
                batch.len()
            ),
        });
    }
    Ok(batch.first())
}

/// `base` with `segments` appended to its path (each percent-encoded: ids and external ids
/// travel in paths) and `query` added.
///
/// # Errors
/// [`DestinationError::InvalidConfig`] naming `base_url` when it cannot carry a path.
pub(crate) fn url(
    base: &Url,
    segments: &[&str],
    query: &[(&str, &str)],
) -> Result<Url, DestinationError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| DestinationError::InvalidConfig {
            field: "base_url".to_string(),
            message: "cannot carry a path; give an http(s) URL such as https://api.example.com"
                .to_string(),
        })?
        .pop_if_empty()
        .extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// The outcome of a record's write: 2xx accepted; a client error other than 401, 403, 408,
/// 413, 425 and 429 rejects the record with `detail` (the API's error text); anything else is
/// the error of the request, `error(answer)`.
///
/// # Errors
/// `error(answer)` for refused credentials, throttling, server errors.
pub(crate) fn outcome(
    answer: &Answer,
    api: &str,
    detail: fn(&Answer) -> String,
    error: fn(&Answer) -> DestinationError,
) -> Result<RecordOutcome, DestinationError> {
    let status = answer.status;
    if status.is_success() {
        return Ok(RecordOutcome::Accepted);
    }
    if status.is_client_error()
        && !http::is_transient(status)
        && !matches!(status.as_u16(), 401 | 403 | 413)
    {
        return Ok(RecordOutcome::Rejected {
            reason: format!("{api} answered {status}: {}", detail(answer)),
        });
    }
    Err(error(answer))
}
