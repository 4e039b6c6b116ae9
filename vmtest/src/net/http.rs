//! The HTTP server a PXE segment's iPXE chainloads its kernel and initrd from.
//!
//! Deliberately small: GET and HEAD of regular files under one root, HTTP/1.0 and 1.1 with
//! keep-alive and pipelined requests (iPXE reuses one connection for sequential fetches), a
//! thread per connection, files streamed in chunks. Every request is logged as a
//! [`Request`] when its response has finished, so a test can tell which files a VM fetched and
//! whether each transfer completed.
//!
//! Kept in one file above 600 lines on purpose: request parsing, range-free file streaming and
//! connection reuse share the connection's state machine, and split apart each would read as
//! half of it.

use std::fs::File;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::record::{Outcome, Protocol, Request};
use crate::error::{Error, IoContext, Result};

/// How often the accept loop looks at its stop flag while no client connects.
const ACCEPT_POLL: Duration = Duration::from_millis(50);
/// How long a connection may sit without a complete request before it is closed. iPXE opens a
/// new connection when a pooled one was closed, so this only frees idle threads.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one write may block on a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a closing connection waits for the client to close its side (see `linger`).
const LINGER: Duration = Duration::from_secs(2);
/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Size of the chunks a file is streamed in.
const CHUNK: usize = 256 * 1024;

/// A running HTTP server; stops when dropped.
#[derive(Debug)]
pub(crate) struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves the files under `root` on `listener` until dropped, logging every request to
    /// `log`. The listener is created by the caller, inside the segment's namespace.
    pub fn start(
        listener: TcpListener,
        root: PathBuf,
        log: Arc<Mutex<Vec<Request>>>,
    ) -> Result<HttpServer> {
        // Resolved once so that every served path can be checked against it after its own
        // symlinks are resolved.
        let root = root.canonicalize().context(|| {
            format!(
                "opening the HTTP payload root {}; create it before starting the server",
                root.display()
            )
        })?;
        if !root.is_dir() {
            return Err(Error::Invalid {
                what: "HTTP payload root",
                message: format!("{} is not a directory", root.display()),
            });
        }
        let addr = listener
            .local_addr()
            .context(|| "reading the HTTP listener's address".to_owned())?;
        // Nonblocking accept polled with a short sleep: the loop must notice the stop flag,
        // and a blocking accept inside another namespace cannot be woken by connecting to it.
        listener
            .set_nonblocking(true)
            .context(|| format!("making the HTTP listener on {addr} nonblocking"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let shared = Arc::new(Shared { root, log });
        let thread = std::thread::Builder::new()
            .name(format!("vmtest-http-{addr}"))
            .spawn({
                let stop = stop.clone();
                move || accept_loop(&listener, &shared, &stop)
            })
            .context(|| format!("starting the HTTP server thread on {addr}"))?;
        tracing::debug!(%addr, "HTTP server started");
        Ok(HttpServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The accept loop closes every open connection and joins their threads.
            let _ = thread.join();
        }
    }
}

/// What every connection thread needs.
#[derive(Debug)]
struct Shared {
    /// The canonical payload root.
    root: PathBuf,
    log: Arc<Mutex<Vec<Request>>>,
}

/// An open connection: its thread, and a handle to shut its socket down when stopping.
struct Open {
    thread: JoinHandle<()>,
    stream: TcpStream,
}

/// Accepts connections until `stop` is set, then closes the open ones and waits for them.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, stop: &AtomicBool) {
    let mut open: Vec<Open> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        open.retain(|c| !c.thread.is_finished());
        match listener.accept() {
            Ok((stream, peer)) => match spawn_connection(stream, peer, shared) {
                Ok(c) => open.push(c),
                Err(e) => tracing::warn!(%peer, "HTTP connection dropped: {e}"),
            },
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                // ECONNABORTED, EMFILE and the like concern one connection, not the server.
                tracing::warn!("HTTP accept failed: {e}");
                std::thread::sleep(ACCEPT_POLL);
            }
        }
    }
    // Shutting the sockets down wakes threads blocked reading or writing, so the server stops
    // at once even with idle keep-alive connections or a client that stopped reading.
    for c in &open {
        let _ = c.stream.shutdown(Shutdown::Both);
    }
    for c in open {
        let _ = c.thread.join();
    }
}

