//! [`Previews`]: `PreviewModel` — the first rows of a model or of unsaved SQL — and its cache.
//!
//! Answers are cached per source, SQL text and limit, so that clients building a SQL editor do
//! not hit the warehouse on every keystroke; `refresh` bypasses (and renews) the cache, and so
//! does any change to the source or to a model with that SQL. Syncs never use it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use crate::catalog::Catalog;
use crate::catalog::model::{Preview, PreviewTarget};
use crate::connector::Registry;
use crate::connector::build::build_source;
use crate::error::Error;
use crate::mapping::value::json_value;
use crate::model::plan::ModelSession;
use crate::options::EngineOptions;
use crate::source::ColumnInfo;

/// Previews kept per daemon (oldest evicted first).
const PREVIEW_CACHE_ENTRIES: usize = 128;

/// A cache key: (source id, SQL text, row limit).
type PreviewKey = (String, String, usize);

/// Cached previews, oldest first.
#[derive(Default)]
struct PreviewCache {
    entries: HashMap<PreviewKey, Preview>,
    order: VecDeque<PreviewKey>,
}

impl PreviewCache {
    fn get(&self, key: &PreviewKey) -> Option<Preview> {
        self.entries.get(key).cloned()
    }

    fn put(&mut self, key: PreviewKey, preview: Preview) {
        if self.entries.insert(key.clone(), preview).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > PREVIEW_CACHE_ENTRIES {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }

    /// Forgets the entries of a source, or only those with this SQL text.
    fn evict(&mut self, source_id: &str, sql: Option<&str>) {
        self.entries
            .retain(|(s, q, _), _| !(s == source_id && sql.is_none_or(|sql| sql == q)));
        let entries = &self.entries;
        self.order.retain(|k| entries.contains_key(k));
    }
}

/// Model previews with their cache.
pub struct Previews {
    catalog: Catalog,
    registry: Arc<Registry>,
    options: EngineOptions,
    cache: Mutex<PreviewCache>,
}

impl std::fmt::Debug for Previews {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Previews").finish_non_exhaustive()
    }
}

impl Previews {
    /// Previews over the catalog's models and sources.
    pub fn new(catalog: Catalog, registry: Arc<Registry>, options: EngineOptions) -> Self {
        Previews {
            catalog,
            registry,
            options,
            cache: Mutex::new(PreviewCache::default()),
        }
    }

    /// The first `limit` rows of a model (or of unsaved SQL), from the cache unless `refresh`.
    ///
    /// # Errors
    /// `NotFound` for an unknown model or source; `InvalidArgument` for SQL that does not plan;
    /// the source's error when the warehouse fails.
    pub async fn preview(
        &self,
        target: PreviewTarget,
        limit: usize,
        refresh: bool,
    ) -> Result<Preview, Error> {
        let (source_id, sql) = match target {
            PreviewTarget::Model(id) => {
                let m = self.catalog.model(&id)?;
                (m.source_id.to_string(), m.sql)
            }
            PreviewTarget::Sql { source_id, sql } => (source_id, sql),
        };
        let key = (source_id.clone(), sql.clone(), limit);
        if !refresh
            && let Some(mut hit) = self
                .cache
                .lock()
                .map_err(|_| Error::internal("the preview cache lock was poisoned"))?
                .get(&key)
        {
            hit.cached = true;
            return Ok(hit);
        }
        let source = build_source(&self.registry, &self.catalog.source(&source_id)?)?;
        let session =
            ModelSession::new(source.as_ref(), self.options.sort_memory_bytes, None).await?;
        let plan = session.plan(&sql).await?;
        let (schema, batches) = session.preview(plan, limit).await?;
        let columns: Vec<ColumnInfo> = schema
            .fields()
            .iter()
            .map(|f| ColumnInfo::from_field(f))
            .collect();
        let mut rows = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                let mut obj = serde_json::Map::new();
                for (i, field) in schema.fields().iter().enumerate() {
                    let value = json_value(batch.column(i).as_ref(), row)
                        .map_err(|e| Error::internal(format!("converting a preview value: {e}")))?;
                    obj.insert(field.name().clone(), value);
                }
                rows.push(obj);
            }
        }
        let preview = Preview {
            columns,
            rows,
            cached: false,
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.put(key, preview.clone());
        }
        Ok(preview)
    }

    /// Forgets cached previews of a source, or only those of this SQL text.
    pub fn evict(&self, source_id: &str, sql: Option<&str>) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.evict(source_id, sql);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preview(n: usize) -> Preview {
        Preview {
            columns: Vec::new(),
            rows: vec![serde_json::Map::new(); n],
            cached: false,
        }
    }

    #[test]
    fn cache_evicts_by_source_or_sql_and_keeps_a_bounded_number() {
        let mut cache = PreviewCache::default();
        cache.put(("s".into(), "a".into(), 10), preview(1));
        cache.put(("s".into(), "b".into(), 10), preview(2));
        cache.put(("t".into(), "a".into(), 10), preview(3));
        cache.evict("s", Some("a"));
        assert!(cache.get(&("s".into(), "a".into(), 10)).is_none());
        assert!(cache.get(&("s".into(), "b".into(), 10)).is_some());
        cache.evict("s", None);
        assert!(cache.get(&("s".into(), "b".into(), 10)).is_none());
        assert!(cache.get(&("t".into(), "a".into(), 10)).is_some());
        for i in 0..PREVIEW_CACHE_ENTRIES + 5 {
            cache.put(("u".into(), i.to_string(), 1), preview(0));
        }
        assert_eq!(cache.entries.len(), PREVIEW_CACHE_ENTRIES);
        assert_eq!(cache.order.len(), PREVIEW_CACHE_ENTRIES);
        assert!(cache.get(&("t".into(), "a".into(), 10)).is_none());
    }
}
