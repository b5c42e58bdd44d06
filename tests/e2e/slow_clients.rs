//! Slow clients, end to end (issue 11): the real `stride` binary keeps answering everyone
//! while hundreds of connections trickle bytes, and cuts each kind of slow connection after its
//! limit: a request head (`connections.header_timeout`), an idle keep-alive connection
//! (`keep_alive`), a request body, JSON or picture (`connections.body_timeout`, `body_total`),
//! a client that never reads its answer (`connections.write_timeout`); it holds at most
//! `connections.max` connections (the rest wait, then are served; with every slot taken, the
//! longest idle one makes room) and `connections.per_client` from one address. Its memory stays bounded meanwhile. A request that is slow because the
//! server is busy (a login queued for argon2) is never cut, nor an answer read slowly.
//!
//! The limits live in the accept loop of Stride's patched Rocket (vendor/rocket/STRIDE-PATCH.md),
//! below the database: these tests run on SQLite only. Attackers connect from other loopback
//! addresses (127.0.0.2 and up) than the legitimate client (127.0.0.1), as they would from
//! other hosts. Timeouts are set short for speed.

// Built without the pictures module, the tests that need it are left out, and with them the
// only users of some imports and helpers.
#![cfg_attr(not(feature = "pictures"), allow(unused_imports, dead_code))]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use socket2::{Domain, Socket, Type};

use crate::helpers::{call, call_ok, register_sam, start_with, Server};
use crate::helpers::{file_body, multipart_content_type, PASSWORD};

/// The tests that open hundreds of sockets run one at a time: the test process keeps well
/// under a default open-file limit of 1024, and the machine is not flooded twice over.
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    // Room for the sockets; the soft limit may be as low as 1024 on a fresh machine.
    let _ = rlimit::increase_nofile_limit(4096);
    HEAVY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Starts Stride with these `connections` settings (TOML inline table) and `keep_alive`.
fn serve(connections: &str, keep_alive: u32, more: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_with(dir.path(), None, |command| {
        command
            .env("ROCKET_CONNECTIONS", connections)
            .env("ROCKET_KEEP_ALIVE", keep_alive.to_string())
            .env("ROCKET_THROTTLE", "{enabled=false}");
        for (key, value) in more {
            command.env(key, value);
        }
    });
    // The readiness probe's connection is gone before a test counts connections.
    std::thread::sleep(Duration::from_millis(200));
    (server, dir)
}

fn address(server: &Server) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("a socket address")
}

/// A connection to `server` from `127.0.0.<host>`.
fn connect_from(host: u8, server: &Server) -> TcpStream {
    connect_with(host, server, |_| {})
}

fn connect_with(host: u8, server: &Server, configure: impl FnOnce(&Socket)) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, host], 0)).into())
        .expect("bind a loopback address");
    configure(&socket);
    socket
        .connect_timeout(&address(server).into(), Duration::from_secs(10))
        .expect("connect");
    socket.into()
}

/// Whether the server has closed `stream` (end of stream or reset); data it sent is dropped.
fn closed(stream: &mut TcpStream) -> bool {
    stream.set_nonblocking(true).expect("nonblocking");
    let mut buffer = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buffer) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
            Err(_) => break true,
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    closed
}

/// Waits for the server to close `stream`; how long that took, or `None` past `limit`.
fn wait_closed(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None
            }
            Err(_) => return Some(start.elapsed()),
        }
        if start.elapsed() > limit {
            return None;
        }
    }
}

/// Sends a whole request on `stream` and reads one answer (`Content-Length` framed): status
/// and body.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> (u16, String) {
    stream.write_all(request).expect("send");
    read_answer(stream, Duration::from_secs(10)).expect("an answer")
}

/// One answer from `stream` within `limit`, or `None` (nothing, or the connection closed).
fn read_answer(stream: &mut TcpStream, limit: Duration) -> Option<(u16, String)> {
    stream.set_read_timeout(Some(limit)).expect("read timeout");
    let mut bytes = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_owned())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split(' ').nth(1)?.parse().ok()?;
                return Some((status, body[..length].to_owned()));
            }
        }
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return None,
            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
        }
    }
}

