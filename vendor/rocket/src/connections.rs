//! Bounds and timeouts for client connections: a patch carried by Stride, not part of
//! upstream Rocket 0.5.2 (see `STRIDE-PATCH.md` at the root of this crate).
//!
//! Configured by the `connections` table of the figment, next to Rocket's own `keep_alive`:
//!
//! | key | default | what |
//! |---|---|---|
//! | `max` | 1024 | open connections; past it, new ones wait in the kernel's listen backlog, and the longest idle connection is closed to make room |
//! | `per_client` | 32 | open connections per client address (IPv6: per /64); 0 = no bound |
//! | `header_timeout` | 10 | seconds to receive a whole request head |
//! | `body_timeout` | 10 | seconds the server may wait for the next bytes of a request body |
//! | `body_total` | 60 | seconds a whole request body may take |
//! | `write_timeout` | 30 | seconds a response write may stay blocked on a client not reading |
//! | `max_header_size` | 32 KiB | largest request head (at least 8 KiB: hyper's minimum buffer) |
//!
//! `keep_alive` (seconds, 0 = off) is how long a connection may stay quiet with no request in
//! flight once it has served one.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use figment::Figment;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep, sleep_until, Instant, Sleep};

use crate::data::ByteUnit;
use crate::http::hyper;
use crate::http::hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};

/// The `connections` configuration table.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Connections {
    /// Open connections at most. Default 1024.
    pub max: usize,
    /// Open connections per client address at most (IPv6: per /64), 0 for no bound. Behind a
    /// reverse proxy every connection comes from the proxy: set 0. Default 32.
    pub per_client: usize,
    /// Seconds to receive a whole request head. Default 10.
    pub header_timeout: f64,
    /// Seconds to wait for the next bytes of a request body. Default 10.
    pub body_timeout: f64,
    /// Seconds a whole request body may take. Default 60.
    pub body_total: f64,
    /// Seconds a response write may stay blocked. Default 30.
    pub write_timeout: f64,
    /// Largest request head. Default 32 KiB.
    pub max_header_size: ByteUnit,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            max: 1024,
            per_client: 32,
            header_timeout: 10.0,
            body_timeout: 10.0,
            body_total: 60.0,
            write_timeout: 30.0,
            max_header_size: ByteUnit::Kibibyte(32),
        }
    }
}

/// Longest timeout accepted, in seconds: a day.
const MAX_TIMEOUT: f64 = 86_400.0;
/// hyper's smallest read buffer; it panics below it.
const MIN_HEADER_SIZE: u64 = 8 * 1024;
const MAX_HEADER_SIZE: u64 = 1024 * 1024;
const MAX_CONNECTIONS: usize = 1 << 20;

#[derive(Deserialize)]
struct Root {
    #[serde(default)]
    connections: Connections,
}

impl Connections {
    /// The `connections` table of `figment` (defaults for what it does not set), checked: an
    /// error names the key and the value at fault.
    pub fn from_figment(figment: &Figment) -> Result<Connections, String> {
        let root: Root = figment.extract().map_err(|e| e.to_string())?;
        root.connections.validate()?;
        Ok(root.connections)
    }

    fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_CONNECTIONS).contains(&self.max) {
            return Err(format!("connections.max = {}: must be between 1 and {MAX_CONNECTIONS}",
                self.max));
        }
        for (key, value) in [
            ("header_timeout", self.header_timeout),
            ("body_timeout", self.body_timeout),
            ("body_total", self.body_total),
            ("write_timeout", self.write_timeout),
        ] {
            if !(value > 0.0 && value <= MAX_TIMEOUT) {
                return Err(format!("connections.{key} = {value}: must be more than 0 and at \
                    most {MAX_TIMEOUT} seconds"));
            }
        }
        let size = self.max_header_size.as_u64();
        if !(MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&size) {
            return Err(format!("connections.max_header_size = {}: must be between 8 KiB and \
                1 MiB", self.max_header_size));
        }
        Ok(())
    }

    pub(crate) fn header_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.header_timeout)
    }

    pub(crate) fn write_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.write_timeout)
    }

    pub(crate) fn max_header_size(&self) -> usize {
        usize::try_from(self.max_header_size.as_u64()).unwrap_or(usize::MAX)
    }
}

