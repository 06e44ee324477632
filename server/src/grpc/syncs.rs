//! `retl.v1.SyncService`.

use std::pin::Pin;

use chrono::Utc;
use futures::Stream;
use retl_engine::sync::manager::PreviewOptions;
use retl_engine::{Engine, TriggerOptions};
use retl_proto::v1;
use retl_proto::v1::sync_service_server::SyncService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::grpc::status::status;
use crate::grpc::{Order, PageRequest, convert, paginate, required_id};

/// The sync service.
#[derive(Debug, Clone)]
pub struct SyncApi {
    engine: Engine,
}

impl SyncApi {
    /// A service over `engine`.
    pub fn new(engine: Engine) -> Self {
        SyncApi { engine }
    }
}

impl SyncApi {
    /// Answers a dry run: what a run would do, sending nothing.
    async fn dry_run(
        &self,
        mapping_id: &str,
        req: &v1::TriggerSyncRequest,
    ) -> Result<v1::SyncRun, Status> {
        let options = PreviewOptions {
            fresh: !req.reuse_latest_extract,
            confirm_mass_delete: req.confirm_mass_delete,
        };
        let start = Utc::now();
        // A client that leaves drops this future, which stops a fresh extraction.
        let cancel = CancellationToken::new();
        let report = self
            .engine
            .syncs()
            .dry_run(mapping_id, options, &cancel)
            .await
            .map_err(status)?;
        tracing::info!(mapping_id = %mapping_id, requests = report.requests, "dry run");
        Ok(convert::dry_run(report, start, Utc::now()))
    }
}

/// The stream `WatchSyncRun` answers with.
pub type WatchSyncRunStream =
    Pin<Box<dyn Stream<Item = Result<v1::WatchSyncRunResponse, Status>> + Send + 'static>>;

fn snapshot(run: retl_engine::sync::run::SyncRun) -> Result<v1::WatchSyncRunResponse, Status> {
    Ok(v1::WatchSyncRunResponse {
        run: Some(convert::sync_run(run)),
    })
}

/// Forwards every change of a run to `tx` until a terminal snapshot was sent or the client left.
async fn forward(
    engine: Engine,
    run_id: String,
    mut rx: tokio::sync::watch::Receiver<retl_engine::sync::run::SyncRun>,
    tx: mpsc::Sender<Result<v1::WatchSyncRunResponse, Status>>,
) {
    loop {
        let run = rx.borrow_and_update().clone();
        let terminal = run.status.is_terminal();
        if tx.send(snapshot(run)).await.is_err() || terminal {
            return;
        }
        tokio::select! {
            changed = rx.changed() => {
                if changed.is_err() {
                    // The run's sender is gone without a terminal snapshot we saw: send the
                    // stored record, which holds its end.
                    let last = engine.syncs().get(&run_id).map_err(status).and_then(|run| {
                        if run.status.is_terminal() {
                            snapshot(run)
                        } else {
                            Err(Status::internal(format!(
                                "internal error (this is a bug in retl, please report it): run {run_id} stopped reporting progress before it ended"
                            )))
                        }
                    });
                    let _ = tx.send(last).await;
                    return;
                }
            }
            () = tx.closed() => return,
        }
    }
}

#[tonic::async_trait]
impl SyncService for SyncApi {
    type WatchSyncRunStream = WatchSyncRunStream;

    async fn trigger_sync(
        &self,
        request: Request<v1::TriggerSyncRequest>,
    ) -> Result<Response<v1::SyncRun>, Status> {
        let req = request.into_inner();
        let mapping_id = required_id("mapping_id", &req.mapping_id)?;
        if req.dry_run {
            return self.dry_run(mapping_id, &req).await.map(Response::new);
        }
        if req.reuse_latest_extract {
            return Err(Status::invalid_argument(
                "reuse_latest_extract: only a dry run can reuse the latest extract (a run always runs the model); set dry_run too, or leave it unset",
            ));
        }
        let options = TriggerOptions {
            confirm_mass_delete: req.confirm_mass_delete,
            trigger: Some("manual".to_string()),
        };
        let run = self
            .engine
            .syncs()
            .trigger(mapping_id, options)
            .await
            .map_err(status)?;
        tracing::info!(mapping_id = %mapping_id, run_id = %run.id, "sync triggered");
        Ok(Response::new(convert::sync_run(run)))
    }

    async fn get_sync_run(
        &self,
        request: Request<v1::GetSyncRunRequest>,
    ) -> Result<Response<v1::SyncRun>, Status> {
        let req = request.into_inner();
        let id = required_id("run_id", &req.run_id)?;
        let run = self.engine.syncs().get(id).map_err(status)?;
        Ok(Response::new(convert::sync_run(run)))
    }

