//! `retl sql`: one read-only query over the staged extracts and the system tables, printed as a
//! table, CSV (`--output csv`) or JSON lines (`--output json`); without a query, an interactive
//! prompt with history and table-name completion ([`prompt`]).

pub mod prompt;

use std::io::Cursor;

use clap::Args;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::ipc::reader::StreamReader;
use retl_proto::v1;

use super::output::{out, outln};
use super::{CliError, Context, Output};

/// `retl sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// The query, e.g. `SELECT count(*) FROM customers`; without it, an interactive prompt.
    pub query: Option<String>,
    /// Most rows to return (0: the daemon's maximum, 1,000,000 by default).
    #[arg(long, default_value_t = 0)]
    pub limit: u64,
}

/// Runs `retl sql`.
///
/// # Errors
/// The daemon refused the query or could not be reached; the result could not be decoded.
pub async fn run(ctx: &Context, args: SqlArgs) -> Result<(), CliError> {
    match args.query {
        Some(query) => {
            let batches = query_batches(ctx, &query, args.limit).await?;
            print(ctx.output, &batches)
        }
        None => prompt::run(ctx, args.limit).await,
    }
}

/// Runs `query` on the daemon and decodes its Arrow IPC answer.
///
/// # Errors
/// The daemon's error, or an undecodable answer.
pub async fn query_batches(
    ctx: &Context,
    query: &str,
    limit: u64,
) -> Result<Vec<RecordBatch>, CliError> {
    let mut stream = ctx
        .client
        .query()
        .execute_query(v1::ExecuteQueryRequest {
            sql: query.to_string(),
            limit,
        })
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.arrow_ipc);
    }
    let reader = StreamReader::try_new(Cursor::new(bytes), None).map_err(decode_error)?;
    reader.collect::<Result<Vec<_>, _>>().map_err(decode_error)
}

fn decode_error(e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!(
        "the daemon's answer is not a valid Arrow IPC stream: {e}"
    ))
}

/// Prints a result in the chosen format.
///
/// # Errors
/// A value that cannot be formatted (not expected).
pub fn print(output: Output, batches: &[RecordBatch]) -> Result<(), CliError> {
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    match output {
        Output::Table => {
            let table = datafusion::arrow::util::pretty::pretty_format_batches(batches)
                .map_err(decode_error)?;
            outln!("{table}");
            outln!("({rows} row{})", if rows == 1 { "" } else { "s" });
        }
        Output::Csv => {
            let mut buffer = Vec::new();
            {
                let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buffer);
                for batch in batches {
                    writer.write(batch).map_err(decode_error)?;
                }
            }
            out!("{}", String::from_utf8_lossy(&buffer));
        }
        Output::Json => {
            let mut buffer = Vec::new();
            {
                let mut writer = datafusion::arrow::json::LineDelimitedWriter::new(&mut buffer);
                for batch in batches {
                    writer.write(batch).map_err(decode_error)?;
                }
                writer.finish().map_err(decode_error)?;
            }
            out!("{}", String::from_utf8_lossy(&buffer));
        }
    }
    Ok(())
}
