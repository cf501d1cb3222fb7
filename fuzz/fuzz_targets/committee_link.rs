//! The committee link's responder (`datdot_net::committee::accept`, then `LinkRx::recv`)
//! on a real loopback socket, fed by a hand-driven initiator: either raw bytes from the
//! first byte (preamble, `u16` framing, Noise handshake), or a real handshake followed by
//! steps the fuzzer picks — whole messages of any length (split into Noise messages as
//! the real sender does), transport plaintext the sender never writes (arbitrary length
//! prefixes, cut anywhere), undecryptable frames and raw bytes. It must never panic;
//! every message it hands out is within the limit; and while the peer sent only
//! well-formed messages within the limit, exactly those come out, in order.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use arbitrary::Arbitrary;
use datdot_net::committee::{MAGIC, PATTERN, PROLOGUE, StaticKey, accept};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_MSG: usize = 4096;

struct World {
    rt: tokio::runtime::Runtime,
    listener: TcpListener,
    key: StaticKey,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        World {
            rt,
            listener,
            key: StaticKey::from_seed(&[7; 32]),
        }
    })
}

#[derive(Arbitrary, Debug)]
enum Step {
    /// A whole message, framed as `LinkTx::send` frames it.
    Message(Vec<u8>),
    /// Transport plaintext as is (any length prefix, any cut), in one Noise message.
    Plain(Vec<u8>),
    /// A `u16`-framed blob that is no Noise message of ours.
    Frame(Vec<u8>),
    /// Bytes on the socket as they are.
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw(Vec<u8>),
    Session(Vec<Step>),
}

async fn frame(tcp: &mut TcpStream, msg: &[u8]) -> std::io::Result<()> {
    let mut b = (msg.len() as u16).to_be_bytes().to_vec();
    b.extend_from_slice(msg);
    tcp.write_all(&b).await
}

/// The initiator's side of XX with an arbitrary static key; returns its transport
/// state, or `None` if the responder went away.
async fn handshake(tcp: &mut TcpStream) -> Option<snow::TransportState> {
    let mut hs = snow::Builder::new(PATTERN.parse().ok()?)
        .local_private_key(&[3; 32])
        .ok()?
        .prologue(PROLOGUE)
        .ok()?
        .build_initiator()
        .ok()?;
    let mut buf = vec![0u8; 65_535];
    tcp.write_all(MAGIC).await.ok()?;
    let n = hs.write_message(&[], &mut buf).ok()?;
    frame(tcp, &buf[..n]).await.ok()?;
    let len = tcp.read_u16().await.ok()? as usize;
    let mut msg = vec![0u8; len];
    tcp.read_exact(&mut msg).await.ok()?;
    hs.read_message(&msg, &mut buf).ok()?;
    let n = hs.write_message(&[], &mut buf).ok()?;
    frame(tcp, &buf[..n]).await.ok()?;
    hs.into_transport_mode().ok()
}

/// Send the steps; returns the messages a correct responder must hand out, if every
/// step was a well-formed message within the limit.
async fn drive(mut tcp: TcpStream, steps: Vec<Step>) -> Option<Vec<Vec<u8>>> {
    let mut expect = Some(Vec::new());
    let mut t = handshake(&mut tcp).await?;
    let mut buf = vec![0u8; 65_535];
    for step in steps {
        let sent = match step {
            Step::Message(m) => {
                let mut stream = (m.len() as u32).to_le_bytes().to_vec();
                stream.extend_from_slice(&m);
                let mut ok = true;
                for chunk in stream.chunks(65_535 - 16) {
                    let n = t.write_message(chunk, &mut buf).expect("encrypt");
                    ok &= frame(&mut tcp, &buf[..n]).await.is_ok();
                }
                match &mut expect {
                    Some(e) if m.len() <= MAX_MSG => e.push(m),
                    _ => expect = None,
                }
                ok
            }
            Step::Plain(p) => {
                expect = None;
                let p = &p[..p.len().min(65_535 - 16)];
                let n = t.write_message(p, &mut buf).expect("encrypt");
                frame(&mut tcp, &buf[..n]).await.is_ok()
            }
            Step::Frame(f) => {
                expect = None;
                frame(&mut tcp, &f[..f.len().min(65_535)]).await.is_ok()
            }
            Step::Raw(r) => {
                expect = None;
                tcp.write_all(&r).await.is_ok()
            }
        };
        if !sent {
            return None;
        }
    }
    let _ = tcp.shutdown().await;
    expect
}

fuzz_target!(|input: Input| {
    let w = world();
    w.rt.block_on(async {
        let addr = w.listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = w.listener.accept().await.expect("accept");
        let serve = async {
            let mut got = Vec::new();
            let Ok(mut link) = accept(server, &w.key, MAX_MSG, Duration::from_millis(300)).await
            else {
                return None;
            };
            let recv = async {
                while let Ok(Some(m)) = link.rx.recv().await {
                    assert!(m.len() <= MAX_MSG, "a message over the limit came out");
                    got.push(m);
                }
            };
            let _ = tokio::time::timeout(Duration::from_millis(500), recv).await;
            Some(got)
        };
        match input {
            Input::Raw(bytes) => {
                let write = async {
                    let _ = client.write_all(&bytes).await;
                    let _ = client.shutdown().await;
                };
                let ((), r) = tokio::join!(write, serve);
                assert!(r.is_none(), "random bytes completed a Noise handshake");
            }
            Input::Session(steps) => {
                let (expect, got) = tokio::join!(drive(client, steps), serve);
                if let (Some(expect), Some(got)) = (expect, got) {
                    assert_eq!(got, expect, "well-formed messages came out changed");
                }
            }
        }
    });
});
