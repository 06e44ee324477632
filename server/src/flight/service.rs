//! [`FlightSqlApi`]: the `FlightSqlService` of the daemon (see the [module docs](super)).

use std::pin::Pin;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionBeginSavepointRequest, ActionBeginSavepointResult, ActionBeginTransactionRequest,
    ActionBeginTransactionResult, ActionCancelQueryRequest, ActionCancelQueryResult,
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, ActionCreatePreparedSubstraitPlanRequest,
    ActionEndSavepointRequest, ActionEndTransactionRequest, CommandGetCatalogs,
    CommandGetCrossReference, CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys,
    CommandGetPrimaryKeys, CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables,
    CommandGetXdbcTypeInfo, CommandPreparedStatementQuery, CommandPreparedStatementUpdate,
    CommandStatementIngest, CommandStatementQuery, CommandStatementSubstraitPlan,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use prost::bytes::Bytes;
use retl_engine::Engine;
use retl_engine::query::query_error;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use super::auth::FlightAuth;
use super::{metadata, sql_info};
use crate::grpc::status::{invalid_argument, status};

/// The stream `DoGet` answers with.
type DoGetStream = <FlightSqlApi as FlightService>::DoGetStream;
/// The stream `Handshake` answers with.
type HandshakeStream = Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>;

/// Why writes are refused.
const READ_ONLY: &str = "retl's SQL is read-only (SELECT, WITH, VALUES, SHOW, EXPLAIN over the staged extracts and the system tables)";

/// Flight SQL over the engine's [`retl_engine::query::QueryService`].
#[derive(Debug, Clone)]
pub struct FlightSqlApi {
    engine: Engine,
    auth: FlightAuth,
}

impl FlightSqlApi {
    /// A service over `engine`; `auth` is what its handshake checks.
    pub fn new(engine: Engine, auth: FlightAuth) -> Self {
        FlightSqlApi { engine, auth }
    }

    /// Plans `sql` (without running it) and answers with its schema and a ticket for `DoGet`.
    async fn planned(
        &self,
        sql: &str,
        ticket: impl ProstMessageExt,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.engine.query().schema(sql).await.map_err(status)?;
        flight_info(ticket, &schema, descriptor)
    }

    /// Runs `sql` and streams its result.
    async fn run(&self, sql: &str) -> Result<Response<DoGetStream>, Status> {
        let result = self.engine.query().execute(sql, 0).await.map_err(status)?;
        let batches = result
            .stream
            .map_err(|e| FlightError::Tonic(Box::new(status(query_error(e, &[])))));
        Ok(Response::new(encode(result.schema, batches)))
    }
}

/// `batches` as Flight data (the schema first, even for no rows).
fn encode<S>(schema: datafusion::arrow::datatypes::SchemaRef, batches: S) -> DoGetStream
where
    S: Stream<Item = Result<RecordBatch, FlightError>> + Send + 'static,
{
    Box::pin(
        FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from),
    )
}

/// One listing batch as Flight data.
fn listing(batch: RecordBatch) -> Response<DoGetStream> {
    let schema = batch.schema();
    Response::new(encode(schema, futures::stream::iter([Ok(batch)])))
}

/// A `FlightInfo` with `schema` and one endpoint whose ticket is `command` (served on this
/// connection).
fn flight_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| internal("encoding a result schema", e))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

fn internal(what: &str, e: impl std::fmt::Display) -> Status {
    status(retl_engine::Error::internal(format!("{what}: {e}")))
}

/// `schema` as an IPC message (the encoding of `dataset_schema` and `GetTables` schemas).
fn ipc_schema(schema: &Schema) -> Result<Bytes, Status> {
    let message: Result<IpcMessage, _> =
        SchemaAsIpc::new(schema, &IpcWriteOptions::default()).try_into();
    message
        .map(|IpcMessage(bytes)| bytes)
        .map_err(|e| internal("encoding a result schema", e))
}

/// The SQL a statement handle or ticket carries.
fn sql_of(handle: &[u8], field: &str) -> Result<String, Status> {
    String::from_utf8(handle.to_vec())
        .map_err(|_| invalid_argument(field, "is not a handle issued by retl (not UTF-8 SQL)"))
}

fn unsupported(what: &str, why: &str) -> Status {
    Status::unimplemented(format!("{what} is not supported by retl: {why}"))
}

fn no_keys(what: &str) -> Status {
    unsupported(
        what,
        "the staged extracts and system tables declare no primary or foreign keys",
    )
}

#[tonic::async_trait]
impl FlightSqlService for FlightSqlApi {
    type FlightService = FlightSqlApi;

