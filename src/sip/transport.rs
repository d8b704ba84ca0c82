//! SIP over UDP and TCP (RFC 3261 §18): the only part of the SIP stack that
//! touches sockets. UDP is one message per datagram; TCP is framed by
//! Content-Length with the message layer's `StreamFramer`, and answers
//! RFC 5626 CRLF keep-alives. Everything received goes to one channel as
//! [`Inbound`]; a full channel drops UDP (as the network would) so a flood
//! cannot grow memory without bound.
//!
//! Sending never waits on a peer: [`SipTransport::send`] is called from the
//! single SIP endpoint loop, so one slow peer must not stall every other
//! call. UDP uses `try_send_to` (a full socket buffer drops the datagram;
//! SIP retransmits). Each TCP connection has a bounded queue drained by its
//! own writer task: a full queue means the peer stopped reading, and the
//! connection is closed rather than waited on. A connection the bridge
//! opens is registered with its queue at once and connects in its own task
//! (bounded by [`TCP_CONNECT_TIMEOUT`]); messages queue meanwhile.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

use super::message::{Frame, Limits, StreamFramer};
use super::transaction::Transport;

#[cfg(test)]
mod tests;

/// Largest datagram read; bigger ones are truncated by the kernel and then
/// refused by the parser.
const MAX_DATAGRAM: usize = 65_535;
/// Messages queued towards the endpoint before UDP starts dropping.
const INBOUND_QUEUE: usize = 8192;
/// Simultaneous TCP connections (accepted and opened); more are refused.
const MAX_TCP_CONNECTIONS: usize = 4096;
/// A TCP connection silent this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(600);
/// Messages queued towards one TCP peer beyond what the kernel buffers
/// hold; more means the peer stopped reading, and its connection is closed.
const TCP_QUEUE: usize = 256;
/// How long a connection the bridge opens may take to connect; its queued
/// messages are dropped after that (SIP transactions time out on their own).
const TCP_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// One received message (or datagram) and where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub bytes: Bytes,
    pub source: SocketAddr,
    pub transport: Transport,
}

/// One TCP connection as senders see it: its queue, and how to close it.
struct Connection {
    /// Tells this entry from a later connection to the same peer.
    id: u64,
    queue: mpsc::Sender<Bytes>,
    close: CancellationToken,
}

