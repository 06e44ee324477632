//! The interactive `retl sql` prompt: statements end with `;` (several lines allowed), history in
//! `~/.retl_history`, Tab completes table names; `\dt` lists the tables, `\q` (or Ctrl-D) quits.

use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Editor, Helper};

use super::{print, query_batches};
use crate::cli::output::outln;
use crate::cli::{CliError, Context};

/// The query listing the tables a query can read.
const TABLES_QUERY: &str = "SELECT table_schema, table_name FROM information_schema.tables \
     WHERE table_schema <> 'information_schema' ORDER BY table_schema, table_name";

/// Completes table names (bare and schema-qualified) and a few keywords.
struct SqlHelper {
    words: Vec<String>,
}

impl Completer for SqlHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == ',' || c == '(')
            .map_or(0, |i| i + 1);
        let word = &before[start..];
        let candidates = self
            .words
            .iter()
            .filter(|w| w.starts_with(word) || w.to_lowercase().starts_with(&word.to_lowercase()))
            .map(|w| Pair {
                display: w.clone(),
                replacement: w.clone(),
            })
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for SqlHelper {
    type Hint = String;
}
impl Highlighter for SqlHelper {}
impl Validator for SqlHelper {}
impl Helper for SqlHelper {}

/// A table name as SQL must write it.
fn quoted(name: &str) -> String {
    retl_engine::query::quote_if_needed(name)
}

/// The tables a query can read, as `(schema, table)`.
async fn tables(ctx: &Context) -> Result<Vec<(String, String)>, CliError> {
    let batches = query_batches(ctx, TABLES_QUERY, 0).await?;
    let mut out = Vec::new();
    for batch in &batches {
        let text = |i: usize| {
            datafusion::arrow::compute::cast(
                batch.column(i),
                &datafusion::arrow::datatypes::DataType::Utf8,
            )
            .ok()
            .and_then(|a| {
                a.as_any()
                    .downcast_ref::<datafusion::arrow::array::StringArray>()
                    .cloned()
            })
        };
        if let (Some(schemas), Some(names)) = (text(0), text(1)) {
            for row in 0..batch.num_rows() {
                out.push((schemas.value(row).to_string(), names.value(row).to_string()));
            }
        }
    }
    Ok(out)
}

fn history_path() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::PathBuf::from(home).join(".retl_history"))
}

/// Runs the prompt until `\q` or end of input.
///
/// # Errors
/// The terminal cannot be used; a query error is printed, not returned.
pub async fn run(ctx: &Context, limit: u64) -> Result<(), CliError> {
    let listed = tables(ctx).await?;
    let mut words: Vec<String> = Vec::new();
    for (schema, table) in &listed {
        words.push(quoted(table));
        words.push(format!("{schema}.{}", quoted(table)));
    }
    for keyword in [
        "SELECT", "FROM", "WHERE", "GROUP BY", "ORDER BY", "LIMIT", "JOIN", "count(*)",
    ] {
        words.push(keyword.to_string());
    }
    words.sort();
    words.dedup();
    let mut editor: Editor<SqlHelper, DefaultHistory> =
        Editor::new().map_err(|e| CliError::Usage(format!("cannot open the prompt: {e}")))?;
    editor.set_helper(Some(SqlHelper { words }));
    let history = history_path();
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    outln!("retl sql: statements end with ';'. \\dt lists the tables, \\q quits.");
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() {
            "retl> "
        } else {
            "  ... "
        };
        let (back, line) = tokio::task::spawn_blocking(move || {
            let line = editor.readline(prompt);
            (editor, line)
        })
        .await
        .map_err(|e| CliError::Usage(format!("the prompt stopped: {e}")))?;
        editor = back;
        let line = match line {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                statement.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(CliError::Usage(format!("the prompt stopped: {e}"))),
        };
        let trimmed = line.trim();
        if statement.is_empty() {
            match trimmed {
                "" => continue,
                "\\q" | "quit" | "exit" => break,
                "\\dt" => {
                    for (schema, table) in &listed {
                        outln!("{schema}.{}", quoted(table));
                    }
                    continue;
                }
                _ => {}
            }
        }
        statement.push_str(&line);
        statement.push('\n');
        if !trimmed.ends_with(';') {
            continue;
        }
        let sql = std::mem::take(&mut statement);
        let _ = editor.add_history_entry(sql.trim());
        match query_batches(ctx, sql.trim().trim_end_matches(';'), limit).await {
            Ok(batches) => print(ctx.output, &batches)?,
            Err(e) => eprintln!("{e}"),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}