    async fn list_sync_runs(
        &self,
        request: Request<v1::ListSyncRunsRequest>,
    ) -> Result<Response<v1::ListSyncRunsResponse>, Status> {
        let req = request.into_inner();
        let mapping = Some(req.mapping_id.as_str()).filter(|m| !m.is_empty());
        let filter = mapping
            .map(|m| format!("mapping_id={m}"))
            .unwrap_or_default();
        let page = PageRequest {
            rpc: "ListSyncRuns",
            filter: &filter,
            page_size: req.page_size,
            page_token: &req.page_token,
        };
        // The engine seeks to the cursor (runs are keyed by time-ordered ids) and reads one
        // page plus one run, so `paginate` can tell whether another page follows (its filter by
        // the cursor keeps them all).
        let size = page.size()?;
        let before = page.after()?;
        let runs = self
            .engine
            .syncs()
            .list(mapping, before.as_deref(), size + 1)
            .map_err(status)?;
        let (runs, next_page_token) = paginate(runs, |r| r.id.as_str(), Order::Descending, &page)?;
        Ok(Response::new(v1::ListSyncRunsResponse {
            sync_runs: runs.into_iter().map(convert::sync_run).collect(),
            next_page_token,
        }))
    }

    async fn watch_sync_run(
        &self,
        request: Request<v1::WatchSyncRunRequest>,
    ) -> Result<Response<Self::WatchSyncRunStream>, Status> {
        let req = request.into_inner();
        let run_id = required_id("run_id", &req.run_id)?.to_string();
        let rx = self.engine.syncs().watch(&run_id).map_err(status)?;
        let (tx, out) = mpsc::channel(16);
        tokio::spawn(forward(self.engine.clone(), run_id, rx, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn cancel_sync_run(
        &self,
        request: Request<v1::CancelSyncRunRequest>,
    ) -> Result<Response<v1::SyncRun>, Status> {
        let req = request.into_inner();
        let id = required_id("run_id", &req.run_id)?;
        let run = self.engine.syncs().cancel(id).map_err(status)?;
        tracing::info!(run_id = %id, "sync run cancel requested");
        Ok(Response::new(convert::sync_run(run)))
    }

    async fn list_failed_records(
        &self,
        request: Request<v1::ListFailedRecordsRequest>,
    ) -> Result<Response<v1::ListFailedRecordsResponse>, Status> {
        let req = request.into_inner();
        let id = required_id("mapping_id", &req.mapping_id)?;
        let size = match req.page_size {
            0 => 100,
            n if (1..=1000).contains(&n) => usize::try_from(n).unwrap_or(100),
            n => {
                return Err(Status::invalid_argument(format!(
                    "page_size: {n} is out of range; use 1 to 1000 (0 = 100)"
                )));
            }
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            Some(hex::decode(&req.page_token).map_err(|_| {
                Status::invalid_argument(
                    "page_token: not a token ListFailedRecords returned; pass next_page_token as it came, or leave it empty for the first page",
                )
            })?)
        };
        let mut records = self
            .engine
            .syncs()
            .failed_records(id, after.as_deref(), size + 1, req.given_up_only)
            .map_err(status)?;
        let next_page_token = if records.len() > size {
            records.truncate(size);
            records
                .last()
                .map(|r| hex::encode(&r.key))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(v1::ListFailedRecordsResponse {
            records: records.into_iter().map(convert::failed_record).collect(),
            next_page_token,
        }))
    }

    async fn explain_record(
        &self,
        request: Request<v1::ExplainRecordRequest>,
    ) -> Result<Response<v1::RecordExplanation>, Status> {
        let req = request.into_inner();
        let id = required_id("mapping_id", &req.mapping_id)?;
        // A client that leaves drops this future, which stops a fresh extraction.
        let cancel = CancellationToken::new();
        let explanation = self
            .engine
            .syncs()
            .explain(id, &req.key, req.fresh, &cancel)
            .await
            .map_err(status)?;
        Ok(Response::new(convert::explanation(explanation)))
    }

    async fn retry_failed_records(
        &self,
        request: Request<v1::RetryFailedRecordsRequest>,
    ) -> Result<Response<v1::RetryFailedRecordsResponse>, Status> {
        let req = request.into_inner();
        let id = required_id("mapping_id", &req.mapping_id)?;
        let records = self
            .engine
            .syncs()
            .retry_failed(id, &req.keys)
            .map_err(status)?;
        tracing::info!(mapping_id = %id, records, "given-up records made pending again");
        Ok(Response::new(v1::RetryFailedRecordsResponse { records }))
    }
}
