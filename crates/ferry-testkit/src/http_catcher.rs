//! [`ResponseCatcher`]: a tiny HTTP/1.1 server on `127.0.0.1` standing in for CloudFormation's
//! presigned `ResponseURL` and for a `WaitConditionHandle` URL. It records every request
//! (method, path and query, headers, body) and answers with an empty body and a status that
//! tests can change to exercise failures.
//!
//! It understands `Content-Length` and `Transfer-Encoding: chunked` bodies,
//! `Expect: 100-continue`, and several requests on one keep-alive connection.

use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often idle connections look at the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a started request may take to arrive completely.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound for a request head, to fail clearly on garbage.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// One request the catcher received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedRequest {
    /// `PUT`, `POST`, ... as sent.
    pub method: String,
    /// The request target as sent, e.g. `/cfn-response?X-Amz-Signature=abc` (not decoded).
    pub path_and_query: String,
    /// `HTTP/1.1` or `HTTP/1.0`.
    pub version: String,
    /// Header names lower-cased, values trimmed, in the order sent (repeats kept).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked when it came with `Transfer-Encoding: chunked`.
    pub body: Vec<u8>,
    /// Trailer fields of a chunked body (names lower-cased).
    pub trailers: Vec<(String, String)>,
}

impl CapturedRequest {
    /// The first value of header `name` (any case), `Some("")` for a header sent empty.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(path, _)| path)
    }

    /// The raw (not percent-decoded) value of query parameter `name`; `Some("")` for `?name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        let (_, query) = self.path_and_query.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }

    /// The body as UTF-8 (lossy).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Shared {
    requests: Mutex<Vec<CapturedRequest>>,
    arrived: Condvar,
    status: AtomicU16,
    stop: AtomicBool,
}

