//! [`EngineOptions`]: memory budgets, safety-stop thresholds, staging retention and extract
//! retry pacing. A leaf module: every service reads it, none is imported here.

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Memory a model's query (its extract, a preview) may use before it spills to disk, in
    /// bytes.
    pub sort_memory_bytes: usize,
    /// Memory the diff's sort of the key index may use before it spills to disk, in bytes
    /// (only an extract that does not arrive in key order is sorted).
    pub key_sort_memory_bytes: usize,
    /// Fraction of the state's keys that may vanish in one run before deletes are held back.
    pub mass_delete_fraction: f64,
    /// Below this many keys in the state the mass-delete safety stop does not apply.
    pub mass_delete_min_keys: u64,
    /// Keep the staged extracts of this many runs per model.
    pub staging_runs_kept: usize,
    /// Wait before the first retry of an extract whose connection was lost or refused; each
    /// further retry waits twice as long, up to 30 s.
    pub extract_retry_backoff: std::time::Duration,
    /// Keep at most this many finished runs per mapping in the run history.
    pub run_history_runs_kept: usize,
    /// Forget finished runs older than this.
    pub run_history_max_age: std::time::Duration,
    /// A run whose stage and counts do not move for this long (a query that never returns, a
    /// destination that never answers) is stopped and reported failed, naming the stage.
    pub stall_timeout: std::time::Duration,
    /// At shutdown, how long the requests in flight may take to finish (and their
    /// acknowledged records to be committed) before they are given up.
    pub shutdown_grace: std::time::Duration,
    /// Webhook URLs that receive the alerts of every mapping.
    pub alert_webhooks: Vec<String>,
    /// Most rows one SQL query returns.
    pub query_max_rows: u64,
    /// Longest one SQL query may run.
    pub query_timeout: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            sort_memory_bytes: 256 * 1024 * 1024,
            key_sort_memory_bytes: 64 * 1024 * 1024,
            mass_delete_fraction: 0.5,
            mass_delete_min_keys: 10,
            staging_runs_kept: 2,
            extract_retry_backoff: std::time::Duration::from_secs(1),
            run_history_runs_kept: 1000,
            run_history_max_age: std::time::Duration::from_secs(90 * 24 * 3600),
            stall_timeout: std::time::Duration::from_secs(600),
            shutdown_grace: std::time::Duration::from_secs(30),
            alert_webhooks: Vec::new(),
            query_max_rows: 1_000_000,
            query_timeout: std::time::Duration::from_secs(300),
        }
    }
}
