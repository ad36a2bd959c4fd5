//! HTTP/1.1 on `std::net`, one request per connection (`Connection: close`): the request
//! line, headers (at most 64 KiB), and a `Content-Length` body (at most the server's limit:
//! 413 above; chunked bodies are refused with 411; `Expect: 100-continue` is answered).
//! Each connection has its own thread with read and write timeouts, so a client that goes
//! quiet or away frees it.

use super::engine::Failure;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const MAX_HEAD: usize = 64 << 10;

/// A request read whole, and the connection to answer on.
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    stream: TcpStream,
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// Write one response and close (errors mean the client went away: nothing to do).
pub fn write_response(mut stream: TcpStream, status: u16, body: &[u8]) {
    let retry = if status == 429 || status == 503 {
        "Retry-After: 1\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .and_then(|()| stream.flush());
    let _ = stream.shutdown(std::net::Shutdown::Write);
    // Let the client read the answer before the socket closes (a close with unread input
    // would reset the connection).
    let mut sink = [0u8; 4096];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
}

impl Request {
    pub fn respond(self, status: u16, body: &[u8]) {
        write_response(self.stream, status, body)
    }
}

fn fail(status: u16, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
    }
}

/// Read one request from `stream`. `Err(None)`: the client left before a request;
/// `Err(Some(..))`: answer that failure (the stream comes back with it).
#[allow(clippy::result_large_err)]
pub fn read_request(
    stream: TcpStream,
    max_body: usize,
) -> Result<Request, Option<(Failure, TcpStream)>> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else {
        return Err(None);
    };
    let mut r = BufReader::new(read_half.take((MAX_HEAD + max_body + 1) as u64));
    let mut head = 0usize;
    let mut line = String::new();
    let mut lines = Vec::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) if lines.is_empty() => return Err(None),
            Ok(0) | Err(_) => return Err(Some((fail(400, "the request ends early"), stream))),
            Ok(n) => head += n,
        }
        if head > MAX_HEAD {
            return Err(Some((fail(431, "the request head exceeds 64 KiB"), stream)));
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        lines.push(line.trim_end().to_string());
    }
    let mut first = lines[0].split(' ');
    let (Some(method), Some(path), Some(version)) = (first.next(), first.next(), first.next())
    else {
        return Err(Some((fail(400, "a malformed request line"), stream)));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(Some((
            fail(400, format!("unsupported version {version}")),
            stream,
        )));
    }
    let (method, path) = (method.to_string(), path.to_string());
    let mut length = 0usize;
    let mut expect = false;
    for h in &lines[1..] {
        let Some((k, v)) = h.split_once(':') else {
            return Err(Some((
                fail(400, format!("a malformed header `{h}`")),
                stream,
            )));
        };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "content-length" => match v.parse() {
                Ok(n) => length = n,
                Err(_) => return Err(Some((fail(400, "a malformed Content-Length"), stream))),
            },
            "transfer-encoding" if !v.eq_ignore_ascii_case("identity") => {
                return Err(Some((
                    fail(411, "chunked bodies are not supported; send Content-Length"),
                    stream,
                )))
            }
            "expect" => expect = v.eq_ignore_ascii_case("100-continue"),
            _ => {}
        }
    }
    if length > max_body {
        return Err(Some((
            fail(413, format!("the request body exceeds {max_body} bytes")),
            stream,
        )));
    }
    if expect && length > 0 {
        let _ = (&stream).write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let mut body = vec![0; length];
    if r.read_exact(&mut body).is_err() {
        return Err(Some((
            fail(400, "the body ends before Content-Length"),
            stream,
        )));
    }
    Ok(Request {
        method,
        path,
        body,
        stream,
    })
}
