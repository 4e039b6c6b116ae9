use super::*;
use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;

/// A server on 127.0.0.1 serving a temporary root.
struct Fixture {
    server: HttpServer,
    log: Arc<Mutex<Vec<Request>>>,
    root: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("boot.ipxe"), "#!ipxe\nchain vmlinuz\n").unwrap();
    std::fs::write(root.path().join("vmlinuz"), b"kernel bytes").unwrap();
    std::fs::create_dir(root.path().join("sub dir")).unwrap();
    std::fs::write(root.path().join("sub dir/initrd.img"), b"initrd").unwrap();
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let server = HttpServer::start(listener, root.path().to_owned(), log.clone()).unwrap();
    Fixture { server, log, root }
}

impl Fixture {
    fn connect(&self) -> BufReader<TcpStream> {
        let stream = TcpStream::connect(self.server.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        BufReader::new(stream)
    }

    /// Waits until the log holds `n` entries (they are appended after the response).
    fn log_of(&self, n: usize) -> Vec<Request> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = lock(&self.log).clone();
            if log.len() >= n || Instant::now() > deadline {
                assert_eq!(log.len(), n, "log entries: {log:#?}");
                return log;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A response as the test client read it.
#[derive(Debug)]
struct Response {
    status: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn send(conn: &mut BufReader<TcpStream>, request: &str) {
    conn.get_mut().write_all(request.as_bytes()).unwrap();
}

/// Reads one response; the body per Content-Length, none for a HEAD.
fn read_response(conn: &mut BufReader<TcpStream>, head_request: bool) -> Response {
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    let status = status
        .trim_end()
        .strip_prefix("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("bad status line {status:?}"))
        .to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        conn.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (n, v) = line.split_once(':').unwrap();
        headers.push((n.to_owned(), v.trim().to_owned()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if !head_request {
        let length: usize = response.header("Content-Length").unwrap().parse().unwrap();
        response.body = vec![0; length];
        conn.read_exact(&mut response.body).unwrap();
    }
    response
}

fn get(f: &Fixture, path: &str) -> Response {
    let mut conn = f.connect();
    send(
        &mut conn,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"),
    );
    read_response(&mut conn, false)
}

/// Whether the server closed the connection (EOF on the next read).
fn closed(conn: &mut BufReader<TcpStream>) -> bool {
    let mut rest = Vec::new();
    conn.read_to_end(&mut rest).unwrap();
    rest.is_empty()
}

#[test]
fn get_serves_a_file_and_logs_it() {
    let f = fixture();
    let r = get(&f, "/vmlinuz");
    assert_eq!(r.status, "200 OK");
    assert_eq!(r.body, b"kernel bytes");
    assert_eq!(r.header("Content-Length"), Some("12"));
    assert_eq!(r.header("Content-Type"), Some("application/octet-stream"));
    let before = SystemTime::now();
    let log = f.log_of(1);
    let e = &log[0];
    assert_eq!(e.protocol, Protocol::Http);
    assert_eq!(e.file, "vmlinuz");
    assert_eq!(e.client, IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_eq!(e.bytes, 12);
    assert!(e.ok);
    assert_eq!(e.result, "200 OK");
    let age = before.duration_since(e.at).unwrap_or_default();
    assert!(age < Duration::from_secs(5), "logged at {:?}", e.at);
}

#[test]
fn ipxe_scripts_are_text_and_queries_are_ignored() {
    let f = fixture();
    let r = get(&f, "/boot.ipxe?mac=52:54:00:12:34:56");
    assert_eq!(r.status, "200 OK");
    assert_eq!(r.header("Content-Type"), Some("text/plain"));
    assert_eq!(r.body, b"#!ipxe\nchain vmlinuz\n");
    assert_eq!(f.log_of(1)[0].file, "boot.ipxe");
}

#[test]
fn paths_are_percent_decoded() {
    let f = fixture();
    let r = get(&f, "/sub%20dir/initrd.img");
    assert_eq!(r.status, "200 OK");
    assert_eq!(r.body, b"initrd");
    let r = get(&f, "//sub%20dir//./initrd.img");
    assert_eq!(r.status, "200 OK", "doubled slashes and `.` are harmless");
    let log = f.log_of(2);
    assert_eq!(log[0].file, "sub dir/initrd.img");
    assert!(log.iter().all(|e| e.ok));
}

#[test]
fn keep_alive_serves_sequential_and_pipelined_requests() {
    let f = fixture();
    let mut conn = f.connect();
    send(&mut conn, "GET /vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n");
    let first = read_response(&mut conn, false);
    assert_eq!(first.header("Connection"), Some("keep-alive"));
    send(&mut conn, "GET /boot.ipxe HTTP/1.1\r\nHost: x\r\n\r\n");
    let second = read_response(&mut conn, false);
    assert_eq!(first.body, b"kernel bytes");
    assert_eq!(second.body, b"#!ipxe\nchain vmlinuz\n");

    // Both requests in one write, the second asking to close afterwards.
    send(
        &mut conn,
        "GET /vmlinuz HTTP/1.1\r\nHost: x\r\n\r\n\
             GET /sub%20dir/initrd.img HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(read_response(&mut conn, false).body, b"kernel bytes");
    let last = read_response(&mut conn, false);
    assert_eq!(last.body, b"initrd");
    assert_eq!(last.header("Connection"), Some("close"));
    assert!(closed(&mut conn), "Connection: close is honoured");
    let files: Vec<_> = f.log_of(4).into_iter().map(|e| e.file).collect();
    assert_eq!(
        files,
        ["vmlinuz", "boot.ipxe", "vmlinuz", "sub dir/initrd.img"]
    );
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    let f = fixture();
    let mut conn = f.connect();
    send(&mut conn, "GET /vmlinuz HTTP/1.0\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).body, b"kernel bytes");
    assert!(closed(&mut conn));

    let mut conn = f.connect();
    send(
        &mut conn,
        "GET /vmlinuz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    assert_eq!(read_response(&mut conn, false).status, "200 OK");
    send(&mut conn, "GET /vmlinuz HTTP/1.0\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).status, "200 OK");
    assert!(closed(&mut conn));
}

#[test]
fn missing_files_are_404_and_logged_as_failed() {
    let f = fixture();
    let mut conn = f.connect();
    send(&mut conn, "GET /nope.img HTTP/1.1\r\n\r\n");
    let r = read_response(&mut conn, false);
    assert_eq!(r.status, "404 Not Found");
    // The connection survives a 404: iPXE may try another file on it.
    send(&mut conn, "GET /vmlinuz HTTP/1.1\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).status, "200 OK");
    let r = get(&f, "/sub%20dir");
    assert_eq!(r.status, "404 Not Found", "a directory is not a file");
    let log = f.log_of(3);
    assert_eq!(log[0].file, "nope.img");
    assert_eq!(log[0].result, "404 Not Found");
    assert_eq!(log[0].bytes, 0);
    assert!(!log[0].ok);
}

#[test]
fn traversal_and_escaping_symlinks_are_refused() {
    let f = fixture();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "secret").unwrap();
    std::os::unix::fs::symlink(outside.path().join("secret"), f.root.path().join("leak")).unwrap();
    std::os::unix::fs::symlink("vmlinuz", f.root.path().join("kernel")).unwrap();
    let dotdot = format!(
        "/../{}/secret",
        outside.path().file_name().unwrap().to_str().unwrap()
    );
    for path in [
        dotdot.as_str(),
        "/%2e%2e/%2e%2e/etc/passwd",
        "/sub%20dir/../../etc/passwd",
        "/..%2F..%2Fetc%2Fpasswd",
        "/leak",
    ] {
        let r = get(&f, path);
        assert_eq!(r.status, "403 Forbidden", "{path}");
        assert!(!String::from_utf8_lossy(&r.body).contains("secret\n"));
    }
    // A symlink that stays inside the root is fine.
    assert_eq!(get(&f, "/kernel").body, b"kernel bytes");
    let log = f.log_of(6);
    assert!(log[..5]
        .iter()
        .all(|e| !e.ok && e.result == "403 Forbidden"));
    assert_eq!(log[1].file, "../../etc/passwd");
}

#[test]
fn head_sends_headers_only() {
    let f = fixture();
    let mut conn = f.connect();
    send(&mut conn, "HEAD /vmlinuz HTTP/1.1\r\n\r\n");
    let r = read_response(&mut conn, true);
    assert_eq!(r.status, "200 OK");
    assert_eq!(r.header("Content-Length"), Some("12"));
    // The next response starts right after the headers: no body was sent.
    send(&mut conn, "GET /boot.ipxe HTTP/1.1\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).status, "200 OK");
    let log = f.log_of(2);
    assert_eq!(log[0].bytes, 0);
    assert!(!log[0].ok, "a HEAD does not count as serving the file");
    assert_eq!(log[0].result, "200 OK (HEAD, no body)");
}

#[test]
fn other_methods_are_405() {
    let f = fixture();
    let mut conn = f.connect();
    // A body larger than one read: the server never reads it, and must still close
    // without a reset that would destroy its response.
    let body = "x".repeat(200_000);
    send(
        &mut conn,
        &format!(
            "POST /vmlinuz HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    let r = read_response(&mut conn, false);
    assert_eq!(r.status, "405 Method Not Allowed");
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    assert!(closed(&mut conn), "an unread body ends the connection");
    let log = f.log_of(1);
    assert_eq!(log[0].result, "405 Method Not Allowed");
    assert!(!log[0].ok);
}

#[test]
fn garbage_is_400() {
    let f = fixture();
    let mut conn = f.connect();
    send(&mut conn, "HELLO\r\n\r\n");
    assert_eq!(read_response(&mut conn, false).status, "400 Bad Request");
    assert!(closed(&mut conn));
    assert_eq!(get(&f, "/bad%zz").status, "400 Bad Request");
    assert_eq!(f.log_of(2)[1].result, "400 Bad Request");
}

#[test]
fn big_files_are_streamed_whole() {
    let f = fixture();
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 7).map(|i| (i % 251) as u8).collect();
    std::fs::write(f.root.path().join("initrd.img"), &big).unwrap();
    let r = get(&f, "/initrd.img");
    assert_eq!(r.status, "200 OK");
    assert_eq!(
        r.header("Content-Length"),
        Some(big.len().to_string().as_str())
    );
    assert!(r.body == big, "body differs from the file");
    let log = f.log_of(1);
    assert_eq!(log[0].bytes, big.len() as u64);
    assert!(log[0].ok);
}

#[test]
fn a_client_that_leaves_early_is_logged_as_cut_short() {
    let f = fixture();
    let big = vec![7u8; 32 * 1024 * 1024];
    std::fs::write(f.root.path().join("huge.img"), &big).unwrap();
    let mut conn = f.connect();
    send(&mut conn, "GET /huge.img HTTP/1.1\r\n\r\n");
    let mut some = [0u8; 1024];
    conn.read_exact(&mut some).unwrap();
    drop(conn);
    let log = f.log_of(1);
    assert!(!log[0].ok);
    assert!(log[0].bytes < big.len() as u64);
    assert!(
        log[0].result.starts_with("200 OK, cut short after "),
        "{}",
        log[0].result
    );
}

#[test]
fn drop_stops_promptly_with_idle_connections_open() {
    let f = fixture();
    let addr = f.server.addr();
    let mut conn = f.connect();
    send(&mut conn, "GET /vmlinuz HTTP/1.1\r\n\r\n");
    read_response(&mut conn, false);
    let started = Instant::now();
    drop(f.server);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        closed(&mut conn),
        "the idle keep-alive connection was closed"
    );
    assert!(
        TcpStream::connect(addr).is_err(),
        "nothing listens any more"
    );
}

#[test]
fn a_missing_root_is_explained() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let err = HttpServer::start(listener, "/nonexistent/payload".into(), log).unwrap_err();
    assert!(err.to_string().contains("create it"), "{err}");
}
