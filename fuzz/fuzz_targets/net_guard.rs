//! `datdot_net::guard::check_frame` on arbitrary decrypted frames: never panics, and a
//! frame it accepts decodes in a real (unguarded) `hypercore_protocol::Protocol` without
//! an error, a panic or a huge allocation (run with `-rss_limit_mb` / `-malloc_limit_mb`
//! to catch the latter: the unguarded decoder asks for terabytes on a 16-byte frame).
#![no_main]

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use datdot_net::guard::check_frame;
use futures::{Sink, Stream};
use hypercore_handshake::{CipherEvent, CipherTrait};
use hypercore_protocol::Protocol;
use libfuzzer_sys::fuzz_target;

/// Plaintext frames handed to the protocol as if the Noise cipher had decrypted them.
struct Replay(VecDeque<Vec<u8>>);

impl Stream for Replay {
    type Item = CipherEvent;
    fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<CipherEvent>> {
        match self.0.pop_front() {
            Some(f) => Poll::Ready(Some(CipherEvent::Message(f))),
            None => Poll::Pending,
        }
    }
}

impl Sink<Vec<u8>> for Replay {
    type Error = io::Error;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, _: Vec<u8>) -> io::Result<()> {
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl CipherTrait for Replay {
    fn remote_public_key(&self) -> Option<[u8; 32]> {
        Some([1; 32])
    }
    fn local_public_key(&self) -> [u8; 32] {
        [2; 32]
    }
    fn handshake_hash(&self) -> Option<Vec<u8>> {
        Some(vec![0x5a; 64])
    }
    fn is_initiator(&self) -> bool {
        false
    }
}

fuzz_target!(|data: &[u8]| {
    if check_frame(data).is_err() {
        return;
    }
    let mut protocol = Protocol::new(Box::new(Replay(VecDeque::from([data.to_vec()]))));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        match Pin::new(&mut protocol).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(_))) => {}
            // A message for a channel the peer opened in the same frame but we never
            // accepted is the protocol's refusal, not the decoder's.
            Poll::Ready(Some(Err(e))) => assert!(
                e.to_string().contains("Channel is not open"),
                "check_frame accepted a frame the decoder refuses: {e}"
            ),
            _ => break,
        }
    }
});