const PING: &[u8] = b"GET /api/ping HTTP/1.1\r\nHost: stride\r\n\r\n";

/// Pings as the legitimate client (127.0.0.1, a new connection each time): the slowest
/// answer, or a panic when one does not come.
fn ping_for(server: &Server, how_long: Duration) -> (Duration, usize) {
    let start = Instant::now();
    let (mut slowest, mut count) = (Duration::ZERO, 0);
    while start.elapsed() < how_long {
        let sent = Instant::now();
        let (status, body) =
            call(server, "GET", "/api/ping", None, None).expect("/api/ping answers under attack");
        assert_eq!((status, body["message"].as_str()), (200, Some("pong!")));
        slowest = slowest.max(sent.elapsed());
        count += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    (slowest, count)
}

/// Resident memory of a process, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `count` connections from the addresses in `hosts` (round robin), each sending `first`,
/// then one more byte of a header that never ends every `every`: a request head that never
/// completes. Returns when the server has closed all of them, with how long each lived, or
/// panics past `limit`. `during` runs once all are open (the legitimate traffic).
fn trickle_heads<T>(
    server: &Server,
    hosts: &[u8],
    count: usize,
    first: &[u8],
    every: Duration,
    limit: Duration,
    during: impl FnOnce() -> T,
) -> (Vec<Duration>, T) {
    let mut slow: Vec<(TcpStream, Instant, Option<Duration>)> = (0..count)
        .map(|i| {
            let mut stream = connect_from(hosts[i % hosts.len()], server);
            stream.write_all(first).expect("send the start of a head");
            (stream, Instant::now(), None)
        })
        .collect();
    let (stop, trickler) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        let start = Instant::now();
        while start.elapsed() < limit {
            for (stream, opened, lived) in slow.iter_mut().filter(|s| s.2.is_none()) {
                if closed(stream) {
                    *lived = Some(opened.elapsed());
                } else {
                    let _ = stream.write(b"a");
                }
            }
            if slow.iter().all(|s| s.2.is_some()) {
                break;
            }
            if trickler.recv_timeout(every).is_ok() {
                break;
            }
        }
        slow
    });
    let result = during();
    let slow = handle.join().expect("the trickler");
    drop(stop);
    let open = slow.iter().filter(|s| s.2.is_none()).count();
    assert_eq!(
        open, 0,
        "{open} of {count} slow connections still open after {limit:?}"
    );
    (slow.into_iter().filter_map(|s| s.2).collect(), result)
}

#[test]
fn slow_request_heads_are_cut_and_others_still_answered() {
    const SLOW: usize = 400;
    let _heavy = heavy();
    // per_client = 0: no bound per address, so that one address can hold them all.
    let (server, _dir) = serve("{header_timeout=2,per_client=0}", 5, &[]);
    let (lived, (slowest, pings)) = trickle_heads(
        &server,
        &[2],
        SLOW,
        b"GET /api/ping HTTP/1.1\r\nHost: stride\r\nX-Slow: ",
        Duration::from_millis(250),
        Duration::from_secs(20),
        || ping_for(&server, Duration::from_secs(3)),
    );
    let longest = lived.iter().max().copied().unwrap_or_default();
    let shortest = lived.iter().min().copied().unwrap_or_default();
    eprintln!(
        "{SLOW} slow heads: closed after {shortest:?} to {longest:?}; {pings} pings meanwhile, \
         the slowest answered in {slowest:?}"
    );
    assert!(
        shortest >= Duration::from_millis(1500),
        "cut too early: {shortest:?}"
    );
    assert!(
        longest < Duration::from_secs(8),
        "cut too late: {longest:?}"
    );
    assert!(slowest < Duration::from_secs(3), "a ping took {slowest:?}");
}