/// Starts the thread serving one connection.
fn spawn_connection(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>) -> io::Result<Open> {
    // Accepted sockets may inherit the listener's nonblocking mode on some platforms.
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let handle = stream.try_clone()?;
    let shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("vmtest-http-{peer}"))
        .spawn(move || {
            let mut conn = Connection {
                stream,
                buf: Vec::new(),
                client: peer.ip().to_canonical(),
            };
            if let Err(e) = conn.serve(&shared) {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        })?;
    Ok(Open {
        thread,
        stream: handle,
    })
}

/// One client connection and the bytes read from it but not yet parsed (pipelined requests).
struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
    client: IpAddr,
}

/// A parsed request head.
#[derive(Debug)]
struct Head {
    method: String,
    target: String,
    /// Whether the connection stays open after the response.
    keep_alive: bool,
    /// Whether the request announced a body (which this server never reads).
    has_body: bool,
}

/// How a response ended, as logged.
struct Ended {
    bytes: u64,
    outcome: Outcome,
    result: String,
    /// Whether the connection can carry another request.
    reusable: bool,
}

impl Connection {
    /// Serves requests until the client closes, asks to close, or an error ends the connection.
    fn serve(&mut self, shared: &Shared) -> io::Result<()> {
        loop {
            let Some(head) = self.read_head()? else {
                return Ok(());
            };
            let head = match parse_head(&head) {
                Ok(h) => h,
                Err(why) => {
                    let outcome =
                        self.respond_error(400, "Bad Request", &format!("{why}\n"), false, false);
                    self.log(shared, String::new(), &outcome);
                    self.linger();
                    return Ok(());
                }
            };
            let (file, outcome) = self.respond(shared, &head);
            self.log(shared, file, &outcome);
            if !outcome.reusable {
                self.linger();
                return Ok(());
            }
        }
    }