/// The TCP connections by peer address.
#[derive(Default)]
struct Connections {
    map: Mutex<HashMap<SocketAddr, Connection>>,
    next_id: AtomicU64,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, HashMap<SocketAddr, Connection>> {
        // Nothing panics while holding the lock; recover the map anyway.
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection to `peer` (replacing any entry for it) and
    /// returns what its tasks need; `None` when there are too many.
    fn register(
        &self,
        map: &mut HashMap<SocketAddr, Connection>,
        peer: SocketAddr,
    ) -> Option<(
        u64,
        mpsc::Sender<Bytes>,
        mpsc::Receiver<Bytes>,
        CancellationToken,
    )> {
        if map.len() >= MAX_TCP_CONNECTIONS && !map.contains_key(&peer) {
            return None;
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (queue, rx) = mpsc::channel(TCP_QUEUE);
        let close = CancellationToken::new();
        let entry = Connection {
            id,
            queue: queue.clone(),
            close: close.clone(),
        };
        if let Some(old) = map.insert(peer, entry) {
            old.close.cancel();
        }
        Some((id, queue, rx, close))
    }

    /// Forgets connection `id` to `peer` (not a newer one to the same peer).
    fn remove(&self, peer: SocketAddr, id: u64) {
        let mut map = self.lock();
        if map.get(&peer).is_some_and(|c| c.id == id) {
            map.remove(&peer);
        }
    }
}

/// The bound sockets; cheap to clone.
#[derive(Clone)]
pub struct SipTransport {
    /// The UDP socket for sending: a nonblocking handle on the same socket
    /// the receiver reads, so a send is one `sendto` that the kernel either
    /// takes or refuses (`WouldBlock`), whatever the runtime last polled.
    udp: Arc<std::net::UdpSocket>,
    tcp: Arc<Connections>,
    local: SocketAddr,
    /// Where connections the bridge opens deliver what they receive.
    inbound: mpsc::Sender<Inbound>,
    connect_timeout: Duration,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr` (TCP on the port UDP got when `addr`'s
    /// port is 0) and starts receiving.
    pub async fn bind(addr: SocketAddr) -> io::Result<(Self, mpsc::Receiver<Inbound>)> {
        let (udp, listener) = bind_pair(addr).await?;
        let local = udp.local_addr()?;
        let sender = socket2::SockRef::from(&udp).try_clone()?;
        sender.set_nonblocking(true)?;
        let udp = Arc::new(udp);
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let tcp: Arc<Connections> = Arc::default();
        tokio::spawn(receive_udp(udp.clone(), tx.clone()));
        tokio::spawn(accept_tcp(listener, tcp.clone(), tx.clone()));
        Ok((
            Self {
                udp: Arc::new(sender.into()),
                tcp,
                local,
                inbound: tx,
                connect_timeout: TCP_CONNECT_TIMEOUT,
            },
            rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends `bytes` to `destination` without waiting on the peer or the
    /// socket (see the module doc): the message is handed to the kernel
    /// (UDP) or to the connection's queue (TCP), or dropped and counted.
    /// On TCP the connection the peer opened is used, or a new one is made
    /// (requests the bridge sends). An error means the message was dropped.
    pub fn send(
        &self,
        bytes: Bytes,
        destination: SocketAddr,
        transport: Transport,
    ) -> io::Result<()> {
        match transport {
            Transport::Udp => match self.udp.send_to(&bytes, destination) {
                Ok(_) => Ok(()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // As the network would drop it; SIP retransmits.
                    dropped("udp", "would_block");
                    Ok(())
                }
                Err(e) => Err(e),
            },
            _ => self.send_tcp(bytes, destination),
        }
    }

    fn send_tcp(&self, bytes: Bytes, destination: SocketAddr) -> io::Result<()> {
        let mut map = self.tcp.lock();
        let sent = match map.get(&destination) {
            Some(c) => c.queue.try_send(bytes),
            None => Err(TrySendError::Closed(bytes)),
        };
        let bytes = match sent {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(_)) => {
                // The peer stopped reading: the kernel buffers and the
                // queue are full. Waiting would stall every other call.
                if let Some(c) = map.remove(&destination) {
                    c.close.cancel();
                }
                drop(map);
                tracing::warn!(peer = %destination, "SIP TCP peer stopped reading; closing the connection");
                dropped("tcp", "queue_full");
                return Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "SIP TCP peer stopped reading; connection closed",
                ));
            }
            // No connection, or it ended meanwhile: open a new one.
            Err(TrySendError::Closed(bytes)) => bytes,
        };
        let Some((id, queue, rx, close)) = self.tcp.register(&mut map, destination) else {
            drop(map);
            tracing::warn!(peer = %destination, "too many SIP TCP connections; not connecting");
            dropped("tcp", "too_many_connections");
            return Err(io::Error::other("too many SIP TCP connections"));
        };
        // A fresh queue has room.
        let _ = queue.try_send(bytes);
        drop(map);
        tokio::spawn(connect(
            destination,
            id,
            queue,
            rx,
            close,
            self.tcp.clone(),
            self.inbound.clone(),
            self.connect_timeout,
        ));
        Ok(())
    }
}

/// Counts a message sent to nobody.
fn dropped(transport: &'static str, reason: &'static str) {
    metrics::counter!("pbx_sip_send_dropped_total", "transport" => transport, "reason" => reason)
        .increment(1);
}

/// Opens connection `id` to `peer` and runs it; messages queued meanwhile
/// are sent once connected, or dropped when connecting fails or times out.
#[allow(clippy::too_many_arguments)]
async fn connect(
    peer: SocketAddr,
    id: u64,
    queue: mpsc::Sender<Bytes>,
    mut rx: mpsc::Receiver<Bytes>,
    close: CancellationToken,
    connections: Arc<Connections>,
    inbound: mpsc::Sender<Inbound>,
    timeout: Duration,
) {
    let outcome = tokio::select! {
        _ = close.cancelled() => None,
        r = tokio::time::timeout(timeout, TcpStream::connect(peer)) => Some(r),
    };
    let error = match outcome {
        Some(Ok(Ok(stream))) => {
            let _ = stream.set_nodelay(true);
            run_connection(stream, peer, id, queue, rx, close, connections, inbound).await;
            return;
        }
        Some(Ok(Err(e))) => e.to_string(),
        Some(Err(_)) => "timed out".to_owned(),
        None => "closed while connecting".to_owned(),
    };
    connections.remove(peer, id);
    drop(queue);
    rx.close();
    let mut lost = 0u64;
    while rx.try_recv().is_ok() {
        lost += 1;
    }
    tracing::debug!(%peer, %error, dropped = lost, "SIP TCP connect failed");
    metrics::counter!("pbx_sip_send_dropped_total", "transport" => "tcp", "reason" => "connect_failed")
        .increment(lost);
}
/// Kernel receive buffer asked for the UDP socket: a burst of thousands of
/// REGISTERs must wait in the kernel rather than be dropped (the default
/// ~200 KB holds a few hundred datagrams).
const UDP_RECV_BUFFER: usize = 8 * 1024 * 1024;

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(UDP_RECV_BUFFER) {
        tracing::debug!(error = %e, "cannot enlarge the SIP UDP receive buffer");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// UDP and TCP on the same port. With port 0 the kernel picks UDP's, and
/// that number may be taken for TCP: then another is tried.
async fn bind_pair(addr: SocketAddr) -> io::Result<(UdpSocket, TcpListener)> {
    let mut attempts = 0;
    loop {
        let udp = udp_socket(addr)?;
        match TcpListener::bind(udp.local_addr()?).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) if addr.port() == 0 && attempts < 20 => {
                attempts += 1;
                tracing::debug!(error = %e, "TCP port taken; picking another pair");
            }
            Err(e) => return Err(e),
        }
    }
}

async fn receive_udp(socket: Arc<UdpSocket>, tx: mpsc::Sender<Inbound>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, source)) => {
                let inbound = Inbound {
                    bytes: Bytes::copy_from_slice(&buf[..n]),
                    source,
                    transport: Transport::Udp,
                };
                match tx.try_send(inbound) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        metrics::counter!("pbx_sip_dropped_total", "reason" => "queue_full")
                            .increment(1);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
            // ICMP port unreachable from an earlier send shows up here on
            // some systems; it is not fatal to the socket.
            Err(e) => tracing::debug!(error = %e, "UDP receive error"),
        }
    }
}

async fn accept_tcp(
    listener: TcpListener,
    connections: Arc<Connections>,
    tx: mpsc::Sender<Inbound>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let registered = {
            let mut map = connections.lock();
            connections.register(&mut map, peer)
        };
        let Some((id, queue, rx, close)) = registered else {
            tracing::warn!(%peer, "too many SIP TCP connections; refusing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(run_connection(
            stream,
            peer,
            id,
            queue,
            rx,
            close,
            connections.clone(),
            tx.clone(),
        ));
    }
}

/// Runs connection `id` to `peer` (registered in `connections`): a writer
/// draining `rx` into the socket, and a reader framing messages into `tx`.
/// `close` cancelled (the peer stopped reading) aborts both at once.
#[allow(clippy::too_many_arguments)]
async fn run_connection(
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    queue: mpsc::Sender<Bytes>,
    rx: mpsc::Receiver<Bytes>,
    close: CancellationToken,
    connections: Arc<Connections>,
    tx: mpsc::Sender<Inbound>,
) {
    let (mut reader, writer) = stream.into_split();
    tokio::spawn(write_queue(writer, peer, rx, close.clone()));
    // Keep-alive answers go through the queue, after what is queued.
    let pong = queue;
    let mut framer = StreamFramer::new(Limits::default());
    let mut buf = BytesMut::with_capacity(4096);
    'read: loop {
        let read = tokio::select! {
            _ = close.cancelled() => break,
            r = tokio::time::timeout(TCP_IDLE, reader.read_buf(&mut buf)) => r,
        };
        match read {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(_)) => {}
        }
        loop {
            match framer.next_frame(&mut buf) {
                Ok(Some(Frame::Message(bytes))) => {
                    let inbound = Inbound {
                        bytes,
                        source: peer,
                        transport: Transport::Tcp,
                    };
                    if tx.send(inbound).await.is_err() {
                        break 'read;
                    }
                }
                Ok(Some(Frame::Ping)) => {
                    let _ = pong.try_send(Bytes::from_static(b"\r\n"));
                }
                Ok(Some(Frame::Pong)) => {}
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "closing SIP TCP connection");
                    break 'read;
                }
            }
        }
    }
    // The writer sends what is queued and stops once no sender is left.
    connections.remove(peer, id);
}

/// Writes queued messages until the queue is dropped, a write fails, or
/// `close` is cancelled; an aborted connection is reset, not lingered on
/// (its peer stopped reading, so the unsent bytes would never leave).
async fn write_queue(
    mut writer: OwnedWriteHalf,
    peer: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    close: CancellationToken,
) {
    let aborted = loop {
        let bytes = tokio::select! {
            _ = close.cancelled() => break true,
            b = rx.recv() => match b {
                Some(b) => b,
                None => break false,
            },
        };
        let written = tokio::select! {
            _ = close.cancelled() => break true,
            w = writer.write_all(&bytes) => w,
        };
        if let Err(e) = written {
            tracing::debug!(%peer, error = %e, "SIP TCP write failed");
            break false;
        }
    };
    if aborted {
        let _ = socket2::SockRef::from(writer.as_ref()).set_linger(Some(Duration::ZERO));
    }
    // Stops the reader too (no-op when it is what ended the connection).
    close.cancel();
}

/// Where `host:port` goes: an IP literal as is (brackets around IPv6
/// allowed), else the name resolved, its first IPv4 answer preferred
/// (the bridge's sockets are usually IPv4). Never on a call's path: the
/// background readers of the call plan and of the trunks call it.
pub async fn resolve(host: &str, port: u16) -> io::Result<SocketAddr> {
    if let Ok(ip) = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{host} resolves to no address"),
            )
        })
}