/// Who may connect: `max` slots in all, taken before accepting, and `per_client` per address.
/// When every slot is taken, the connection that has waited longest for a request (at least
/// [`EVICTABLE`]) is closed to make room, as nginx reuses keep-alive connections: connections
/// that only trickle a request head never get one, so they go first; a request in flight is
/// never cut, nor a connection that just opened.
pub(crate) struct Admission {
    slots: Arc<Semaphore>,
    per_client: usize,
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    open: Arc<Open>,
}

/// The open connections, for the choice of one to close.
struct Open {
    /// The time base of every `Activity`.
    base: Instant,
    next: AtomicU64,
    connections: Mutex<HashMap<u64, Arc<Activity>>>,
    /// A connection's last request in flight ended: it may be closed to make room.
    went_idle: Notify,
}

/// How long a connection must have been without a request before it may be closed to make
/// room for another.
pub(crate) const EVICTABLE: Duration = Duration::from_millis(250);

/// One open connection's place, given back when its socket closes.
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    client: Option<(IpAddr, Arc<Mutex<HashMap<IpAddr, usize>>>)>,
    id: u64,
    open: Arc<Open>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.connections.lock().remove(&self.id);
        if let Some((ip, clients)) = self.client.take() {
            let mut clients = clients.lock();
            if let Some(count) = clients.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    clients.remove(&ip);
                }
            }
        }
    }
}

/// The client a per-client bound counts: the IPv4 address, or the /64 of an IPv6 one (what a
/// single host is usually given).
fn client_of(address: SocketAddr) -> IpAddr {
    match address.ip().to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Admission {
    pub(crate) fn new(limits: &Connections) -> Admission {
        Admission {
            slots: Arc::new(Semaphore::new(limits.max)),
            per_client: limits.per_client,
            clients: Arc::default(),
            open: Arc::new(Open {
                base: Instant::now(),
                next: AtomicU64::new(0),
                connections: Mutex::default(),
                went_idle: Notify::new(),
            }),
        }
    }

    /// Waits for a free slot: until then nothing is accepted. With none free, asks the
    /// connection idle for longest to close, and looks again whenever another goes idle.
    pub(crate) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return Some(permit);
            }
            self.close_idlest();
            tokio::select! {
                permit = self.slots.clone().acquire_owned() => return permit.ok(),
                _ = self.open.went_idle.notified() => continue,
                _ = sleep(EVICTABLE / 4) => continue,
            }
        }
    }

    fn close_idlest(&self) {
        let now = u64::try_from(self.open.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        let limit = now.saturating_sub(u64::try_from(EVICTABLE.as_millis()).unwrap_or(0));
        let connections = self.open.connections.lock();
        let idlest = connections.values()
            .filter(|a| a.in_flight.load(SeqCst) == 0 && !a.evicted.load(SeqCst))
            .map(|a| (a.idle_since.load(SeqCst).max(a.last_write.load(SeqCst)), a))
            .filter(|(since, _)| *since <= limit)
            .min_by_key(|(since, _)| *since);
        if let Some((_, activity)) = idlest {
            activity.evicted.store(true, SeqCst);
            activity.wake.notify_one();
        }
    }

    /// A new connection's record of activity.
    pub(crate) fn activity(&self) -> Arc<Activity> {
        Activity::new(&self.open)
    }

    /// The accepted connection's slot, or `None` when its client has `per_client` open.
    pub(crate) fn admit(
        &self,
        peer: Option<SocketAddr>,
        permit: OwnedSemaphorePermit,
        activity: &Arc<Activity>,
    ) -> Option<Slot> {
        let client = match peer {
            Some(peer) if self.per_client > 0 => {
                let ip = client_of(peer);
                let mut clients = self.clients.lock();
                let count = clients.entry(ip).or_insert(0);
                if *count >= self.per_client {
                    return None;
                }
                *count += 1;
                Some((ip, self.clients.clone()))
            }
            _ => None,
        };
        let id = self.open.next.fetch_add(1, SeqCst);
        self.open.connections.lock().insert(id, activity.clone());
        Some(Slot { _permit: permit, client, id, open: self.open.clone() })
    }
}

