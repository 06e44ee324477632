//! The `retl.v1` gRPC services over the engine facade.
//!
//! # Layout
//! - [`sources`], [`models`], [`destinations`], [`mappings`], [`syncs`], [`query`]: one service
//!   implementation each, thin: validate the request shape, convert, call [`Engine`], convert back.
//! - [`convert`]: proto <-> engine types (secrets never leave).
//! - [`json`]: proto messages as JSON, for `--output json` in the CLI.
//! - [`status`]: engine errors -> gRPC status codes, in one place.
//!
//! List RPCs paginate over the engine's sorted lists; a page token carries the last id of the
//! previous page, so pages stay consistent while objects are added or removed, and is checked
//! ([`PageRequest`]): a bad token is refused, never read as "start over".

pub mod convert;
pub mod destinations;
pub mod json;
pub mod mappings;
pub mod models;
pub mod query;
pub mod sources;
pub mod status;
pub mod syncs;

use std::collections::BTreeSet;

use tonic::Status;

pub use destinations::DestinationApi;
pub use mappings::MappingApi;
pub use models::ModelApi;
pub use query::QueryApi;
pub use sources::SourceApi;
pub use syncs::SyncApi;

/// Page size used when a List request asks for 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page size; larger requests are capped (AIP-158).
pub const MAX_PAGE_SIZE: usize = 1000;

/// The order of a list the server paginates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Order {
    /// Ids ascending (sources, models, destinations, mappings).
    Ascending,
    /// Ids descending (runs, newest first).
    Descending,
}

/// The effective page size of a List request: 0 = the default, capped at the maximum.
pub(crate) fn effective_page_size(page_size: i32) -> Result<usize, Status> {
    match usize::try_from(page_size) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(n) => Ok(n.min(MAX_PAGE_SIZE)),
        Err(_) => Err(status::invalid_argument(
            "page_size",
            "must not be negative",
        )),
    }
}

/// Which page of which list a List request asks for.
///
/// A page token is opaque to clients: the RPC, the request's filter and the last id of the page
/// it follows, hex-encoded. A token the server did not issue, or one issued by another List RPC
/// or under another filter, is refused with `INVALID_ARGUMENT` instead of silently restarting
/// at the first page.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PageRequest<'a> {
    /// The RPC, e.g. `ListSources`.
    pub rpc: &'static str,
    /// The request's filter fields as one string (empty when it has none).
    pub filter: &'a str,
    /// The requested page size (0 = the default).
    pub page_size: i32,
    /// The request's `page_token`.
    pub page_token: &'a str,
}

impl PageRequest<'_> {
    /// The effective page size (see [`effective_page_size`]).
    pub(crate) fn size(&self) -> Result<usize, Status> {
        effective_page_size(self.page_size)
    }

    /// The last id of the previous page; `None` for the first page.
    pub(crate) fn after(&self) -> Result<Option<String>, Status> {
        if self.page_token.is_empty() {
            return Ok(None);
        }
        let refuse = |why: &str| {
            status::invalid_argument(
                "page_token",
                &format!(
                    "{why}; pass the next_page_token of the previous {} response unchanged (with the same other fields), or leave page_token empty for the first page",
                    self.rpc
                ),
            )
        };
        let text = hex_decode(self.page_token)
            .ok_or_else(|| refuse("is not a page token this server issued"))?;
        let mut parts = text.splitn(3, '\n');
        let (Some(rpc), Some(filter), Some(last_id)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("is not a page token this server issued"));
        };
        if rpc != self.rpc {
            return Err(refuse(&format!("was issued by {rpc}, not {}", self.rpc)));
        }
        if filter != self.filter {
            return Err(refuse(&format!(
                "was issued for the filter '{filter}', not '{}'",
                self.filter
            )));
        }
        Ok(Some(last_id.to_string()))
    }

    /// The token of the page after the one ending at `last_id`.
    pub(crate) fn next_token(&self, last_id: &str) -> String {
        hex_encode(&format!("{}\n{}\n{last_id}", self.rpc, self.filter))
    }
}

