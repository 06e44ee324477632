//! The file writer: appends encoded lines to `<directory>/<mapping id>/<run id>.jsonl` and
//! makes them durable before acknowledging.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use retl_engine::destination::{DeliveryContext, DestinationError};

/// Appends to the files of one destination directory.
#[derive(Debug)]
pub(crate) struct FileWriter {
    /// The configured directory.
    directory: PathBuf,
    /// Serialises appends of this destination so that two batches never interleave, whatever
    /// `max_in_flight` says.
    lock: tokio::sync::Mutex<()>,
}

fn io_error(path: &Path, action: &str, error: &std::io::Error) -> DestinationError {
    let hint = match error.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "; grant the daemon's user write access or choose another directory"
        }
        std::io::ErrorKind::StorageFull => "; free disk space",
        _ => "",
    };
    DestinationError::Io {
        path: path.display().to_string(),
        message: format!("could not {action}: {error}{hint}"),
    }
}

/// Checks that an id is safe as one path component (no separators, no `..`).
fn path_component(kind: &str, id: &str) -> Result<(), DestinationError> {
    let safe = !id.is_empty()
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if safe {
        Ok(())
    } else {
        Err(DestinationError::Rejected {
            message: format!("the {kind} id '{id}' cannot be used as a file name"),
        })
    }
}

impl FileWriter {
    /// A writer under `directory` (nothing is touched until the first write).
    pub(crate) fn new(directory: PathBuf) -> Self {
        FileWriter {
            directory,
            lock: tokio::sync::Mutex::new(()),
        }
    }

    /// The file of one run of one mapping.
    pub(crate) fn file_path(&self, ctx: &DeliveryContext) -> Result<PathBuf, DestinationError> {
        path_component("mapping", ctx.mapping_id.as_str())?;
        path_component("run", ctx.run_id.as_str())?;
        Ok(self
            .directory
            .join(ctx.mapping_id.as_str())
            .join(format!("{}.jsonl", ctx.run_id.as_str())))
    }

    /// Appends `lines` to the run's file and syncs it to disk. On a failed write the file is
    /// cut back to its previous length, so a retry never leaves a torn line behind.
    pub(crate) async fn append(
        &self,
        ctx: &DeliveryContext,
        lines: Vec<u8>,
    ) -> Result<(), DestinationError> {
        let path = self.file_path(ctx)?;
        let _guard = self.lock.lock().await;
        tokio::task::spawn_blocking(move || append_durably(&path, &lines))
            .await
            .map_err(|e| DestinationError::Io {
                path: self.directory.display().to_string(),
                message: format!("the write task failed: {e}"),
            })?
    }

    /// Checks that the directory exists or can be created, and is writable.
    pub(crate) async fn check_writable(&self) -> Result<String, DestinationError> {
        let directory = self.directory.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&directory)
                .map_err(|e| io_error(&directory, "create the directory", &e))?;
            let probe = directory.join(format!(".retl-write-test-{}", std::process::id()));
            let written = File::create(&probe)
                .and_then(|mut f| f.write_all(b"retl\n").and_then(|()| f.sync_all()));
            // Remove the probe even when the write failed part-way.
            let _ = std::fs::remove_file(&probe);
            written.map_err(|e| io_error(&directory, "write to the directory", &e))?;
            Ok(format!("directory {} is writable", directory.display()))
        })
        .await
        .map_err(|e| DestinationError::Io {
            path: self.directory.display().to_string(),
            message: format!("the check task failed: {e}"),
        })?
    }
}

/// Appends and fsyncs; syncs the parent directory too when the file is new.
fn append_durably(path: &Path, lines: &[u8]) -> Result<(), DestinationError> {
    let parent = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| io_error(parent, "create the directory", &e))?;
    let existed = path.exists();
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, "open the file for appending", &e))?;
    let before = file
        .metadata()
        .map_err(|e| io_error(path, "read the file's length", &e))?
        .len();
    if let Err(error) = file.write_all(lines).and_then(|()| file.sync_data()) {
        // Best effort: drop the partial batch so the retry starts on a line boundary.
        let _ = file.set_len(before);
        return Err(io_error(path, "append to the file", &error));
    }
    if !existed {
        File::open(parent)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io_error(parent, "sync the directory", &e))?;
    }
    Ok(())
}
