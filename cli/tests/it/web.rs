//! The web wallet's access rules, checked with raw HTTP requests against a real daemon: no token,
//! a wrong token, another host name (DNS rebinding), a cross-site request, a request without the
//! CSRF header, and an oversized body are each refused; the right ones get through. `/metrics`
//! answers without the token, in the Prometheus text format.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::TestHome;

/// The web wallet's `host:port` and token, from a daemon's ready line.
pub fn web(daemon: &crate::common::Daemon) -> (String, String) {
    let url = daemon.ready["web"]
        .as_str()
        .expect("the daemon serves the web wallet");
    let rest = url.strip_prefix("http://").unwrap();
    let (host, token) = rest.split_once("/?token=").unwrap();
    (host.to_owned(), token.to_owned())
}

/// Sends one HTTP/1.1 request; returns the status code and the body.
pub fn request(address: &str, head: &str, body: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let text = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

/// A POST to `/api/op` with these extra header lines.
fn op(address: &str, host: &str, headers: &[String], body: &str) -> (u16, String) {
    let mut head = format!("POST /api/op HTTP/1.1\r\nHost: {host}");
    for line in headers {
        head.push_str("\r\n");
        head.push_str(line);
    }
    request(address, &head, body)
}

#[test]
fn the_web_api_refuses_requests_without_the_token_and_cross_site_ones() {
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let daemon = home.serve(&[]);
    let (address, token) = web(&daemon);
    // `scrip open --print` shows the same address.
    let shown = home.run(&["open", "--print"]).ok();
    assert_eq!(shown.stdout.trim(), daemon.ready["web"].as_str().unwrap());

    let id = r#"{"op":"id"}"#;
    let json = "Content-Type: application/json".to_owned();
    let csrf = "X-Scrip-Csrf: 1".to_owned();
    let bearer = format!("Authorization: Bearer {token}");
    let cookie = format!("Cookie: scrip_web={token}");

    // The right request, by cookie or by bearer token: the control socket's answer.
    for auth in [&bearer, &cookie] {
        let (status, body) = op(
            &address,
            &address,
            &[auth.clone(), json.clone(), csrf.clone()],
            id,
        );
        assert_eq!(status, 200, "{body}");
        assert!(body.contains(&home.identity()), "{body}");
    }
    // A same-origin browser request (Origin and Sec-Fetch-Site sent) gets through.
    let (status, body) = op(
        &address,
        &address,
        &[
            cookie.clone(),
            json.clone(),
            csrf.clone(),
            format!("Origin: http://{address}"),
            "Sec-Fetch-Site: same-origin".into(),
        ],
        id,
    );
    assert_eq!(status, 200, "{body}");

    // No token, a wrong one.
    let (status, body) = op(&address, &address, &[json.clone(), csrf.clone()], id);
    assert_eq!(status, 401, "{body}");
    let wrong = format!("Cookie: scrip_web={}", "0".repeat(64));
    let (status, body) = op(&address, &address, &[wrong, json.clone(), csrf.clone()], id);
    assert_eq!(status, 401, "{body}");
    // Another host name that resolves here (DNS rebinding), even with the token.
    let (status, body) = op(
        &address,
        "wallet.evil.example",
        &[bearer.clone(), json.clone(), csrf.clone()],
        id,
    );
    assert_eq!(status, 421, "{body}");
    // Cross-site: another origin, another site, no CSRF header, a form's content type.
    for headers in [
        vec![
            cookie.clone(),
            json.clone(),
            csrf.clone(),
            "Origin: http://evil.example".into(),
        ],
        vec![
            cookie.clone(),
            json.clone(),
            csrf.clone(),
            "Sec-Fetch-Site: cross-site".into(),
        ],
        vec![cookie.clone(), json.clone()],
        vec![
            cookie.clone(),
            "Content-Type: application/x-www-form-urlencoded".into(),
            csrf.clone(),
        ],
    ] {
        let (status, body) = op(&address, &address, &headers, id);
        assert_eq!(status, 403, "{headers:?}: {body}");
    }
    // A body over the bound.
    let big = format!(r#"{{"op":"post","text":"{}"}}"#, "x".repeat(70 * 1024));
    let (status, _) = op(&address, &address, &[bearer.clone(), json, csrf], &big);
    assert_eq!(status, 413);

    // The page: the token in the address sets the cookie and redirects; without either, 401.
    let (status, body) = request(&address, &format!("GET / HTTP/1.1\r\nHost: {address}"), "");
    assert_eq!(status, 401, "{body}");
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET /?token={token} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 303"), "{answer}");
    assert!(
        answer.to_lowercase().contains(&format!(
            "set-cookie: scrip_web={token}; httponly; samesite=strict"
        )),
        "{answer}"
    );
    let (status, body) = request(
        &address,
        &format!("GET / HTTP/1.1\r\nHost: {address}\r\n{cookie}"),
        "",
    );
    assert_eq!(status, 200);
    assert!(body.contains("scrip wallet"), "{body}");
    // The metrics need no token (only the right host): every operation above is counted.
    let (status, body) = request(
        &address,
        &format!("GET /metrics HTTP/1.1\r\nHost: {address}"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"scrip_commands_total{op="id",outcome="ok"}"#),
        "{body}"
    );
    assert!(body.contains("scrip_peers "), "{body}");
    let (status, _) = request(
        &address,
        "GET /metrics HTTP/1.1\r\nHost: metrics.evil.example",
        "",
    );
    assert_eq!(status, 421);
    // The event stream needs the token too.
    let (status, _) = request(
        &address,
        &format!("GET /api/events HTTP/1.1\r\nHost: {address}"),
        "",
    );
    assert_eq!(status, 401);
}

/// Waits until the server closes `stream` (a read sees the end, or a reset); panics after
/// `within`.
fn closed_by_server(stream: &mut TcpStream, within: Duration) {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => {}
        Ok(_) => panic!("the server sent data to a connection that sent no request"),
        Err(err) => assert!(
            !matches!(
                err.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the server kept a silent connection open for {within:?}"
        ),
    }
}

#[test]
fn the_web_wallet_closes_silent_and_trickling_connections_and_serves_past_a_flood_of_them() {
    use scrip_cli::web::{HEADER_TIMEOUT, MAX_CONNECTIONS};
    let dir = tempfile::tempdir().unwrap();
    let home = TestHome::init(dir.path(), "alice");
    let daemon = home.serve(&[]);
    let (address, _) = web(&daemon);
    // More silent connections than the server holds at once, and one that trickles a request
    // head a byte at a time, never finishing it.
    let mut silent: Vec<TcpStream> = (0..MAX_CONNECTIONS + 8)
        .map(|_| TcpStream::connect(&address).unwrap())
        .collect();
    let trickle = {
        let mut stream = TcpStream::connect(&address).unwrap();
        std::thread::spawn(move || {
            let head = b"GET /metrics HTTP/1.1\r\nX-Slow: ";
            for byte in head.iter().chain(std::iter::repeat(&b'a')).take(400) {
                if stream.write_all(&[*byte]).is_err() {
                    return true;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            false
        })
    };
    // A request behind them all is answered once the silent ones are closed...
    let (status, body) = request(
        &address,
        &format!("GET /metrics HTTP/1.1\r\nHost: {address}"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    // ...and each of them was closed by the server (the first ones by now, the rest within
    // another header timeout and a margin).
    for stream in &mut silent {
        closed_by_server(stream, HEADER_TIMEOUT * 3);
    }
    assert!(
        trickle.join().unwrap(),
        "a connection trickling its request head for 40 s was never closed"
    );
}