/// What a connection is doing: requests in flight, and when bytes last moved.
/// Every change happens on the connection's own task (hyper polls the I/O, calls the service
/// and drops response bodies there), except `evicted`, which the accept loop sets: the
/// connection's watchdog then checks on its own task that no request has started meanwhile
/// (hyper is polled first, so a head already received is parsed before).
pub(crate) struct Activity {
    /// Shared by all connections, so that their times compare.
    base: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds from `base`: when the connection opened or its last request ended.
    idle_since: AtomicU64,
    last_read: AtomicU64,
    /// The end of a response may still be written after hyper has dropped its body.
    last_write: AtomicU64,
    /// Asked to close to make room for a new connection.
    evicted: AtomicBool,
    /// A request ended, or `evicted` was set.
    wake: Notify,
    open: Arc<Open>,
}

/// A request in flight, from its head until hyper is done with its response body.
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since.store(activity.now(), SeqCst);
        if activity.in_flight.fetch_sub(1, SeqCst) == 1 {
            activity.wake.notify_one();
            activity.open.went_idle.notify_one();
        }
    }
}

impl Activity {
    fn new(open: &Arc<Open>) -> Arc<Activity> {
        let now = u64::try_from(open.base.elapsed().as_millis()).unwrap_or(u64::MAX);
        Arc::new(Activity {
            base: open.base,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            idle_since: AtomicU64::new(now),
            last_read: AtomicU64::new(now),
            last_write: AtomicU64::new(now),
            evicted: Default::default(),
            wake: Notify::new(),
            open: open.clone(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, SeqCst);
        self.requests.fetch_add(1, SeqCst);
        InFlight(self.clone())
    }

    /// Resolves when the connection has been idle too long: no request in flight, and either
    /// no bytes moved for the quiet limit (`header` before the first request, `keep_alive`
    /// after it), or no whole request head within `header` of becoming idle (the end of the
    /// last answer written), or when asked to make room. Never while a request is in flight,
    /// however long it takes; the end of an answer that a slow client still reads is left to
    /// `write_timeout`.
    pub(crate) async fn expired(&self, header: Duration, keep_alive: Option<Duration>) {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        loop {
            if self.in_flight.load(SeqCst) > 0 {
                // Busy: no longer the one to close.
                self.evicted.store(false, SeqCst);
                self.wake.notified().await;
                continue;
            }
            if self.evicted.load(SeqCst) {
                return;
            }
            let idle_since = self.idle_since.load(SeqCst).max(self.last_write.load(SeqCst));
            let quiet_since = self.last_read.load(SeqCst).max(idle_since);
            let quiet = match self.requests.load(SeqCst) {
                0 => header,
                _ => keep_alive.unwrap_or(header),
            };
            let deadline = quiet_since.saturating_add(ms(quiet))
                .min(idle_since.saturating_add(ms(header)));
            let now = self.now();
            if now >= deadline {
                return;
            }
            tokio::select! {
                _ = sleep(Duration::from_millis(deadline - now)) => {},
                _ = self.wake.notified() => {},
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A connection's I/O: records when bytes move, fails a write blocked for longer than
    /// `write_timeout`, and holds the connection's slot until the socket closes.
    pub(crate) struct Guarded<C> {
        #[pin]
        io: C,
        activity: Arc<Activity>,
        write_timeout: Duration,
        write_stall: Option<Pin<Box<Sleep>>>,
        _slot: Slot,
    }
}

impl<C> Guarded<C> {
    pub(crate) fn new(io: C, slot: Slot, activity: Arc<Activity>, write_timeout: Duration)
        -> Self
    {
        Guarded { io, activity, write_timeout, write_stall: None, _slot: slot }
    }
}

/// `result` of a write, or a `TimedOut` error once writes have been blocked for `limit`.
fn unless_stalled<T>(
    stall: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    cx: &mut Context<'_>,
    result: Poll<io::Result<T>>,
) -> Poll<io::Result<T>> {
    if result.is_ready() {
        *stall = None;
        return result;
    }
    let timer = stall.get_or_insert_with(|| Box::pin(sleep(limit)));
    if timer.as_mut().poll(cx).is_ready() {
        *stall = None;
        let message = format!("the client read nothing of its response for {limit:?}");
        return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, message)));
    }
    Poll::Pending
}

impl<C: AsyncRead> AsyncRead for Guarded<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.io.poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.last_read.store(this.activity.now(), SeqCst);
        }
        result
    }
}