#[test]
fn idle_connections_are_closed() {
    let (server, _dir) = serve("{header_timeout=3}", 1, &[]);
    // Kept alive after an answer: closed after keep_alive (1 s), well before header_timeout.
    let mut kept = connect_from(1, &server);
    let (status, body) = exchange(&mut kept, PING);
    assert_eq!(status, 200, "{body}");
    let idle = wait_closed(&mut kept, Duration::from_secs(10)).expect("closed");
    assert!(
        (Duration::from_millis(700)..Duration::from_millis(2500)).contains(&idle),
        "an idle keep-alive connection lived {idle:?}"
    );
    // A connection that never sends a byte: closed after header_timeout (3 s).
    let mut silent = connect_from(1, &server);
    let silence = wait_closed(&mut silent, Duration::from_secs(10)).expect("closed");
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(5)).contains(&silence),
        "a silent connection lived {silence:?}"
    );
    // A connection in use is not: five requests a little less than keep_alive apart.
    let mut busy = connect_from(1, &server);
    for _ in 0..5 {
        assert_eq!(exchange(&mut busy, PING).0, 200);
        std::thread::sleep(Duration::from_millis(600));
    }
    assert!(!closed(&mut busy), "closed while in use");
    eprintln!("idle keep-alive closed after {idle:?}, silent connection after {silence:?}");
}

const BODY_LIMITS: &str = "{body_timeout=1,body_total=3}";

/// Sends `head` then `first`, then one byte of `filler` every 300 ms (none when `filler` is
/// empty) until the server answers; the answer and when it came.
fn trickle_body(
    server: &Server,
    head: &str,
    first: &[u8],
    filler: &[u8],
) -> (Option<(u16, String)>, Duration, TcpStream) {
    let mut stream = connect_from(2, server);
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(first).expect("start of the body");
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("read timeout");
    for byte in filler.iter().cycle() {
        // Until the server answers or closes.
        match stream.peek(&mut [0u8; 1]) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            _ => break,
        }
        if start.elapsed() > Duration::from_secs(15) {
            break;
        }
        let _ = stream.write_all(&[*byte]);
    }
    let answer = read_answer(&mut stream, Duration::from_secs(15));
    (answer, start.elapsed(), stream)
}

fn assert_timeout_answer(answer: Option<(u16, String)>, what: &str) {
    let (status, body) = answer.unwrap_or_else(|| panic!("{what}: no answer"));
    let body: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("{what}: {body}"));
    assert_eq!(
        (status, body),
        (
            408,
            json!({"status": "error", "message": "error, request timeout"})
        ),
        "{what}"
    );
}

#[test]
fn a_trickled_json_body_is_answered_408_and_closed() {
    let (server, _dir) = serve(BODY_LIMITS, 5, &[]);
    let head =
        "POST /api/auth/login HTTP/1.1\r\nHost: stride\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n";
    // Stalled: nothing after the first byte, cut after body_timeout (1 s).
    let (answer, after, mut stream) = trickle_body(&server, head, b"{", b"");
    assert_timeout_answer(answer, "stalled JSON body");
    assert!(
        after < Duration::from_millis(2500),
        "stalled body answered after {after:?}"
    );
    assert!(wait_closed(&mut stream, Duration::from_secs(3)).is_some());
    // Trickled: a byte every 300 ms never waits 1 s, but the whole body may take 3 s.
    let (answer, after, mut stream) = trickle_body(&server, head, b"{", b" ");
    assert_timeout_answer(answer, "trickled JSON body");
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&after),
        "trickled body answered after {after:?}"
    );
    assert!(wait_closed(&mut stream, Duration::from_secs(3)).is_some());
    // A whole body, sent at once, still goes through.
    let (status, _) = call_ok(
        &server,
        "POST",
        "/api/auth/login",
        None,
        Some(json!({"email": "nobody@example.com", "password": PASSWORD})),
    );
    assert_eq!(status, 401);
}

