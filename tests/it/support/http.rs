//! Plain HTTP/1.1 over std sockets for the Envoy tests: an upstream that echoes the request it got
//! as JSON, a one-request client and a keep-alive one. Small on purpose: no HTTP crate is needed
//! for this.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use serde_json::{Value, json};

/// An HTTP response: status, lower-case headers, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Reads a request or response head: the first line and the lower-case headers.
fn read_head(reader: &mut impl BufRead) -> Option<(String, BTreeMap<String, String>)> {
    let mut first = String::new();
    if reader.read_line(&mut first).ok()? == 0 {
        return None;
    }
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            return Some((first.trim_end().to_owned(), headers));
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
}

fn read_body(reader: &mut impl BufRead, headers: &BTreeMap<String, String>) -> io::Result<String> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut body = Vec::new();
    if let Some(length) = headers.get("content-length") {
        body.resize(length.parse().map_err(|_| bad("content-length"))?, 0);
        reader.read_exact(&mut body)?;
    } else if headers.get("transfer-encoding").is_some_and(|te| te.contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim(), 16).map_err(|_| bad("hex chunk size"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    String::from_utf8(body).map_err(|_| bad("utf-8 body"))
}

/// Starts an upstream that answers every request with 200 and
/// `{"method": …, "path": …, "headers": {name: value}}`; runs until the test process ends.
pub fn echo_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind upstream");
    let addr = listener.local_addr().expect("upstream addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || serve_echo(stream));
        }
    });
    addr
}

fn serve_echo(stream: TcpStream) {
    let mut writer = stream.try_clone().expect("clone stream");
    let mut reader = BufReader::new(stream);
    // Envoy keeps upstream connections alive: answer requests until it closes.
    while let Some((first, headers)) = read_head(&mut reader) {
        if read_body(&mut reader, &headers).is_err() {
            return;
        }
        let mut parts = first.split(' ');
        let (method, path) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let body = json!({"method": method, "path": path, "headers": headers}).to_string();
        let reply = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

/// Sends one request with `headers` and reads the whole response.
pub fn request(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    exchange(&mut stream, &mut reader, method, path, &[&[("connection", "close")], headers].concat())
        .unwrap_or_else(|err| panic!("{method} {path}: {err}"))
}

/// Writes one request and reads its response on an open connection.
fn exchange(
    writer: &mut impl Write,
    reader: &mut impl BufRead,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Reply> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: api.example.com\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    let (first, headers) = read_head(reader).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
    let status = first
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("status line {first:?}")))?;
    let body = read_body(reader, &headers)?;
    Ok(Reply { status, headers, body })
}

/// A client that keeps its connection open between requests (as load generators and browsers
/// do), so that steady traffic does not use up the machine's ephemeral ports. A failed exchange
/// is returned as an error and the next one opens a new connection.
pub struct KeepAlive {
    addr: SocketAddr,
    open: Option<(TcpStream, BufReader<TcpStream>)>,
}

impl KeepAlive {
    pub fn new(addr: SocketAddr) -> Self {
        Self { addr, open: None }
    }

    /// Sends `GET path` with `headers`; any connection or protocol failure is an error.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Reply> {
        let (writer, reader) = match &mut self.open {
            Some(open) => open,
            None => {
                let stream = TcpStream::connect(self.addr)?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                let reader = BufReader::new(stream.try_clone()?);
                self.open.insert((stream, reader))
            }
        };
        let reply = exchange(writer, reader, "GET", path, headers);
        let keep = reply.as_ref().is_ok_and(|r| r.header("connection") != Some("close"));
        if !keep {
            self.open = None;
        }
        reply
    }
}
