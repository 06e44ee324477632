//! SQL through `QueryService.ExecuteQuery`, decoded from Arrow IPC, and results as text.

use std::io::Cursor;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::ipc::reader::StreamReader;
use retl_proto::v1;

use crate::Harness;

/// Runs `sql` (at most `limit` rows, 0 = the daemon's limit) and decodes the answer.
pub async fn query(h: &Harness, sql: &str, limit: u64) -> Result<Vec<RecordBatch>, tonic::Status> {
    let mut stream = h
        .client
        .query()
        .execute_query(v1::ExecuteQueryRequest {
            sql: sql.to_string(),
            limit,
        })
        .await?
        .into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.arrow_ipc);
    }
    let reader = StreamReader::try_new(Cursor::new(bytes), None).expect("an IPC stream");
    Ok(reader.collect::<Result<Vec<_>, _>>().expect("IPC batches"))
}

/// Runs `sql`, which must succeed, and returns its rows as text cells.
pub async fn query_text(h: &Harness, sql: &str) -> Vec<Vec<String>> {
    let batches = query(h, sql, 0)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"));
    text_rows(&batches)
}

/// The rows of a result as text cells (`NULL` for a null).
pub fn text_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for batch in batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| datafusion::arrow::compute::cast(c, &DataType::Utf8).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = datafusion::arrow::array::AsArray::as_string::<i32>(c);
                        if datafusion::arrow::array::Array::is_null(c, row) {
                            "NULL".to_string()
                        } else {
                            c.value(row).to_string()
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}
