use datdot_sim::coinflip::{Behaviour, Scenario, check, run};

#[test]
fn honest_ten_agree() {
    let sc = Scenario::honest(10);
    let r = run(&sc, 1);
    let v = check(&sc, &r);
    assert!(v.is_empty(), "{v:?}");
    for m in &r.members {
        eprintln!("{:?}", m.outcome.as_ref().map(datdot_sim::coinflip::outcome_name));
    }
}

#[test]
fn each_behaviour_ten() {
    for b in Behaviour::ALL {
        for seed in 0..20 {
            let sc = Scenario::random(seed, 10, 0.2, &[b], false);
            let r = run(&sc, seed);
            let v = check(&sc, &r);
            assert!(v.is_empty(), "{b:?} seed {seed}: {v:?}");
        }
    }
}

#[test]
fn debug_equivocate() {
    let sc = Scenario::random(0, 10, 0.2, &[Behaviour::Equivocate], false);
    let r = run(&sc, 0);
    eprintln!("byz {:?}", sc.byzantine);
    for e in &r.members[1].events {
        match e {
            datdot_protocol::coinflip::Event::Fraud { verdict, detected_here, .. } => eprintln!("fraud {:?} here={detected_here}", verdict),
            other => eprintln!("{:?}", other),
        }
    }
}

#[test]
#[ignore]
fn debug_bad_reveal_100() {
    let sc = Scenario::random(11, 100, 0.2, &[Behaviour::BadReveal], false);
    let r = run(&sc, 11);
    let h = r.members.iter().position(|m| m.behaviour.is_none()).unwrap();
    for e in &r.members[h].events {
        match e {
            datdot_protocol::coinflip::Event::Fraud { verdict, detected_here, .. } => eprintln!("fraud {:?} r{} here={detected_here}", verdict.kind, verdict.round),
            datdot_protocol::coinflip::Event::RoundEnded { round, exit } => eprintln!("round {round} ended {:?}", match exit { datdot_protocol::coinflip::RoundExit::Malicious(v) => format!("malicious {:?}", v.kind), other => format!("{:?}", other).chars().take(80).collect() }),
            _ => {}
        }
    }
}
