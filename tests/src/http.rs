//! A small HTTP/1.1 file server on 127.0.0.1 for download tests: GET and HEAD, `Range:
//! bytes=N-` (and `N-M`) with `If-Range`, redirects, counters of requests and body bytes, and
//! injected faults (an error status, ranges ignored, a connection dropped or stalled after N
//! bytes, a slow link). One thread per connection, every response `Connection: close`; the
//! server stops when dropped.

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Faults injected into the responses for one path.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer with this status (and a short body) instead of the file.
    pub status: Option<u16>,
    /// Answer every request with the whole file (200), as servers without range support do.
    pub ignore_ranges: bool,
    /// Close the connection after this many body bytes.
    pub drop_after: Option<u64>,
    /// Send this many body bytes, then nothing more until the server is dropped.
    pub stall_after: Option<u64>,
}

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `HEAD`, ...
    pub method: String,
    /// The request path.
    pub path: String,
    /// The `Range` header, if any.
    pub range: Option<String>,
    /// The status answered.
    pub status: u16,
}

enum Route {
    File { body: Arc<Vec<u8>>, etag: String },
    Redirect(String),
}

#[derive(Default)]
struct State {
    routes: Mutex<HashMap<String, Route>>,
    faults: Mutex<HashMap<String, Faults>>,
    once: Mutex<HashMap<String, VecDeque<Faults>>>,
    requests: Mutex<Vec<Request>>,
    body_bytes: AtomicU64,
    chunk_delay: Mutex<Duration>,
    shutdown: AtomicBool,
}

/// The server; see the module docs.
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    accept: Option<JoinHandle<()>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Server {
    /// Starts a server on an ephemeral port of 127.0.0.1.
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let accept = {
            let state = Arc::clone(&state);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if state.shutdown.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            })
        };
        Server {
            addr,
            state,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Serves `body` at `path` (replacing what was there, with a new ETag).
    pub fn put(&self, path: &str, body: impl Into<Vec<u8>>) {
        let body: Vec<u8> = body.into();
        // FNV-1a: a content-derived ETag, so a replaced file fails `If-Range`.
        let hash = body.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let etag = format!("\"{:x}-{hash:016x}\"", body.len());
        let body = Arc::new(body);
        locked(&self.state.routes).insert(path.into(), Route::File { body, etag });
    }

    /// Answers `from` with a 302 to `to` (a path on this server).
    pub fn redirect(&self, from: &str, to: &str) {
        let to = self.url(to);
        locked(&self.state.routes).insert(from.into(), Route::Redirect(to));
    }

    /// Injects `faults` into every following response for `path`.
    pub fn set_faults(&self, path: &str, faults: Faults) {
        locked(&self.state.faults).insert(path.into(), faults);
    }

    /// Injects `faults` into the next response for `path` only (before any set with
    /// [`Server::set_faults`]).
    pub fn fault_once(&self, path: &str, faults: Faults) {
        locked(&self.state.once)
            .entry(path.into())
            .or_default()
            .push_back(faults);
    }

    /// Removes every injected fault.
    pub fn clear_faults(&self) {
        locked(&self.state.faults).clear();
        locked(&self.state.once).clear();
    }

    /// Sleeps this long after each 64 KiB of body: a slow link, so that downloads overlap.
    pub fn set_chunk_delay(&self, delay: Duration) {
        *locked(&self.state.chunk_delay) = delay;
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        locked(&self.state.requests).clone()
    }

    /// The `GET` requests for `path` so far.
    pub fn gets(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && r.path == path)
            .collect()
    }

    /// Body bytes written to clients so far.
    pub fn body_bytes(&self) -> u64 {
        self.state.body_bytes.load(Ordering::SeqCst)
    }

    /// Forgets the requests and bytes counted so far.
    pub fn reset_counters(&self) {
        locked(&self.state.requests).clear();
        self.state.body_bytes.store(0, Ordering::SeqCst);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.state.shutdown.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn serve(stream: TcpStream, state: &State) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Ok(());
    };
    let (method, path) = (method.to_owned(), path.to_owned());
    let mut headers = HashMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let faults = locked(&state.once)
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .or_else(|| locked(&state.faults).get(&path).cloned())
        .unwrap_or_default();
    let range = headers.get("range").cloned();
    let record = |status: u16| {
        locked(&state.requests).push(Request {
            method: method.clone(),
            path: path.clone(),
            range: range.clone(),
            status,
        });
    };
    let mut out = stream;
    let route = match locked(&state.routes).get(&path) {
        _ if faults.status.is_some() => None,
        Some(Route::Redirect(to)) => Some(Err(to.clone())),
        Some(Route::File { body, etag }) => Some(Ok((Arc::clone(body), etag.clone()))),
        None => None,
    };
    let (body, etag) = match route {
        None => {
            let status = faults.status.unwrap_or(404);
            record(status);
            let text = format!("status {status} for {path}\n");
            return write!(
                out,
                "HTTP/1.1 {status} Status\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                text.len()
            );
        }
        Some(Err(to)) => {
            record(302);
            return write!(
                out,
                "HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Some(Ok(file)) => file,
    };
    let len = body.len() as u64;
    let honoured = range
        .as_deref()
        .filter(|_| !faults.ignore_ranges)
        .filter(|_| headers.get("if-range").is_none_or(|v| *v == etag))
        .and_then(parse_range);
    let accept_ranges = if faults.ignore_ranges {
        ""
    } else {
        "Accept-Ranges: bytes\r\n"
    };
    let common = format!("{accept_ranges}ETag: {etag}\r\nConnection: close\r\n");
    let (start, end) = match honoured {
        Some((start, _)) if start >= len => {
            record(416);
            return write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\n\
                 Content-Length: 0\r\n{common}\r\n"
            );
        }
        Some((start, end)) => {
            let end = end.map_or(len, |e| (e + 1).min(len));
            record(206);
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {start}-{}/{len}\r\n\
                 Content-Length: {}\r\n{common}\r\n",
                end - 1,
                end - start
            )?;
            (start, end)
        }
        None => {
            record(200);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n{common}\r\n"
            )?;
            (0, len)
        }
    };
    if method == "HEAD" {
        return Ok(());
    }
    let limit = faults.drop_after.or(faults.stall_after).unwrap_or(u64::MAX);
    let delay = *locked(&state.chunk_delay);
    let mut sent = 0u64;
    let mut at = start;
    while at < end && sent < limit {
        let n = (end - at).min(64 * 1024).min(limit - sent);
        out.write_all(&body[at as usize..(at + n) as usize])?;
        state.body_bytes.fetch_add(n, Ordering::SeqCst);
        at += n;
        sent += n;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
    out.flush()?;
    if faults.stall_after.is_some() && at < end {
        while !state.shutdown.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(())
}

/// `bytes=N-` or `bytes=N-M` → (N, M).
fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let (start, end) = value.trim().strip_prefix("bytes=")?.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some((start, end))
}

/// `len` pseudo-random bytes (xorshift), different for each `seed`: incompressible payloads.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