    /// Accepts the bearer header or basic auth with the token as password (the interceptor has
    /// checked it) and answers with `authorization: Bearer <token>`, which clients send on
    /// later calls.
    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<HandshakeStream>, Status> {
        let token = self.auth.check(&request)?;
        let body = futures::stream::iter([Ok(HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::new(),
        })]);
        let mut response: Response<HandshakeStream> = Response::new(Box::pin(body));
        if let Some(token) = token.filter(|_| self.auth.is_required()) {
            let mut value: MetadataValue<tonic::metadata::Ascii> = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::unauthenticated("the token is not a valid header value"))?;
            value.set_sensitive(true);
            response.metadata_mut().insert("authorization", value);
        }
        Ok(response)
    }

    // ---- statements ----

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let ticket = TicketStatementQuery {
            statement_handle: Bytes::from(query.query.clone().into_bytes()),
        };
        self.planned(&query.query, ticket, request.into_inner())
            .await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = sql_of(&ticket.statement_handle, "statement_handle")?;
        self.run(&sql).await
    }

    // ---- prepared statements (stateless: the handle is the SQL) ----

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let schema = self
            .engine
            .query()
            .schema(&query.query)
            .await
            .map_err(status)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: Bytes::from(query.query.into_bytes()),
            dataset_schema: ipc_schema(&schema)?,
            // No parameters.
            parameter_schema: Bytes::new(),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = sql_of(&cmd.prepared_statement_handle, "prepared_statement_handle")?;
        self.planned(&sql, cmd, request.into_inner()).await
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let sql = sql_of(&cmd.prepared_statement_handle, "prepared_statement_handle")?;
        self.run(&sql).await
    }

    /// Binding parameters: accepted only when no parameter row is sent (some drivers send an
    /// empty batch); parameter rows are refused.
    async fn do_put_prepared_statement_query(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let mut batches = arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        );
        while let Some(batch) = batches.next().await {
            let batch = batch
                .map_err(|e| invalid_argument("parameters", &format!("cannot be decoded: {e}")))?;
            if batch.num_rows() > 0 && batch.num_columns() > 0 {
                return Err(invalid_argument(
                    "parameters",
                    "are not supported: retl's prepared statements take no parameters; write the values into the SQL",
                ));
            }
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(cmd.prepared_statement_handle),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        // Nothing is kept per prepared statement.
        Ok(())
    }

    // ---- metadata ----

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(listing(metadata::catalogs(query)?))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.engine.query().session().map_err(status)?;
        Ok(listing(metadata::schemas(&ctx, query)?))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        flight_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.engine.query().session().map_err(status)?;
        Ok(listing(metadata::tables(&ctx, query).await?))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        flight_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        Ok(listing(metadata::table_types(query)?))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let data = sql_info::sql_info(self.engine.query().limits().timeout)?;
        let schema = query.clone().into_builder(&data).schema();
        flight_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        _request: Request<Ticket>,
    ) -> Result<Response<DoGetStream>, Status> {
        let data = sql_info::sql_info(self.engine.query().limits().timeout)?;
        let batch = query
            .into_builder(&data)
            .build()
            .map_err(|e| internal("building the SqlInfo answer", e))?;
        Ok(listing(batch))
    }

    // ---- not supported: clear refusals ----

    async fn get_flight_info_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(no_keys("GetPrimaryKeys"))
    }

    async fn get_flight_info_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(no_keys("GetExportedKeys"))
    }

    async fn get_flight_info_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(no_keys("GetImportedKeys"))
    }

    async fn get_flight_info_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(no_keys("GetCrossReference"))
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        _query: CommandGetXdbcTypeInfo,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported(
            "GetXdbcTypeInfo",
            "the column types are the Arrow types of each table's schema (GetTables with include_schema)",
        ))
    }

    async fn get_flight_info_substrait_plan(
        &self,
        _query: CommandStatementSubstraitPlan,
        _request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        Err(unsupported("a Substrait plan", "send SQL"))
    }

    async fn do_action_create_prepared_substrait_plan(
        &self,
        _query: ActionCreatePreparedSubstraitPlanRequest,
        _request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        Err(unsupported("a Substrait plan", "send SQL"))
    }

    async fn do_put_statement_update(
        &self,
        _ticket: CommandStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(unsupported("an update", READ_ONLY))
    }

    async fn do_put_prepared_statement_update(
        &self,
        _query: CommandPreparedStatementUpdate,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(unsupported("an update", READ_ONLY))
    }

    async fn do_put_statement_ingest(
        &self,
        _ticket: CommandStatementIngest,
        _request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        Err(unsupported("bulk ingest", READ_ONLY))
    }

    async fn do_action_begin_transaction(
        &self,
        _query: ActionBeginTransactionRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginTransactionResult, Status> {
        Err(unsupported("a transaction", READ_ONLY))
    }

    async fn do_action_end_transaction(
        &self,
        _query: ActionEndTransactionRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(unsupported("a transaction", READ_ONLY))
    }

    async fn do_action_begin_savepoint(
        &self,
        _query: ActionBeginSavepointRequest,
        _request: Request<Action>,
    ) -> Result<ActionBeginSavepointResult, Status> {
        Err(unsupported("a savepoint", READ_ONLY))
    }

    async fn do_action_end_savepoint(
        &self,
        _query: ActionEndSavepointRequest,
        _request: Request<Action>,
    ) -> Result<(), Status> {
        Err(unsupported("a savepoint", READ_ONLY))
    }

    async fn do_action_cancel_query(
        &self,
        _query: ActionCancelQueryRequest,
        _request: Request<Action>,
    ) -> Result<ActionCancelQueryResult, Status> {
        Err(unsupported(
            "CancelQuery",
            "a query stops when its DoGet stream is dropped, or at the daemon's query timeout",
        ))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