#[cfg(feature = "pictures")] // uses the pictures module
#[test]
fn a_trickled_picture_upload_is_answered_408_and_closed() {
    let (server, _dir) = serve(BODY_LIMITS, 5, &[]);
    let token = register_sam(&server);
    let body = file_body("me.png", &crate::helpers::png(64, 64));
    let head = format!(
        "POST /api/auth/picture HTTP/1.1\r\nHost: stride\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
        multipart_content_type(),
        body.len()
    );
    let (first, rest) = body.split_at(200);
    let (answer, after, mut stream) = trickle_body(&server, &head, first, rest);
    assert_timeout_answer(answer, "trickled upload");
    assert!(
        (Duration::from_millis(2500)..Duration::from_secs(6)).contains(&after),
        "trickled upload answered after {after:?}"
    );
    assert!(wait_closed(&mut stream, Duration::from_secs(3)).is_some());
    let (answer, after, _) = trickle_body(&server, &head, first, b"");
    assert_timeout_answer(answer, "stalled upload");
    assert!(
        after < Duration::from_millis(2500),
        "stalled upload answered after {after:?}"
    );
}

#[test]
fn connections_past_the_bound_wait_then_are_served() {
    const MAX: usize = 8;
    let (server, _dir) = serve(
        &format!("{{max={MAX},per_client=0,header_timeout=30,body_timeout=30,body_total=60}}"),
        30,
        &[],
    );
    // MAX connections, each with a request in flight: its body is not all there yet.
    let login =
        "POST /api/auth/login HTTP/1.1\r\nHost: stride\r\nContent-Type: application/json\r\n\
                 Content-Length: 2\r\n\r\n{";
    let mut holders: Vec<TcpStream> = (0..MAX)
        .map(|_| {
            let mut stream = connect_from(2, &server);
            stream.write_all(login.as_bytes()).expect("send");
            stream
        })
        .collect();
    // One more connects (the kernel's backlog takes it) but is not served while all are busy.
    let mut waiting = connect_from(1, &server);
    waiting.write_all(PING).expect("send");
    assert!(
        read_answer(&mut waiting, Duration::from_millis(2500)).is_none(),
        "served past connections.max"
    );
    // One request ends: its answer comes whole, then its idle connection makes room.
    let freed = Instant::now();
    holders[0].write_all(b"}").expect("the rest of the body");
    let (status, _) = read_answer(&mut holders[0], Duration::from_secs(5)).expect("answered");
    assert_eq!(status, 400);
    let (status, _) =
        read_answer(&mut waiting, Duration::from_secs(5)).expect("served once a slot is free");
    assert_eq!(status, 200);
    eprintln!(
        "the waiting connection was served {:?} after a request ended",
        freed.elapsed()
    );
    assert!(
        wait_closed(&mut holders[0], Duration::from_secs(1)).is_some(),
        "the idle one closed"
    );
    for holder in &mut holders[1..] {
        assert!(!closed(holder), "a request in flight was cut");
    }
}

#[test]
fn idle_connections_make_room_when_every_slot_is_taken() {
    const MAX: usize = 8;
    let (server, _dir) = serve(
        &format!("{{max={MAX},per_client=0,header_timeout=30}}"),
        30,
        &[],
    );
    // MAX idle keep-alive connections, the first one the longest idle.
    let mut holders: Vec<TcpStream> = (0..MAX)
        .map(|_| {
            let mut stream = connect_from(2, &server);
            assert_eq!(exchange(&mut stream, PING).0, 200);
            std::thread::sleep(Duration::from_millis(100));
            stream
        })
        .collect();
    // A newcomer is served at once: the longest idle connection made room.
    let sent = Instant::now();
    let mut newcomer = connect_from(1, &server);
    assert_eq!(exchange(&mut newcomer, PING).0, 200);
    let waited = sent.elapsed();
    assert!(
        waited < Duration::from_secs(3),
        "the newcomer waited {waited:?}"
    );
    assert!(
        wait_closed(&mut holders[0], Duration::from_secs(3)).is_some(),
        "the idlest stays"
    );
    eprintln!("a newcomer with every slot idle-held was served in {waited:?}");
}