    /// Closes gracefully after a final response: closing a socket that still has unread input
    /// (a request body, pipelined requests) makes the kernel send a reset, which can destroy
    /// the response before the client has read it. So: send FIN, then read and discard until
    /// the client closes too, for at most LINGER.
    fn linger(&mut self) {
        if self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        let deadline = Instant::now() + LINGER;
        let mut sink = [0u8; 4096];
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            if left.is_zero() || self.stream.set_read_timeout(Some(left)).is_err() {
                return;
            }
            match self.stream.read(&mut sink) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    /// Reads the next request head, up to and including its blank line; `None` when the
    /// client closed the connection (or let it idle out) between requests.
    fn read_head(&mut self) -> io::Result<Option<Vec<u8>>> {
        loop {
            // Blank lines before a request line are allowed (RFC 9112, section 2.2).
            let skip = self
                .buf
                .iter()
                .take_while(|&&b| b == b'\r' || b == b'\n')
                .count();
            self.buf.drain(..skip);
            if let Some(end) = head_end(&self.buf) {
                let rest = self.buf.split_off(end);
                return Ok(Some(std::mem::replace(&mut self.buf, rest)));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "request head longer than 16 KiB",
                ));
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers one parsed request; returns the file as logged and how the response ended.
    fn respond(&mut self, shared: &Shared, head: &Head) -> (String, Ended) {
        let Some(path) = request_path(&head.target) else {
            let file = head.target.trim_start_matches('/').to_owned();
            let body = "the path is not valid percent-encoded UTF-8\n";
            return (
                file,
                self.respond_error(400, "Bad Request", body, false, false),
            );
        };
        let file = path.trim_start_matches('/').to_owned();
        let is_head = head.method == "HEAD";
        // A request body is never read, so the connection cannot carry another request.
        let reusable = head.keep_alive && !head.has_body;
        if head.method != "GET" && !is_head {
            let body = format!("{} is not served here; use GET or HEAD\n", head.method);
            let outcome = self.respond_error(405, "Method Not Allowed", &body, false, false);
            return (file, outcome);
        }
        let outcome = match resolve(&shared.root, &path) {
            Ok(full) => self.send_file(&full, &file, is_head, reusable),
            Err(Refused::NotFound) => {
                let body = format!("{file} not found under the payload root\n");
                self.respond_error(404, "Not Found", &body, is_head, reusable)
            }
            Err(Refused::Forbidden) => {
                let body = format!("{file} is outside the payload root\n");
                self.respond_error(403, "Forbidden", &body, is_head, reusable)
            }
        };
        (file, outcome)
    }

    /// Sends a file's headers and, unless `is_head`, its content in chunks.
    fn send_file(&mut self, full: &Path, file: &str, is_head: bool, reusable: bool) -> Ended {
        let opened = File::open(full).and_then(|f| {
            let meta = f.metadata()?;
            Ok((f, meta))
        });
        let (mut f, meta) = match opened {
            Ok((f, meta)) if meta.is_file() => (f, meta),
            Ok(_) => {
                let body = format!("{file} is not a regular file\n");
                return self.respond_error(404, "Not Found", &body, is_head, reusable);
            }
            Err(e) => {
                let body = format!("{file} could not be opened: {e}\n");
                return self.respond_error(404, "Not Found", &body, is_head, reusable);
            }
        };
        let length = meta.len();
        let head = response_head(200, "OK", length, content_type(file), reusable, &[]);
        if let Err(e) = self.stream.write_all(head.as_bytes()) {
            return cut_short(0, &e);
        }
        if is_head {
            // Nothing of the file was sent: a HEAD does not count as serving it.
            return Ended {
                bytes: 0,
                outcome: Outcome::HeadersOnly,
                result: "200 OK (HEAD, no body)".to_owned(),
                reusable,
            };
        }
        let mut chunk = vec![0u8; CHUNK.min(length.max(1) as usize)];
        let mut sent = 0u64;
        while sent < length {
            let want = chunk.len().min((length - sent) as usize);
            let n = match f.read(&mut chunk[..want]) {
                Ok(0) => {
                    let e = io::Error::new(
                        ErrorKind::UnexpectedEof,
                        format!("{file} shrank to {sent} bytes while being sent"),
                    );
                    return cut_short(sent, &e);
                }
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return cut_short(sent, &e),
            };
            // Written piece by piece so the log counts exactly the bytes the client got.
            let mut piece = &chunk[..n];
            while !piece.is_empty() {
                match self.stream.write(piece) {
                    Ok(0) => return cut_short(sent, &ErrorKind::WriteZero.into()),
                    Ok(w) => {
                        sent += w as u64;
                        piece = &piece[w..];
                    }
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return cut_short(sent, &e),
                }
            }
        }
        Ended {
            bytes: sent,
            outcome: Outcome::Served,
            result: "200 OK".to_owned(),
            reusable,
        }
    }

    /// Sends an error status with a short text body (headers only for a HEAD).
    fn respond_error(
        &mut self,
        status: u16,
        reason: &str,
        body: &str,
        is_head: bool,
        reusable: bool,
    ) -> Ended {
        let extra: &[&str] = if status == 405 {
            &["Allow: GET, HEAD"]
        } else {
            &[]
        };
        let mut response = response_head(
            status,
            reason,
            body.len() as u64,
            "text/plain; charset=utf-8",
            reusable,
            extra,
        );
        if !is_head {
            response.push_str(body);
        }
        let written = self.stream.write_all(response.as_bytes());
        Ended {
            bytes: 0,
            outcome: if status == 404 {
                Outcome::NotFound
            } else {
                Outcome::Refused
            },
            result: format!("{status} {reason}"),
            reusable: reusable && written.is_ok(),
        }
    }

    /// Appends the finished request to the segment's log.
    fn log(&self, shared: &Shared, file: String, outcome: &Ended) {
        tracing::debug!(
            client = %self.client,
            file,
            bytes = outcome.bytes,
            result = outcome.result,
            "HTTP request"
        );
        lock(&shared.log).push(Request {
            protocol: Protocol::Http,
            file,
            client: self.client,
            bytes: outcome.bytes,
            ok: outcome.outcome == Outcome::Served,
            outcome: outcome.outcome,
            result: outcome.result.clone(),
            at: SystemTime::now(),
        });
    }
}

/// The outcome of a 200 whose body could not be sent whole.
fn cut_short(sent: u64, e: &io::Error) -> Ended {
    Ended {
        bytes: sent,
        outcome: Outcome::CutShort,
        result: format!("200 OK, cut short after {sent} bytes: {e}"),
        reusable: false,
    }
}

/// Locks the log even if a thread panicked while holding it: the entries are still valid.
fn lock(log: &Mutex<Vec<Request>>) -> MutexGuard<'_, Vec<Request>> {
    log.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where the head in `buf` ends (just past its blank line), if it is complete.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = buf[i..].iter().position(|&b| b == b'\n') {
        let next = i + nl + 1;
        match buf.get(next..) {
            Some([b'\n', ..]) => return Some(next + 1),
            Some([b'\r', b'\n', ..]) => return Some(next + 2),
            _ => i = next,
        }
    }
    None
}

/// Parses a request line and the headers this server cares about.
fn parse_head(raw: &[u8]) -> std::result::Result<Head, String> {
    let text = std::str::from_utf8(raw).map_err(|_| "request head is not UTF-8".to_owned())?;
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("malformed request line {request_line:?}"));
    };
    let mut keep_alive = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(format!("unsupported HTTP version {version:?}")),
    };
    let mut has_body = false;
    for line in lines.filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("malformed header line {line:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case("content-length") {
            has_body |= value != "0";
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            has_body = true;
        }
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        keep_alive,
        has_body,
    })
}

