//! `retl top`: a live view of the running syncs (and those that just ended), one line per run,
//! refreshed every second from `ListSyncRuns` (the daemon overlays the live record of every
//! run in progress). Quits on `q`, Esc or Ctrl-C (keys are read only when stdin is a
//! terminal); `--once` prints one snapshot and exits.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant, SystemTime};

use clap::Args;
use retl_proto::v1;

use crate::cli::output::{Output, duration_ms, print_json, table};
use crate::cli::progress::{n, stage_name, status_name};
use crate::cli::{CliError, Client, Context};
use crate::grpc::json;

/// Runs fetched per refresh (newest first; every run in progress is among them unless more
/// than this many started after it).
const PAGE: i32 = 200;

/// Options of `retl top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Print one snapshot and exit (for scripts; `--output json` prints the runs as JSON).
    #[arg(long)]
    pub once: bool,
    /// Only runs of this mapping.
    #[arg(long)]
    pub mapping: Option<String>,
    /// Keep runs that ended on screen for this many seconds.
    #[arg(long, default_value_t = 10)]
    pub keep_ended: u64,
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..))]
    pub interval_ms: u64,
}

/// Seconds since the Unix epoch of a timestamp.
fn secs(t: Option<&prost_types::Timestamp>) -> Option<f64> {
    t.map(|t| t.seconds as f64 + f64::from(t.nanos) / 1e9)
}

/// The runs in progress, and those that ended less than `keep_ended` seconds before `now`.
fn shown(runs: Vec<v1::SyncRun>, now: f64, keep_ended: u64) -> Vec<v1::SyncRun> {
    let mut runs: Vec<v1::SyncRun> = runs
        .into_iter()
        .filter(|r| match secs(r.end_time.as_ref()) {
            None => matches!(r.status(), v1::RunStatus::Queued | v1::RunStatus::Running),
            Some(end) => now - end <= keep_ended as f64,
        })
        .collect();
    runs.sort_by(|a, b| a.mapping_id.cmp(&b.mapping_id).then(a.id.cmp(&b.id)));
    runs
}

async fn fetch(client: &Client, args: &TopArgs) -> Result<Vec<v1::SyncRun>, CliError> {
    let page = client
        .syncs()
        .list_sync_runs(v1::ListSyncRunsRequest {
            mapping_id: args.mapping.clone().unwrap_or_default(),
            page_size: PAGE,
            page_token: String::new(),
        })
        .await?
        .into_inner();
    Ok(page.sync_runs)
}

/// What a run has processed so far: rows extracted while extracting, then records settled.
fn processed(run: &v1::SyncRun) -> u64 {
    let c = run.counts.unwrap_or_default();
    match run.stage() {
        v1::RunStage::Queued | v1::RunStage::Extracting => c.extracted,
        _ => c.delivered + c.failed,
    }
}

/// Rates between two refreshes: the previous `processed` of each run and when it was read.
type Previous = HashMap<String, (u64, Instant)>;