#[test]
fn more_slow_heads_than_slots_still_leave_room_for_others() {
    const MAX: usize = 50;
    const SLOW: usize = 200;
    let _heavy = heavy();
    let (server, _dir) = serve(
        &format!("{{max={MAX},per_client=0,header_timeout=5}}"),
        5,
        &[],
    );
    let (lived, (slowest, pings)) = trickle_heads(
        &server,
        &[2],
        SLOW,
        b"GET /api/ping HTTP/1.1\r\nHost: stride\r\nX-Slow: ",
        Duration::from_millis(250),
        Duration::from_secs(30),
        || ping_for(&server, Duration::from_secs(4)),
    );
    let longest = lived.iter().max().copied().unwrap_or_default();
    eprintln!(
        "{SLOW} slow heads for {MAX} slots: {pings} pings meanwhile, the slowest answered in \
         {slowest:?}; the last slow head closed after {longest:?}"
    );
    assert!(slowest < Duration::from_secs(3), "a ping took {slowest:?}");
}

#[test]
fn connections_past_the_per_client_bound_are_closed_at_once() {
    const PER_CLIENT: usize = 4;
    let (server, _dir) = serve(
        &format!("{{per_client={PER_CLIENT},header_timeout=30}}"),
        30,
        &[],
    );
    let mut holders: Vec<TcpStream> = (0..PER_CLIENT)
        .map(|_| {
            let mut stream = connect_from(2, &server);
            assert_eq!(exchange(&mut stream, PING).0, 200);
            stream
        })
        .collect();
    // One more from the same address: closed at once, unanswered.
    let mut excess = connect_from(2, &server);
    let _ = excess.write_all(PING);
    let closed_after = wait_closed(&mut excess, Duration::from_secs(3));
    assert!(
        closed_after.is_some_and(|d| d < Duration::from_secs(1)),
        "the excess connection: {closed_after:?}"
    );
    // Another address is served meanwhile.
    let mut other = connect_from(3, &server);
    assert_eq!(exchange(&mut other, PING).0, 200);
    // Once one of them closes, the address may connect again.
    drop(holders.pop());
    std::thread::sleep(Duration::from_millis(300));
    let mut again = connect_from(2, &server);
    assert_eq!(exchange(&mut again, PING).0, 200);
}

/// Gives sam a picture of about 900 KB that does not compress; returns its size.
#[cfg(feature = "pictures")]
fn upload_noise(server: &Server) -> usize {
    let token = register_sam(server);
    let picture = crate::helpers::noise_png(550, 550);
    let body = file_body("noise.png", &picture);
    let mut upload = connect_from(1, server);
    let head = format!(
        "POST /api/auth/picture HTTP/1.1\r\nHost: stride\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {}\r\nContent-Length: {}\r\n\r\n",
        multipart_content_type(),
        body.len()
    );
    upload.write_all(head.as_bytes()).expect("head");
    let (status, answer) = exchange(&mut upload, &body);
    assert_eq!(status, 200, "{answer}");
    picture.len()
}

const PICTURE: &str = "GET /api/users/sam/picture HTTP/1.1\r\nHost: stride\r\n\r\n";

