//! The listener's pre-handshake path on a real loopback socket: arbitrary bytes (length
//! prefixes, Noise handshake messages, garbage) sent to `datdot_net::accept`, then EOF.
//! It must end with an error (no valid Noise message comes out of random bytes) and
//! never panic; the framing's limits (4 KiB before the handshake) are on this path.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use datdot_net::{Limits, NoiseIdentity, accept};
use libfuzzer_sys::fuzz_target;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

struct World {
    rt: tokio::runtime::Runtime,
    listener: TcpListener,
    identity: NoiseIdentity,
    limits: Limits,
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
            identity: NoiseIdentity::from_seed([7; 32]),
            limits: Limits {
                handshake_timeout: Duration::from_millis(200),
                ..Limits::default()
            },
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    w.rt.block_on(async {
        let addr = w.listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = w.listener.accept().await.expect("accept");
        let write = async {
            let _ = client.write_all(data).await;
            let _ = client.shutdown().await;
            client
        };
        let (_client, r) = tokio::join!(write, accept(server, &w.identity, &w.limits));
        assert!(r.is_err(), "random bytes completed a Noise handshake");
    });
});
