//! TLS key logging in the NSS key log format (`SSLKEYLOGFILE`, as curl,
//! Firefox and Chromium write it), so a capture of our QUIC traffic decrypts
//! in Wireshark. One file per context, shared by its connections; quiche
//! hands each connection's secrets to the writer during the handshake.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where keys go when a context is created: `$SSLKEYLOGFILE`, if set.
pub fn path_from_env() -> Option<PathBuf> {
    std::env::var_os("SSLKEYLOGFILE").filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// An open key log, appended to (several processes may share one file: each
/// line is written whole).
#[derive(Clone)]
pub struct KeyLog(Arc<Mutex<File>>);

impl KeyLog {
    pub fn open(path: &Path) -> io::Result<KeyLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(KeyLog(Arc::new(Mutex::new(file))))
    }

    /// The writer for one connection (quiche takes it by value).
    pub fn writer(&self) -> Box<dyn Write + Send + Sync> {
        Box::new(LineWriter { log: self.clone(), line: Vec::new() })
    }
}

/// Collects a connection's output into lines and appends each one whole.
struct LineWriter {
    log: KeyLog,
    line: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.line.extend_from_slice(bytes);
        while let Some(end) = self.line.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.line.drain(..=end).collect();
            let mut file = self.log.0.lock().map_err(|_| io::Error::other("key log poisoned"))?;
            file.write_all(&line)?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_from_two_connections_stay_whole() {
        let path = std::env::temp_dir().join(format!("rust-quic-keylog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let log = KeyLog::open(&path).unwrap();
        let (mut a, mut b) = (log.writer(), log.writer());
        a.write_all(b"CLIENT_RANDOM aa").unwrap();
        b.write_all(b"CLIENT_RANDOM bb 22\n").unwrap();
        a.write_all(b" 11\nSECRET aa 33\n").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "CLIENT_RANDOM bb 22\nCLIENT_RANDOM aa 11\nSECRET aa 33\n");
        std::fs::remove_file(&path).unwrap();
    }
}