#[cfg(feature = "pictures")] // uses the pictures module
#[test]
fn a_client_that_never_reads_is_dropped_after_the_write_timeout() {
    const REQUESTS: usize = 30;
    let (server, _dir) = serve("{write_timeout=2}", 5, &[]);
    // The picture 30 times on one connection: far more than the socket buffers hold.
    let size = upload_noise(&server);

    let mut reader = connect_with(2, &server, |socket| {
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    });
    let request = PICTURE.repeat(REQUESTS);
    reader.write_all(request.as_bytes()).expect("requests");
    // Reads nothing for longer than the write timeout.
    std::thread::sleep(Duration::from_secs(5));
    reader
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    let (mut received, mut buffer) = (0usize, vec![0u8; 64 * 1024]);
    let ended = loop {
        match reader.read(&mut buffer) {
            Ok(0) => break "closed",
            Ok(n) => received += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break "still open"
            }
            Err(_) => break "reset",
        }
    };
    let total = REQUESTS * size;
    eprintln!(
        "a client not reading: {received} of {total} bytes came, then the connection was {ended}"
    );
    assert_ne!(ended, "still open");
    assert!(received < total / 2, "{received} of {total} bytes");
    // Everyone else is still served.
    assert_eq!(call_ok(&server, "GET", "/api/ping", None, None).0, 200);
}

#[cfg(feature = "pictures")] // uses the pictures module
#[test]
fn a_slow_reader_gets_its_whole_answer() {
    // Every limit shorter than the 6 s or so the answer takes to read.
    let (server, _dir) = serve("{header_timeout=1,write_timeout=2}", 1, &[]);
    let size = upload_noise(&server);
    let mut reader = connect_with(2, &server, |socket| {
        socket.set_recv_buffer_size(16 * 1024).expect("SO_RCVBUF");
    });
    reader.write_all(PICTURE.as_bytes()).expect("request");
    reader
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    // About 150 KB/s, in small reads: progress every 50 ms, never a stall of write_timeout.
    let (start, mut received, mut buffer) = (Instant::now(), 0usize, [0u8; 8 * 1024]);
    while received < size {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "a slow reader got {received} bytes (the picture: {size}) in {:?}",
        start.elapsed()
    );
    assert!(
        received > size,
        "cut after {received} of {size} bytes and {:?}",
        start.elapsed()
    );
    assert!(
        start.elapsed() > Duration::from_secs(2),
        "not slow after all"
    );
}

#[cfg(target_os = "linux")]
#[test]
fn memory_stays_bounded_with_hundreds_of_slow_connections() {
    const SLOW: usize = 400;
    const WAVES: usize = 3;
    let _heavy = heavy();
    // The default per_client (32): the attackers come from 13 addresses, 31 each.
    let hosts: Vec<u8> = (2..=14).collect();
    let (server, _dir) = serve("{header_timeout=4}", 5, &[]);
    let pid = server.child.id();
    // Each slow connection has sent half of the largest head allowed (32 KiB by default).
    let mut first = b"GET /api/ping HTTP/1.1\r\nHost: stride\r\nX-Slow: ".to_vec();
    first.resize(16 * 1024, b'a');
    ping_for(&server, Duration::from_millis(300));
    let baseline = rss_kib(pid);
    let mut peaks = Vec::new();
    for wave in 1..=WAVES {
        let (_, during) = trickle_heads(
            &server,
            &hosts,
            SLOW,
            &first,
            Duration::from_millis(500),
            Duration::from_secs(20),
            || {
                std::thread::sleep(Duration::from_millis(1500));
                let during = rss_kib(pid);
                ping_for(&server, Duration::from_millis(500));
                during
            },
        );
        std::thread::sleep(Duration::from_millis(500));
        let after = rss_kib(pid);
        eprintln!(
            "wave {wave}: server RSS {baseline} KiB before, {during} KiB with {SLOW} slow \
             connections open, {after} KiB once they were cut"
        );
        peaks.push(during);
        assert!(
            during < baseline + 96 * 1024,
            "{SLOW} slow connections grew the server from {baseline} to {during} KiB"
        );
    }
    // Waves of slow connections leave nothing behind that the next one adds to.
    assert!(
        peaks[WAVES - 1] < peaks[0] + 16 * 1024,
        "the server keeps growing: {peaks:?} KiB"
    );
}