fn hex_encode(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(token: &str) -> Option<String> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// One page of `items` (sorted by `id` in `order`) after the request's page token, and the next
/// token.
pub(crate) fn paginate<T>(
    items: Vec<T>,
    id: impl Fn(&T) -> &str,
    order: Order,
    request: &PageRequest<'_>,
) -> Result<(Vec<T>, String), Status> {
    let after = request.after()?;
    let items = items.into_iter().filter(|item| match after.as_deref() {
        None => true,
        Some(after) => match order {
            Order::Ascending => id(item) > after,
            Order::Descending => id(item) < after,
        },
    });
    first_page(items, &id, request)
}

/// The first page of `items` (already after the request's cursor), and the next token.
fn first_page<T>(
    items: impl IntoIterator<Item = T>,
    id: impl Fn(&T) -> &str,
    request: &PageRequest<'_>,
) -> Result<(Vec<T>, String), Status> {
    let size = request.size()?;
    let mut page: Vec<T> = items.into_iter().take(size + 1).collect();
    let next = if page.len() > size {
        page.truncate(size);
        page.last()
            .map(|item| request.next_token(id(item)))
            .unwrap_or_default()
    } else {
        String::new()
    };
    Ok((page, next))
}

/// The paths of an update request's field mask, checked against what the resource allows.
///
/// Returns `None` for an empty mask (the caller then updates every field that is set).
pub(crate) fn update_paths(
    resource: &str,
    mask: Option<prost_types::FieldMask>,
    allowed: &[&str],
    immutable: &[&str],
) -> Result<Option<BTreeSet<String>>, Status> {
    let paths = mask.map(|m| m.paths).unwrap_or_default();
    if paths.is_empty() {
        return Ok(None);
    }
    let mut set = BTreeSet::new();
    for path in paths {
        if immutable.contains(&path.as_str()) {
            return Err(status::invalid_argument(
                &format!("{resource}.{path}"),
                &format!("cannot be changed after creation; create a new {resource} instead"),
            ));
        }
        if !allowed.contains(&path.as_str()) {
            return Err(status::invalid_argument(
                "update_mask",
                &format!(
                    "has unknown path '{path}'; paths of a {resource} that can be updated: {}",
                    allowed.join(", ")
                ),
            ));
        }
        set.insert(path);
    }
    Ok(Some(set))
}

/// Whether an update touches `path`: named in the mask, or (empty mask) `is_set`.
pub(crate) fn touches(paths: &Option<BTreeSet<String>>, path: &str, is_set: bool) -> bool {
    match paths {
        Some(p) => p.contains(path),
        None => is_set,
    }
}

/// The id a Create request asks for: `<kind>_id`, or the resource's own `id` when only that is
/// set; `None` = generate one. Both set and different is an error.
pub(crate) fn create_id(
    kind: &str,
    request_id: String,
    resource_id: String,
) -> Result<Option<String>, Status> {
    match (request_id.is_empty(), resource_id.is_empty()) {
        (true, true) => Ok(None),
        (false, true) => Ok(Some(request_id)),
        (true, false) => Ok(Some(resource_id)),
        (false, false) if request_id == resource_id => Ok(Some(request_id)),
        (false, false) => Err(status::invalid_argument(
            &format!("{kind}_id"),
            &format!("'{request_id}' differs from {kind}.id '{resource_id}'; set only {kind}_id"),
        )),
    }
}

/// A required id of a request.
pub(crate) fn required_id<'a>(field: &str, id: &'a str) -> Result<&'a str, Status> {
    if id.is_empty() {
        Err(status::required(field))
    } else {
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(page_size: i32, page_token: &'a str) -> PageRequest<'a> {
        PageRequest {
            rpc: "ListThings",
            filter: "",
            page_size,
            page_token,
        }
    }

    #[test]
    fn pages_follow_tokens() {
        let items: Vec<String> = (0..5).map(|i| format!("id-{i}")).collect();
        let page = |items: &Vec<String>, order, size, token: &str| {
            paginate(items.clone(), |s| s, order, &request(size, token)).unwrap()
        };
        let (p1, t1) = page(&items, Order::Ascending, 2, "");
        assert_eq!(p1, ["id-0", "id-1"]);
        assert_eq!(request(2, &t1).after().unwrap().as_deref(), Some("id-1"));
        let (p2, t2) = page(&items, Order::Ascending, 2, &t1);
        assert_eq!(p2, ["id-2", "id-3"]);
        let (p3, t3) = page(&items, Order::Ascending, 2, &t2);
        assert_eq!(p3, ["id-4"]);
        assert_eq!(t3, "");
        let (all, t) = page(&items, Order::Ascending, 0, "");
        assert_eq!(all.len(), 5);
        assert_eq!(t, "");
        let mut desc = items;
        desc.reverse();
        let (d1, dt) = page(&desc, Order::Descending, 3, "");
        assert_eq!(d1, ["id-4", "id-3", "id-2"]);
        let (d2, _) = page(&desc, Order::Descending, 3, &dt);
        assert_eq!(d2, ["id-1", "id-0"]);
        assert!(
            paginate(
                Vec::<String>::new(),
                |s| s,
                Order::Ascending,
                &request(-1, "")
            )
            .is_err()
        );
    }

    #[test]
    fn bad_page_tokens_are_refused() {
        let items: Vec<String> = (0..5).map(|i| format!("id-{i}")).collect();
        let (_, token) = paginate(items.clone(), |s| s, Order::Ascending, &request(2, "")).unwrap();
        let other_rpc = PageRequest {
            rpc: "ListOthers",
            ..request(2, &token)
        };
        let other_filter = PageRequest {
            filter: "mapping_id=a",
            ..request(2, &token)
        };
        for (bad, needle) in [
            (request(2, "id-1"), "not a page token this server issued"),
            (request(2, "zz"), "not a page token this server issued"),
            (request(2, "abc"), "not a page token this server issued"),
            (request(2, &hex_encode("no separators")), "not a page token"),
            (other_rpc, "was issued by ListThings, not ListOthers"),
            (other_filter, "issued for the filter '', not 'mapping_id=a'"),
        ] {
            let err = paginate(items.clone(), |s| s, Order::Ascending, &bad).unwrap_err();
            assert_eq!(err.code(), tonic::Code::InvalidArgument);
            assert!(
                err.message().starts_with("page_token "),
                "{}",
                err.message()
            );
            assert!(err.message().contains(needle), "{}", err.message());
            assert!(
                err.message().contains("next_page_token"),
                "{}",
                err.message()
            );
        }
    }

    #[test]
    fn masks_are_checked() {
        let mask = |p: &[&str]| {
            Some(prost_types::FieldMask {
                paths: p.iter().map(|s| s.to_string()).collect(),
            })
        };
        let allowed = ["display_name", "config"];
        assert!(
            update_paths("source", None, &allowed, &["type"])
                .unwrap()
                .is_none()
        );
        let p = update_paths("source", mask(&["config"]), &allowed, &["type"]).unwrap();
        assert!(touches(&p, "config", false));
        assert!(!touches(&p, "display_name", true));
        let err = update_paths("source", mask(&["type"]), &allowed, &["type"]).unwrap_err();
        assert!(err.message().contains("source.type"));
        let err = update_paths("source", mask(&["nope"]), &allowed, &["type"]).unwrap_err();
        assert!(err.message().contains("display_name, config"));
    }
}
