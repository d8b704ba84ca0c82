//! Real sockets on 127.0.0.1: sending never waits on a peer.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

use super::{SipTransport, TCP_QUEUE};
use crate::sip::transaction::Transport;

const LOCALHOST: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);
/// Safety net so a broken transport fails the test instead of hanging it;
/// no assertion depends on it.
const GUARD: Duration = Duration::from_secs(30);

async fn transport() -> SipTransport {
    SipTransport::bind(LOCALHOST).await.unwrap().0
}

fn small(i: usize) -> Bytes {
    Bytes::from(format!("{i:08}\n"))
}

/// A TCP peer that reads everything and reports each 9-byte message's
/// number as it arrives.
async fn reading_peer() -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind(LOCALHOST).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            while buf.len() >= 9 {
                let line: Vec<u8> = buf.drain(..9).collect();
                let i = std::str::from_utf8(&line[..8]).unwrap().parse().unwrap();
                if tx.send(i).is_err() {
                    return;
                }
            }
        }
    });
    (addr, rx)
}

async fn expect(rx: &mut mpsc::UnboundedReceiver<usize>, i: usize) {
    let got = tokio::time::timeout(GUARD, rx.recv()).await.unwrap();
    assert_eq!(got, Some(i));
}

async fn expect_udp(socket: &UdpSocket, i: usize) {
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(GUARD, socket.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&buf[..n], &small(i)[..]);
}

#[tokio::test]
async fn a_peer_that_stops_reading_never_holds_up_other_peers() {
    let sip = transport().await;
    // Accepts, never reads; hands over its end of the connection.
    let stuck = TcpListener::bind(LOCALHOST).await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let (held_tx, mut held) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (stream, _) = stuck.accept().await.unwrap();
        let _ = held_tx.send(stream);
        std::future::pending::<()>().await;
    });
    let (reader_addr, mut reader) = reading_peer().await;
    let udp = UdpSocket::bind(LOCALHOST).await.unwrap();
    let udp_addr = udp.local_addr().unwrap();

    let big = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut closed_after = None;
    for i in 0..20_000 {
        let to_stuck = sip.send(big.clone(), stuck_addr, Transport::Tcp);
        sip.send(small(i), reader_addr, Transport::Tcp).unwrap();
        sip.send(small(i), udp_addr, Transport::Udp).unwrap();
        // The other peers get message i while everything sent to the
        // stuck one is still piling up: nothing waited on it.
        expect(&mut reader, i).await;
        expect_udp(&udp, i).await;
        if to_stuck.is_err() {
            closed_after = Some(i);
            break;
        }
    }
    let closed_after = closed_after.expect("the stuck peer's queue never filled");
    // The kernel buffers took some, then the queue filled.
    assert!(
        closed_after >= TCP_QUEUE,
        "closed after {closed_after} messages"
    );

    // The stuck connection is closed: its peer finally reading sees the
    // end (a reset, or EOF after what the kernel had buffered).
    let mut stream = tokio::time::timeout(GUARD, held.recv())
        .await
        .unwrap()
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let mut received = 0usize;
    loop {
        match tokio::time::timeout(GUARD, stream.read(&mut sink))
            .await
            .unwrap()
        {
            Ok(0) | Err(_) => break,
            Ok(n) => received += n,
        }
    }
    assert!(received < (closed_after + 1) * big.len());
    assert!(!sip.tcp.lock().contains_key(&stuck_addr));

    // The other connection is still in use.
    sip.send(small(7), reader_addr, Transport::Tcp).unwrap();
    expect(&mut reader, 7).await;
}

/// A listener with backlog 0 whose accept queue is already full: on Linux
/// further SYNs are dropped and `connect` hangs.
fn hanging_listener() -> (std::net::TcpListener, std::net::TcpStream) {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.bind(&LOCALHOST.into()).unwrap();
    socket.listen(0).unwrap();
    let listener: std::net::TcpListener = socket.into();
    let filler = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

#[tokio::test]
async fn a_hanging_connect_never_holds_up_other_peers() {
    let mut sip = transport().await;
    sip.connect_timeout = Duration::from_millis(300);
    let (hanging, _filler) = hanging_listener();
    let hanging_addr = hanging.local_addr().unwrap();
    let (reader_addr, mut reader) = reading_peer().await;
    let udp = UdpSocket::bind(LOCALHOST).await.unwrap();
    let udp_addr = udp.local_addr().unwrap();

    for i in 0..10 {
        // Queued while the connect hangs.
        sip.send(small(i), hanging_addr, Transport::Tcp).unwrap();
        sip.send(small(i), reader_addr, Transport::Tcp).unwrap();
        sip.send(small(i), udp_addr, Transport::Udp).unwrap();
        expect(&mut reader, i).await;
        expect_udp(&udp, i).await;
    }
    assert!(sip.tcp.lock().contains_key(&hanging_addr));

    // The connect times out: its entry and queue go.
    tokio::time::timeout(GUARD, async {
        while sip.tcp.lock().contains_key(&hanging_addr) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap();
    sip.send(small(10), reader_addr, Transport::Tcp).unwrap();
    expect(&mut reader, 10).await;
}

#[tokio::test]
async fn a_connection_the_bridge_opens_delivers_what_it_receives() {
    let (sip, mut inbound) = SipTransport::bind(LOCALHOST).await.unwrap();
    let listener = TcpListener::bind(LOCALHOST).await.unwrap();
    let addr = listener.local_addr().unwrap();
    sip.send(Bytes::from_static(b"\r\n\r\n"), addr, Transport::Tcp)
        .unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut ping = [0u8; 4];
    stream.read_exact(&mut ping).await.unwrap();
    let message = b"OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut stream, message)
        .await
        .unwrap();
    let got = tokio::time::timeout(GUARD, inbound.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got.bytes[..], &message[..]);
    assert_eq!(got.source, addr);
    assert_eq!(got.transport, Transport::Tcp);
}
