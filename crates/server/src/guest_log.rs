//! Guest stdout and stderr as host log lines, each tagged with function, version and request id.
//! An instance that serves many requests (WASI 0.3 reuse) tags each line with the request running
//! when the line was completed.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmzip_runtime::RequestScopes;

/// Longest line kept whole; longer output is logged in pieces of this size.
pub const MAX_LOG_LINE: usize = 16 * 1024;

/// Who wrote a line.
#[derive(Debug, Clone)]
pub struct LogTag {
    /// Function name.
    pub function: Arc<str>,
    /// Package version.
    pub version: Arc<str>,
    /// The request id.
    pub request_id: Arc<str>,
}

/// One of a guest's output streams.
#[derive(Clone)]
pub struct GuestLog {
    tag: LogTag,
    stream: &'static str,
    pending: Arc<Mutex<Vec<u8>>>,
    requests: Option<Arc<RequestScopes>>,
}

impl GuestLog {
    /// A log stream named `stream` (`stdout` or `stderr`).
    pub fn new(tag: LogTag, stream: &'static str) -> Self {
        GuestLog { tag, stream, pending: Arc::new(Mutex::new(Vec::new())), requests: None }
    }

    /// A log stream of an instance that serves many requests: a line is tagged with the request
    /// running when it is completed, else with `tag`'s id (the instance's).
    pub fn shared(tag: LogTag, stream: &'static str, requests: Arc<RequestScopes>) -> Self {
        GuestLog { requests: Some(requests), ..GuestLog::new(tag, stream) }
    }

    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\r', '\n']);
        let running = self.requests.as_ref().and_then(|r| r.current());
        let request_id = running.as_ref().map_or(&self.tag.request_id, |r| &r.trace_id);
        tracing::info!(
            target: "wasmzip::guest",
            function = %self.tag.function,
            version = %self.tag.version,
            request_id = %request_id,
            stream = self.stream,
            "{text}"
        );
    }

    fn write_bytes(&self, mut bytes: &[u8]) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(newline) = bytes.iter().position(|b| *b == b'\n') {
            pending.extend_from_slice(&bytes[..newline]);
            self.emit(&pending);
            pending.clear();
            bytes = &bytes[newline + 1..];
        }
        pending.extend_from_slice(bytes);
        while pending.len() >= MAX_LOG_LINE {
            let rest = pending.split_off(MAX_LOG_LINE);
            self.emit(&pending);
            *pending = rest;
        }
    }

    /// Logs what is left without a newline (called when the request ends).
    pub fn flush_partial(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if !pending.is_empty() {
            self.emit(&pending);
            pending.clear();
        }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for GuestLog {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
