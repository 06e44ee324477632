//! The deleted-keys spill file: the keys the diff found deleted are written here while the
//! extract is merged, and read back only once the extract is known complete (deletes never come
//! from a partial extract). Each key is a little-endian `u32` length followed by its bytes.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, StorageError};

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Storage(StorageError::io(path)(e))
}

/// Writes deleted keys to a spill file.
#[derive(Debug)]
pub struct DeleteSpillWriter {
    path: PathBuf,
    out: BufWriter<File>,
    count: u64,
}

impl DeleteSpillWriter {
    /// Creates (or truncates) the spill file at `path`.
    ///
    /// # Errors
    /// The file cannot be created.
    pub fn create(path: &Path) -> Result<Self, Error> {
        let file = File::create(path).map_err(io_error(path))?;
        Ok(DeleteSpillWriter {
            path: path.to_path_buf(),
            out: BufWriter::new(file),
            count: 0,
        })
    }

    /// Appends one encoded key.
    ///
    /// # Errors
    /// A write failed, or the key is longer than 4 GiB.
    pub fn push(&mut self, key: &[u8]) -> Result<(), Error> {
        let len = u32::try_from(key.len()).map_err(|_| Error::internal("key longer than 4 GiB"))?;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(key))
            .map_err(io_error(&self.path))?;
        self.count += 1;
        Ok(())
    }

    /// Keys written so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Flushes the file and returns it for reading.
    ///
    /// # Errors
    /// The flush failed.
    pub fn finish(mut self) -> Result<DeleteSpill, Error> {
        self.out.flush().map_err(io_error(&self.path))?;
        Ok(DeleteSpill {
            path: self.path,
            count: self.count,
        })
    }
}

/// A complete spill file of deleted keys.
#[derive(Debug)]
pub struct DeleteSpill {
    path: PathBuf,
    /// Keys in the file.
    pub count: u64,
}

impl DeleteSpill {
    /// Reads the keys back in the order they were written.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn reader(&self) -> Result<DeleteSpillReader, Error> {
        let file = File::open(&self.path).map_err(io_error(&self.path))?;
        Ok(DeleteSpillReader {
            path: self.path.clone(),
            input: BufReader::new(file),
        })
    }
}

/// Reads deleted keys back from a spill file.
#[derive(Debug)]
pub struct DeleteSpillReader {
    path: PathBuf,
    input: BufReader<File>,
}

impl DeleteSpillReader {
    /// The next key, or `None` at the end of the file.
    ///
    /// # Errors
    /// A read failed or the file ends inside a key (it was truncated).
    pub fn next_key(&mut self) -> Result<Option<Vec<u8>>, Error> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(io_error(&self.path)(e)),
        }
        let mut key = vec![0u8; u32::from_le_bytes(len) as usize];
        self.input
            .read_exact(&mut key)
            .map_err(io_error(&self.path))?;
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.deletes");
        let mut w = DeleteSpillWriter::create(&path).unwrap();
        for key in [&b"a"[..], b"", b"longer key \x00 with a zero"] {
            w.push(key).unwrap();
        }
        assert_eq!(w.count(), 3);
        let spill = w.finish().unwrap();
        let mut r = spill.reader().unwrap();
        let mut keys = Vec::new();
        while let Some(k) = r.next_key().unwrap() {
            keys.push(k);
        }
        assert_eq!(
            keys,
            vec![
                b"a".to_vec(),
                Vec::new(),
                b"longer key \x00 with a zero".to_vec()
            ]
        );
    }

    #[test]
    fn a_truncated_file_is_an_error_not_a_short_list() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.deletes");
        let mut w = DeleteSpillWriter::create(&path).unwrap();
        w.push(b"abcdef").unwrap();
        w.finish().unwrap();
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 2).unwrap();
        let spill = DeleteSpill {
            path: path.clone(),
            count: 1,
        };
        assert!(spill.reader().unwrap().next_key().is_err());
    }
}