/// The table of `runs` at `now` (seconds since the epoch); rows/s from the change since
/// `previous` when there is one, else the average since the run started.
fn render(runs: &[v1::SyncRun], now: f64, previous: &Previous, at: Instant) -> String {
    let rows: Vec<Vec<String>> = runs
        .iter()
        .map(|r| {
            let c = r.counts.unwrap_or_default();
            let start = secs(r.start_time.as_ref()).or(secs(r.create_time.as_ref()));
            let end = secs(r.end_time.as_ref()).unwrap_or(now);
            let elapsed = start.map_or(0.0, |s| (end - s).max(0.0));
            let done = processed(r);
            let rate = match previous.get(&r.id) {
                Some((before, then)) if r.end_time.is_none() => {
                    let dt = at.duration_since(*then).as_secs_f64();
                    if dt > 0.0 {
                        done.saturating_sub(*before) as f64 / dt
                    } else {
                        0.0
                    }
                }
                _ if elapsed > 0.0 => done as f64 / elapsed,
                _ => 0.0,
            };
            let state = if r.end_time.is_some() {
                status_name(r.status).to_string()
            } else if r.status() == v1::RunStatus::Queued {
                "queued".to_string()
            } else {
                stage_name(r.stage).to_string()
            };
            let pending = c.selected.saturating_sub(c.delivered + c.failed);
            vec![
                r.mapping_id.clone(),
                state,
                n(c.extracted),
                format!("{}/{}", n(c.delivered), n(c.selected)),
                n(rate.round() as u64),
                n(pending),
                n(c.failed),
                n(c.throttled),
                duration_ms((elapsed * 1000.0) as u64),
                r.id.clone(),
            ]
        })
        .collect();
    let running = runs.iter().filter(|r| r.end_time.is_none()).count();
    let mut out = format!(
        "retl top: {} in progress, {} just ended\n\n",
        running,
        runs.len() - running
    );
    if rows.is_empty() {
        out.push_str("no sync running\n");
    } else {
        out.push_str(&table(
            &[
                "MAPPING",
                "STAGE",
                "EXTRACTED",
                "DELIVERED/SELECTED",
                "ROWS/S",
                "PENDING",
                "FAILED",
                "THROTTLED",
                "ELAPSED",
                "RUN",
            ],
            &rows,
        ));
    }
    out
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Leaves the alternate screen and shows the cursor again, however `top` ends.
struct Screen;

impl Screen {
    fn enter() -> Screen {
        print!("\x1b[?1049h\x1b[?25l");
        let _ = std::io::stdout().flush();
        Screen
    }

    fn draw(&self, text: &str) {
        // Lines end in CRLF: the key reader may hold the terminal in raw mode.
        print!("\x1b[H\x1b[2J{}", text.replace('\n', "\r\n"));
        print!("\r\n(q or Ctrl-C to quit)");
        let _ = std::io::stdout().flush();
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        print!("\x1b[?25h\x1b[?1049l");
        let _ = std::io::stdout().flush();
    }
}

/// Reads keys on a thread of its own (a blocking read) and reports a quit key; `None` when
/// stdin is not a terminal.
fn watch_keys() -> Option<tokio::sync::mpsc::UnboundedReceiver<()>> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        let term = console::Term::stdout();
        loop {
            match term.read_key_raw() {
                Ok(console::Key::Char('q' | 'Q') | console::Key::Escape | console::Key::CtrlC) => {
                    let _ = tx.send(());
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });
    Some(rx)
}

/// The next quit key; never without a key reader.
async fn quit_key(keys: &mut Option<tokio::sync::mpsc::UnboundedReceiver<()>>) -> Option<()> {
    match keys {
        Some(k) => k.recv().await,
        None => std::future::pending().await,
    }
}

/// Runs `retl top`.
///
/// # Errors
/// The daemon cannot be reached or refuses the call.
pub async fn run(ctx: &Context, args: TopArgs) -> Result<(), CliError> {
    if args.once {
        let runs = shown(
            fetch(&ctx.client, &args).await?,
            now_secs(),
            args.keep_ended,
        );
        match ctx.output {
            Output::Json => print_json(&serde_json::Value::Array(
                runs.iter().map(json::sync_run).collect(),
            )),
            Output::Table | Output::Csv => print!(
                "{}",
                render(&runs, now_secs(), &Previous::new(), Instant::now())
            ),
        }
        return Ok(());
    }
    let live = std::io::stdout().is_terminal();
    let screen = live.then(Screen::enter);
    let mut keys = watch_keys();
    let mut previous = Previous::new();
    let interval = Duration::from_millis(args.interval_ms);
    loop {
        let runs = shown(
            fetch(&ctx.client, &args).await?,
            now_secs(),
            args.keep_ended,
        );
        let at = Instant::now();
        let text = render(&runs, now_secs(), &previous, at);
        match &screen {
            Some(s) => s.draw(&text),
            None => println!("{text}"),
        }
        previous = runs
            .iter()
            .map(|r| (r.id.clone(), (processed(r), at)))
            .collect();
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            Some(()) = quit_key(&mut keys) => break,
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    drop(screen);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: f64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp {
            seconds: s as i64,
            nanos: 0,
        })
    }

    fn run(id: &str, status: v1::RunStatus, end: Option<f64>) -> v1::SyncRun {
        v1::SyncRun {
            id: id.into(),
            mapping_id: format!("m-{id}"),
            status: status as i32,
            stage: v1::RunStage::Delivering as i32,
            start_time: ts(1000.0),
            end_time: end.and_then(ts),
            counts: Some(v1::RunCounts {
                extracted: 5000,
                selected: 4000,
                delivered: 2000,
                failed: 10,
                throttled: 3,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn shows_runs_in_progress_and_those_that_just_ended() {
        let runs = vec![
            run("a", v1::RunStatus::Running, None),
            run("b", v1::RunStatus::Succeeded, Some(1095.0)),
            run("c", v1::RunStatus::Failed, Some(1050.0)),
        ];
        let shown = shown(runs, 1100.0, 10);
        let ids: Vec<&str> = shown.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        let text = render(&shown, 1100.0, &Previous::new(), Instant::now());
        assert!(
            text.starts_with("retl top: 1 in progress, 1 just ended"),
            "{text}"
        );
        let line = text.lines().find(|l| l.starts_with("m-a")).unwrap();
        let cells: Vec<&str> = line.split_whitespace().collect();
        // mapping, stage (two words for deletes only), extracted, delivered/selected, rows/s
        // (2,010 settled in 100 s), pending, failed, throttled, elapsed, run.
        assert_eq!(
            cells,
            [
                "m-a",
                "delivering",
                "5,000",
                "2,000/4,000",
                "20",
                "1,990",
                "10",
                "3",
                "1m40s",
                "a"
            ]
        );
        assert!(text.contains("succeeded"), "{text}");
    }

    #[test]
    fn the_rate_is_the_change_since_the_last_refresh() {
        let r = run("a", v1::RunStatus::Running, None);
        let then = Instant::now();
        let at = then + Duration::from_secs(2);
        let previous = Previous::from([("a".to_string(), (1010, then))]);
        let text = render(&[r], 1100.0, &previous, at);
        let line = text.lines().find(|l| l.starts_with("m-a")).unwrap();
        assert!(line.split_whitespace().nth(4) == Some("500"), "{line}");
    }
}
