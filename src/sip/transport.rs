//! SIP over UDP and TCP (RFC 3261 §18): the only part of the SIP stack that
//! touches sockets. UDP is one message per datagram; TCP is framed by
//! Content-Length with the message layer's `StreamFramer`, and answers
//! RFC 5626 CRLF keep-alives. Everything received goes to one channel as
//! [`Inbound`]; a full channel drops UDP (as the network would) so a flood
//! cannot grow memory without bound.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

use super::message::{Frame, Limits, StreamFramer};
use super::transaction::Transport;

/// Largest datagram read; bigger ones are truncated by the kernel and then
/// refused by the parser.
const MAX_DATAGRAM: usize = 65_535;
/// Messages queued towards the endpoint before UDP starts dropping.
const INBOUND_QUEUE: usize = 8192;
/// Simultaneous TCP connections; more are refused.
const MAX_TCP_CONNECTIONS: usize = 4096;
/// A TCP connection silent this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(600);

/// One received message (or datagram) and where it came from.
#[derive(Debug)]
pub struct Inbound {
    pub bytes: Bytes,
    pub source: SocketAddr,
    pub transport: Transport,
}

type Connections = Arc<Mutex<HashMap<SocketAddr, mpsc::Sender<Bytes>>>>;

/// The bound sockets; cheap to clone.
#[derive(Clone)]
pub struct SipTransport {
    udp: Arc<UdpSocket>,
    tcp: Connections,
    local: SocketAddr,
    /// Where connections the bridge opens deliver what they receive.
    inbound: mpsc::Sender<Inbound>,
}

impl SipTransport {
    /// Binds UDP and TCP on `addr` (TCP on the port UDP got when `addr`'s
    /// port is 0) and starts receiving.
    pub async fn bind(addr: SocketAddr) -> io::Result<(Self, mpsc::Receiver<Inbound>)> {
        let (udp, listener) = bind_pair(addr).await?;
        let udp = Arc::new(udp);
        let local = udp.local_addr()?;
        let (tx, rx) = mpsc::channel(INBOUND_QUEUE);
        let tcp: Connections = Arc::default();
        tokio::spawn(receive_udp(udp.clone(), tx.clone()));
        tokio::spawn(accept_tcp(listener, tcp.clone(), tx.clone()));
        Ok((
            Self {
                udp,
                tcp,
                local,
                inbound: tx,
            },
            rx,
        ))
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends `bytes` to `destination`. On TCP the connection the peer
    /// opened is used, or a new one is made (requests the bridge sends).
    pub async fn send(
        &self,
        bytes: Bytes,
        destination: SocketAddr,
        transport: Transport,
    ) -> io::Result<()> {
        match transport {
            Transport::Udp => {
                self.udp.send_to(&bytes, destination).await?;
                Ok(())
            }
            _ => {
                let sender = self
                    .tcp
                    .lock()
                    .map_err(|_| io::Error::other("poisoned"))?
                    .get(&destination)
                    .cloned();
                let sender = match sender {
                    Some(s) => s,
                    None => self.connect(destination).await?,
                };
                sender
                    .send(bytes)
                    .await
                    .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
            }
        }
    }

    async fn connect(&self, destination: SocketAddr) -> io::Result<mpsc::Sender<Bytes>> {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(destination))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TCP connect timed out"))??;
        Ok(spawn_connection(
            stream,
            destination,
            self.tcp.clone(),
            self.inbound.clone(),
        ))
    }
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

async fn accept_tcp(listener: TcpListener, connections: Connections, tx: mpsc::Sender<Inbound>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let open = connections.lock().map(|c| c.len()).unwrap_or(usize::MAX);
        if open >= MAX_TCP_CONNECTIONS {
            tracing::warn!(%peer, "too many SIP TCP connections; refusing");
            continue;
        }
        let _ = stream.set_nodelay(true);
        spawn_connection(stream, peer, connections.clone(), tx.clone());
    }
}

/// Runs one TCP connection: a writer fed by the returned sender, and a
/// reader that frames messages into `tx`.
fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    connections: Connections,
    tx: mpsc::Sender<Inbound>,
) -> mpsc::Sender<Bytes> {
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(256);
    if let Ok(mut map) = connections.lock() {
        map.insert(peer, out_tx.clone());
    }
    let (mut reader, mut writer) = stream.into_split();
    let pong = out_tx.clone();
    tokio::spawn(async move {
        while let Some(bytes) = out_rx.recv().await {
            if writer.write_all(&bytes).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut framer = StreamFramer::new(Limits::default());
        let mut buf = BytesMut::with_capacity(4096);
        'read: loop {
            let read = tokio::time::timeout(TCP_IDLE, reader.read_buf(&mut buf)).await;
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
        if let Ok(mut map) = connections.lock() {
            map.remove(&peer);
        }
    });
    out_tx
}