/// A running catcher; the server thread stops on drop.
pub struct ResponseCatcher {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl ResponseCatcher {
    /// Binds `127.0.0.1:0` and serves on a background thread, answering `200 OK`.
    pub fn start() -> ResponseCatcher {
        let listener = TcpListener::bind("127.0.0.1:0")
            .unwrap_or_else(|e| panic!("ResponseCatcher cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            status: AtomicU16::new(200),
            stop: AtomicBool::new(false),
        });
        let acceptor_shared = Arc::clone(&shared);
        let acceptor = std::thread::Builder::new()
            .name(format!("response-catcher-{}", addr.port()))
            .spawn(move || accept_loop(listener, acceptor_shared))
            .expect("cannot spawn the ResponseCatcher thread");
        ResponseCatcher {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `http://127.0.0.1:<port>` followed by `path_and_query` (a leading `/` is added if missing),
    /// e.g. `url("/cfn-response?X-Amz-Signature=abc")`.
    pub fn url(&self, path_and_query: &str) -> String {
        let slash = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!("http://{}{slash}{path_and_query}", self.addr)
    }

    /// The address the catcher listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<CapturedRequest> {
        self.lock().clone()
    }

    /// Blocks until at least `n` requests have arrived or `timeout` passes, then returns all
    /// received so far (possibly fewer than `n`).
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedRequest> {
        let deadline = Instant::now() + timeout;
        let mut requests = self.lock();
        while requests.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            requests = self
                .shared
                .arrived
                .wait_timeout(requests, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        requests.clone()
    }

    /// The status of every later response (default 200), e.g. 403 or 500 for fault tests.
    pub fn set_status(&self, status: u16) {
        assert!((100..=999).contains(&status), "bad HTTP status {status}");
        self.shared.status.store(status, Ordering::SeqCst);
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<CapturedRequest>> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ResponseCatcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept; connection threads notice the flag within IDLE_POLL.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        let conn_shared = Arc::clone(&shared);
        let _ = std::thread::Builder::new()
            .name("response-catcher-conn".into())
            .spawn(move || {
                let _ = serve_connection(stream, &conn_shared);
            });
    }
}

fn serve_connection(stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    loop {
        // Idle between requests: wake up regularly to notice a stop.
        reader.get_ref().set_read_timeout(Some(IDLE_POLL))?;
        match reader.fill_buf() {
            Ok([]) => return Ok(()), // the client closed
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if shared.stop.load(Ordering::SeqCst) {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        }
        reader.get_ref().set_read_timeout(Some(REQUEST_TIMEOUT))?;

        let request = match read_request(&mut reader, &mut writer) {
            Ok(request) => request,
            Err(e) => {
                let _ = writer.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let _ = writer.shutdown(Shutdown::Both);
                return Err(e);
            }
        };
        let close = wants_close(&request);
        {
            let mut requests = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
            requests.push(request);
            shared.arrived.notify_all();
        }
        let status = shared.status.load(Ordering::SeqCst);
        let connection = if close { "Connection: close\r\n" } else { "" };
        write!(
            writer,
            "HTTP/1.1 {status} {}\r\nContent-Length: 0\r\n{connection}\r\n",
            reason(status)
        )?;
        writer.flush()?;
        if close {
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn read_request(reader: &mut impl BufRead, writer: &mut impl Write) -> io::Result<CapturedRequest> {
    let mut head_bytes = 0;
    let request_line = read_line(reader, &mut head_bytes)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(invalid(format!("bad request line {request_line:?}")));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(invalid(format!("unsupported version {version:?}")));
    }
    let headers = read_fields(reader, &mut head_bytes)?;

    let mut request = CapturedRequest {
        method: method.to_string(),
        path_and_query: target.to_string(),
        version: version.to_string(),
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };

    let chunked = request
        .headers
        .iter()
        .filter(|(n, _)| n == "transfer-encoding")
        .flat_map(|(_, v)| v.split(','))
        .any(|coding| coding.trim().eq_ignore_ascii_case("chunked"));
    let content_length = match request.header("content-length") {
        Some(v) => Some(
            v.parse::<usize>()
                .map_err(|_| invalid(format!("bad Content-Length {v:?}")))?,
        ),
        None => None,
    };
    let has_body = chunked || content_length.is_some_and(|n| n > 0);
    let expects_continue = request
        .header("expect")
        .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"));
    if expects_continue && has_body && version != "HTTP/1.0" {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
        writer.flush()?;
    }

    if chunked {
        loop {
            let size_line = read_line(reader, &mut 0)?;
            let size = size_line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| invalid(format!("bad chunk size line {size_line:?}")))?;
            if size == 0 {
                request.trailers = read_fields(reader, &mut 0)?;
                break;
            }
            let start = request.body.len();
            request.body.resize(start + size, 0);
            reader.read_exact(&mut request.body[start..])?;
            let end = read_line(reader, &mut 0)?;
            if !end.is_empty() {
                return Err(invalid("chunk data longer than its size".into()));
            }
        }
    } else if let Some(length) = content_length {
        request.body.resize(length, 0);
        reader.read_exact(&mut request.body)?;
    }
    Ok(request)
}

/// Header (or trailer) fields up to the empty line: names lower-cased, values trimmed.
fn read_fields(
    reader: &mut impl BufRead,
    head_bytes: &mut usize,
) -> io::Result<Vec<(String, String)>> {
    let mut fields = Vec::new();
    loop {
        let line = read_line(reader, head_bytes)?;
        if line.is_empty() {
            return Ok(fields);
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| invalid(format!("bad header line {line:?}")))?;
        fields.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

/// One line without its `\r\n` (or bare `\n`).
fn read_line(reader: &mut impl BufRead, head_bytes: &mut usize) -> io::Result<String> {
    let mut line = Vec::new();
    let n = reader
        .by_ref()
        .take((MAX_HEAD_BYTES + 1) as u64)
        .read_until(b'\n', &mut line)?;
    *head_bytes += n;
    if *head_bytes > MAX_HEAD_BYTES {
        return Err(invalid("request head too large".into()));
    }
    if !line.ends_with(b"\n") {
        return Err(io::Error::new(
            ErrorKind::UnexpectedEof,
            "connection closed mid-request",
        ));
    }
    line.pop();
    if line.ends_with(b"\r") {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| invalid("non-UTF-8 request head".into()))
}

fn wants_close(request: &CapturedRequest) -> bool {
    let connection = request
        .header("connection")
        .unwrap_or("")
        .to_ascii_lowercase();
    let has = |token: &str| connection.split(',').any(|t| t.trim() == token);
    if request.version == "HTTP/1.0" {
        !has("keep-alive")
    } else {
        has("close")
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, message)
}
