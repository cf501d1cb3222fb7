//! `datdot-sim network` on a seeded small population with every class: the production
//! pallet, lifecycles, coin flips and audits; every invariant holds.

use datdot_sim::network::{self, Config, expected_detection};

#[test]
fn a_small_network_of_every_class_keeps_every_invariant() {
    let cfg = Config {
        hosters: 100,
        attestors: 60,
        epochs: 2,
        replicas: 2,
        feed_length: 1024,
        block_size: 4096,
        block_ms: datdot_sim::network::runtime::block_ms(),
        seed: 11,
        threads: 2,
    };
    let o = network::run(&cfg);
    let table = network::table(&cfg, &o);
    println!("{table}");
    assert!(
        o.violations.is_empty(),
        "{:#?}\nreplay: {}",
        o.violations,
        cfg.command()
    );
    assert_eq!(o.honest_penalised, 0);
    assert!(
        o.challenges >= 110,
        "two challenges a contract: {}",
        o.challenges
    );
    assert_eq!(o.settled, o.challenges);
    // Every corrupt hoster audited is convicted, every equivocator proven.
    assert!(o.fraud.0 > 0 && o.fraud.1 > 0, "{:?}", o.fraud);
    let honest = &o.classes["honest"];
    assert_eq!(honest.failed, 0);
    assert!(honest.passed > 0);
    let lossy = &o.classes["lossy 50%"];
    assert_eq!(
        lossy.passed, 0,
        "a hoster that lost half its feed never passes"
    );
    assert!(lossy.saw_missing as f64 / lossy.reports as f64 > expected_detection(0.5, 32) - 1e-6);
    // Deterministic: the same seed gives the same figures with another thread count.
    let again = network::run(&Config {
        threads: 1,
        ..cfg.clone()
    });
    assert_eq!(
        network::table(&cfg, &again)
            .lines()
            .take(30)
            .filter(|l| !l.starts_with("wall"))
            .collect::<Vec<_>>(),
        table
            .lines()
            .take(30)
            .filter(|l| !l.starts_with("wall"))
            .collect::<Vec<_>>()
    );
}
