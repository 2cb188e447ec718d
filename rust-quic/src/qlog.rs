//! qlog (draft-ietf-quic-qlog-main-schema and -h3-events, JSON-SEQ): one file
//! per connection, `<trace id>-<server|client>.sqlog` in a directory (`$QLOGDIR`
//! when a context is made, as quiche's, ngtcp2's and curl's tools read it, or
//! set per context). quiche writes the transport's events; the engine adds
//! HTTP/3's from its own framing (header blocks parsed and created, SETTINGS),
//! which quiche's h3 module would write but ours replaces. Nothing is written,
//! or formatted, for a connection without a qlog.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use qlog::events::http3::{FrameCreated, FrameParsed, Http3Frame, HttpHeader, Setting};
use qlog::events::EventData;

use crate::http3::FieldRef;

/// Where qlogs go when a context is made: `$QLOGDIR`, if set.
pub fn dir_from_env() -> Option<PathBuf> {
    std::env::var_os("QLOGDIR").filter(|p| !p.is_empty()).map(PathBuf::from)
}

/// Starts `conn`'s qlog in `dir` (right after the connection is made, so its
/// first packets are in it). A file that cannot be made is reported once on
/// stderr; the connection works as without it.
pub(crate) fn attach(conn: &mut quiche::Connection, dir: &Path) {
    let side = if conn.is_server() { "server" } else { "client" };
    let name = format!("{}-{side}.sqlog", conn.trace_id());
    match File::create(dir.join(&name)) {
        // Unbuffered: each event is written whole as it happens, so a process
        // that exits without closing its connections loses none.
        Ok(file) => conn.set_qlog(Box::new(file), "rust-quic".into(), format!("{side} connection {}", conn.trace_id())),
        Err(e) => {
            static REPORTED: AtomicBool = AtomicBool::new(false);
            if !REPORTED.swap(true, Ordering::Relaxed) {
                eprintln!("rust-quic: qlog: cannot write {}: {e}", dir.join(&name).display());
            }
        }
    }
}

fn header(f: FieldRef<'_>) -> HttpHeader {
    HttpHeader {
        name: Some(String::from_utf8_lossy(f.name).into_owned()),
        value: Some(String::from_utf8_lossy(f.value).into_owned()),
        name_bytes: None,
        value_bytes: None,
    }
}

fn add(conn: &mut quiche::Connection, event: impl FnOnce() -> EventData) {
    if let Some(q) = conn.qlog_streamer() {
        let _ = q.add_event_data_now(event());
    }
}

/// A header block, parsed (received) or created (sent), on `stream_id`.
pub(crate) fn headers<'a>(
    conn: &mut quiche::Connection,
    stream_id: u64,
    fields: impl Iterator<Item = FieldRef<'a>>,
    parsed: bool,
) {
    add(conn, || {
        let frame = Http3Frame::Headers { headers: fields.map(header).collect(), raw: None };
        if parsed {
            EventData::Http3FrameParsed(FrameParsed { stream_id, frame, ..Default::default() })
        } else {
            EventData::Http3FrameCreated(FrameCreated { stream_id, frame, length: None, raw: None })
        }
    });
}

/// A SETTINGS frame, parsed or created, on control stream `stream_id`: its
/// (identifier, value) pairs, computed only when the connection keeps a qlog.
pub(crate) fn settings(
    conn: &mut quiche::Connection,
    stream_id: u64,
    pairs: impl FnOnce() -> Vec<(u64, u64)>,
    parsed: bool,
) {
    add(conn, || {
        let settings =
            pairs().into_iter().map(|(id, value)| Setting { name: None, name_bytes: Some(id), value }).collect();
        let frame = Http3Frame::Settings { settings, raw: None };
        if parsed {
            EventData::Http3FrameParsed(FrameParsed { stream_id, frame, ..Default::default() })
        } else {
            EventData::Http3FrameCreated(FrameCreated { stream_id, frame, length: None, raw: None })
        }
    });
}