/// The decoded path of a request target, without query or fragment; `None` when it does not
/// decode to UTF-8 without NUL bytes.
fn request_path(target: &str) -> Option<String> {
    // The absolute form (`http://host/path`) is what a client sends to a proxy; take its path.
    let target = match target.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => target,
    };
    let raw = target.split(['?', '#']).next().unwrap_or_default();
    let decoded = String::from_utf8(percent_decode(raw)?).ok()?;
    (!decoded.contains('\0')).then_some(decoded)
}

/// Decodes `%XX` escapes; `None` for a malformed escape.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Why a path is not served.
#[derive(Debug, PartialEq, Eq)]
enum Refused {
    NotFound,
    Forbidden,
}

/// The file under `root` a decoded request path names, symlinks resolved.
fn resolve(root: &Path, path: &str) -> std::result::Result<PathBuf, Refused> {
    let mut full = root.to_path_buf();
    // Leading and doubled slashes are ignored (`//vmlinuz` is `vmlinuz`), never taken as an
    // absolute path; `..` is refused outright rather than resolved.
    for component in Path::new(path.trim_start_matches('/')).components() {
        match component {
            Component::Normal(part) => full.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(Refused::Forbidden)
            }
        }
    }
    // A symlink may point anywhere; what it resolves to must still be under the root.
    let real = full.canonicalize().map_err(|_| Refused::NotFound)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(Refused::Forbidden)
    }
}

/// The Content-Type a file is sent with.
fn content_type(file: &str) -> &'static str {
    if file.ends_with(".ipxe") {
        "text/plain"
    } else {
        "application/octet-stream"
    }
}

/// A response's status line and headers, up to and including the blank line.
fn response_head(
    status: u16,
    reason: &str,
    length: u64,
    content_type: &str,
    keep_alive: bool,
    extra: &[&str],
) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nServer: vmtest\r\nContent-Length: {length}\r\n\
         Content-Type: {content_type}\r\nConnection: {connection}\r\n"
    );
    for line in extra {
        head.push_str(line);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head
}

#[cfg(test)]
mod tests;