#[test]
fn slow_logins_under_the_argon2_queue_are_not_cut() {
    let _heavy = heavy();
    // Every limit at 1 s: a login waiting longer than that for a password worker must still
    // get its answer (the idle timer runs only while no request is in flight).
    let (server, _dir) = serve(
        "{header_timeout=1,body_timeout=1,body_total=1,write_timeout=1,per_client=0}",
        1,
        &[],
    );
    let _ = register_sam(&server);
    let login = |count: usize| -> Vec<Duration> {
        let threads: Vec<_> = (0..count)
            .map(|_| {
                let base = server.base.clone();
                std::thread::spawn(move || {
                    let agent: ureq::Agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_global(Some(Duration::from_secs(120)))
                        .build()
                        .into();
                    let sent = Instant::now();
                    let mut response = agent
                        .post(format!("{base}/api/auth/login"))
                        .header("Content-Type", "application/json")
                        .send(json!({"email": "sam@example.com", "password": PASSWORD}).to_string())
                        .expect("a login is answered, however long it waits");
                    let status = response.status().as_u16();
                    let body = response.body_mut().read_to_string().unwrap_or_default();
                    assert_eq!(status, 200, "{body}");
                    sent.elapsed()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("a login"))
            .collect()
    };
    // How many logins this machine does in a second, to queue about 3 s worth of them. The
    // rate measured on a busy machine can be low: when no login then waited past the limits,
    // the queue is made twice as long, up to three times.
    let start = Instant::now();
    login(30);
    let rate = 30.0 / start.elapsed().as_secs_f64();
    let mut count = ((rate * 3.0) as usize).clamp(40, 400);
    let mut slowest = Duration::ZERO;
    for _ in 0..3 {
        let waits = login(count);
        slowest = waits.iter().max().copied().unwrap_or_default();
        eprintln!(
            "{count} concurrent logins ({rate:.0}/s): all answered, the slowest in {slowest:?}"
        );
        if slowest > Duration::from_millis(1500) {
            break;
        }
        count = (count * 2).min(800);
    }
    assert!(
        slowest > Duration::from_millis(1500),
        "no login waited longer than the limits ({slowest:?}): the test proves nothing"
    );
}

/// `stride` run by `sh` with a lower open-file limit.
fn under_open_file_limit(dir: &std::path::Path, limit: u32, args: &str) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!("ulimit -n {limit} && exec \"$0\" {args}"))
        .arg(env!("CARGO_BIN_EXE_stride"))
        .current_dir(dir)
        .env_remove("ROCKET_PROFILE")
        .env("ROCKET_LOG_LEVEL", "off")
        .stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("ROCKET_") && key != "ROCKET_LOG_LEVEL" {
            command.env_remove(key);
        }
    }
    command
}

/// The launch line of `stride serve`, then the server is stopped.
fn launch_line(mut command: Command) -> String {
    use std::io::BufRead;
    let port = crate::helpers::free_port();
    let mut child = command
        .env("ROCKET_PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("stride starts");
    let stderr = child.stderr.take().expect("stderr");
    let line = std::io::BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"));
    let _ = child.kill();
    let _ = child.wait();
    line.unwrap_or_else(|| "stride exited without listening".into())
}

#[test]
fn the_connection_bound_fits_the_open_file_limit() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Asked for more than 512 open files allow (256 are kept for the rest): refused.
    let out = under_open_file_limit(dir.path(), 512, "migrate")
        .env("ROCKET_CONNECTIONS", "{max=400}")
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "accepted: {err}");
    assert!(err.contains("connections.max = 400"), "{err}");
    // Unset, the bound follows the limit.
    let line = launch_line(under_open_file_limit(dir.path(), 512, "serve"));
    assert!(
        line.contains("at most 256 connections, 32 per client"),
        "{line}"
    );
    // Behind a reverse proxy (ip_header set), no bound per client unless set.
    let line = launch_line({
        let mut c = under_open_file_limit(dir.path(), 2048, "serve");
        c.env("ROCKET_IP_HEADER", "X-Real-IP");
        c
    });
    assert!(
        line.contains("at most 1024 connections, no bound per client"),
        "{line}"
    );
}
