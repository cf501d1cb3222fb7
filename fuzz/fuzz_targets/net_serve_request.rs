//! A hoster's request path against a real `hypercore` core: any request (every field
//! peer-chosen) that `datdot_net::screen::screen_request` lets through is answered by
//! `Hypercore::create_proof` without a panic (a panic there poisons the feed's mutex
//! for every later reader). Cores of 0, 1, 7 and 64 blocks, built once.
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use datdot_net::screen::{FeedView, screen_request};
use hypercore::{Hypercore, HypercoreBuilder, Storage};
use hypercore_protocol::schema::Request;
use hypercore_schema::{RequestBlock, RequestSeek, RequestUpgrade};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    core: u8,
    fork: u64,
    block: Option<(u64, u64)>,
    hash: Option<(u64, u64)>,
    seek: Option<u64>,
    upgrade: Option<(u64, u64)>,
}

struct World {
    rt: tokio::runtime::Runtime,
    cores: Vec<Hypercore>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let cores = rt.block_on(async {
            let mut v = Vec::new();
            for n in [0u64, 1, 7, 64] {
                let c = HypercoreBuilder::new(Storage::new_memory().await.expect("memory"))
                    .build()
                    .await
                    .expect("core");
                for i in 0..n {
                    c.append(&vec![i as u8; 1 + (i as usize % 9)])
                        .await
                        .expect("append");
                }
                v.push(c);
            }
            v
        });
        World { rt, cores }
    })
}

fuzz_target!(|i: Input| {
    let w = world();
    let core = &w.cores[usize::from(i.core) % w.cores.len()];
    let rb = |(index, nodes)| RequestBlock { index, nodes };
    let r = Request {
        id: 1,
        fork: i.fork,
        block: i.block.map(rb),
        hash: i.hash.map(rb),
        seek: i.seek.map(|bytes| RequestSeek { bytes }),
        upgrade: i.upgrade.map(|(start, length)| RequestUpgrade { start, length }),
        manifest: false,
        priority: 0,
    };
    let info = core.info();
    let view = FeedView {
        length: info.length,
        byte_length: info.byte_length,
        fork: info.fork,
    };
    if screen_request(&r, view, |b| core.has(b)).is_ok() {
        let _ = w
            .rt
            .block_on(core.create_proof(r.block, r.hash, r.seek, r.upgrade));
    }
});
