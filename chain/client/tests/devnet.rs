//! Against a running devnet (`scripts/devnet-chain start`): set `DATDOT_CHAIN_URL`
//! (e.g. `ws://127.0.0.1:8000`); skipped otherwise.

use datdot_chain_client::{ChainClient, Role, dev, endpoint};
use subxt::utils::AccountId32;

#[tokio::test]
async fn register_and_read_back() -> anyhow::Result<()> {
    let Ok(url) = std::env::var("DATDOT_CHAIN_URL") else {
        eprintln!("DATDOT_CHAIN_URL not set: skipped");
        return Ok(());
    };
    let chain = ChainClient::connect(&url).await?;
    let charlie = dev::charlie();
    let who = AccountId32::from(charlie.public_key().0);
    // A valid ed25519 point: the base point's encoding.
    let mut key = [0u8; 32];
    key[0] = 0x58;
    for b in &mut key[1..] {
        *b = 0x66;
    }
    let stake = 50 * 1_000_000_000_000u128;
    chain
        .register(
            &charlie,
            Role::Attestor,
            stake,
            endpoint("127.0.0.1:4001", [3; 32], key),
            0,
        )
        .await?;
    assert_eq!(chain.stake_and_score(&who).await?, Some((stake, 500)));
    Ok(())
}