fn wrote(activity: &Activity, result: &Poll<io::Result<usize>>) {
    if matches!(result, Poll::Ready(Ok(n)) if *n > 0) {
        activity.last_write.store(activity.now(), SeqCst);
    }
}

impl<C: AsyncWrite> AsyncWrite for Guarded<C> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8])
        -> Poll<io::Result<usize>>
    {
        let this = self.project();
        let result = this.io.poll_write(cx, buf);
        wrote(this.activity, &result);
        unless_stalled(this.write_stall, *this.write_timeout, cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.io.poll_write_vectored(cx, bufs);
        wrote(this.activity, &result);
        unless_stalled(this.write_stall, *this.write_timeout, cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let result = this.io.poll_flush(cx);
        unless_stalled(this.write_stall, *this.write_timeout, cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let result = this.io.poll_shutdown(cx);
        unless_stalled(this.write_stall, *this.write_timeout, cx, result)
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight until hyper drops it,
    /// that is until the whole response has been handed to the connection.
    pub(crate) struct Tracked<B> {
        #[pin]
        body: B,
        in_flight: InFlight,
    }
}

impl<B> Tracked<B> {
    pub(crate) fn new(body: B, in_flight: InFlight) -> Self {
        Tracked { body, in_flight }
    }
}

impl<B: Body> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>)
        -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>>
    {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body read under `body_timeout` (the wait for each next piece) and `body_total`
/// (the whole body, from the first read); past either, reads fail with `TimedOut`.
pub struct TimedBody {
    body: Incoming,
    idle: Duration,
    total: Duration,
    started: Option<Instant>,
    deadline: Option<Pin<Box<Sleep>>>,
    wait: Option<Pin<Box<Sleep>>>,
    timed_out: Option<&'static str>,
}

impl TimedBody {
    pub(crate) fn new(body: Incoming, limits: &Connections) -> TimedBody {
        TimedBody {
            body,
            idle: Duration::from_secs_f64(limits.body_timeout),
            total: Duration::from_secs_f64(limits.body_total),
            started: None,
            deadline: None,
            wait: None,
            timed_out: None,
        }
    }

    fn timed_out(&mut self, why: &'static str) -> Poll<Option<io::Result<Bytes>>> {
        self.timed_out = Some(why);
        (self.deadline, self.wait) = (None, None);
        Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, why))))
    }

    /// The next piece of the body, as `StreamReader` wants it.
    pub(crate) fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        if let Some(why) = self.timed_out {
            return Poll::Ready(Some(Err(io::Error::new(io::ErrorKind::TimedOut, why))));
        }
        let started = *self.started.get_or_insert_with(Instant::now);
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            self.wait = None;
            return Poll::Ready(frame.map(|frame| frame
                .map(|frame| frame.into_data().unwrap_or_default())
                .map_err(io::Error::other)));
        }
        let total = self.total;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(sleep_until(started + total)));
        if deadline.as_mut().poll(cx).is_ready() {
            return self.timed_out("the request body took longer than connections.body_total");
        }
        let idle = self.idle;
        let wait = self.wait.get_or_insert_with(|| Box::pin(sleep(idle)));
        if wait.as_mut().poll(cx).is_ready() {
            return self.timed_out("no request body data for connections.body_timeout");
        }
        Poll::Pending
    }
}

/// Whether a connection ended on one of these timeouts (hyper's header timeout, or a
/// `TimedOut` I/O error: a write stall).
pub(crate) fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error.downcast_ref::<hyper::Error>().is_some_and(|e| e.is_timeout())
            || error.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::TimedOut)
        {
            return true;
        }
        next = error.source();
    }
    false
}
