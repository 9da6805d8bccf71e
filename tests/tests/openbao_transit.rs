//! The OpenBao Transit adapter and the pseudonym core against a real OpenBao.

use anyhow::Result;
use vardhub::adapters::openbao::{MAX_BATCH, Transit};
use vardhub::pseudonymisation::identifier::{luhn_check_digit, parse_personal};
use vardhub::pseudonymisation::pseudonym::LocalKey;
use vardhub_tests::LocalCluster;

/// Made-up personal identity numbers that satisfy the check digit (none is a real person's
/// as far as the test knows; they are generated, never printed).
fn identifiers(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let day = 1 + i % 28;
            let serial = i % 1000;
            let nine = format!("7001{day:02}{serial:03}");
            let ten = format!("{nine}{}", luhn_check_digit(&nine));
            parse_personal(&ten, 2026)
                .expect("valid")
                .canonical()
                .to_string()
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local cluster: run `make test`"]
async fn transit_keys_are_idempotent_and_local_hmac_equals_transit_hmac() -> Result<()> {
    let cluster = LocalCluster::get();
    let transit = Transit::new(
        &cluster.vault_addr,
        &cluster.vault_token,
        "vardhub-test-transit",
    )?;
    transit.ensure_mount().await?;
    assert!(
        !transit.ensure_mount().await?,
        "a second ensure writes nothing"
    );

    let a = transit.ensure_key("domain-a", true).await?;
    let again = transit.ensure_key("domain-a", true).await?;
    assert!(!again.created, "an existing key is left alone");
    assert_eq!(again.latest_version, a.latest_version);
    let b = transit.ensure_key("domain-b", true).await?;
    assert!(
        transit.ensure_key("domain-a", false).await.is_err(),
        "exportability cannot silently change"
    );

    // More than one request's worth, so batching is exercised.
    let ids = identifiers(MAX_BATCH * 2 + 7);
    let inputs: Vec<&[u8]> = ids.iter().map(|s| s.as_bytes()).collect();
    let via_transit = transit
        .hmac_batch("domain-a", a.latest_version, &inputs)
        .await?;
    assert_eq!(via_transit.len(), ids.len());

    let local = LocalKey::new(
        a.latest_version,
        transit
            .export_hmac_key("domain-a", a.latest_version)
            .await?,
    );
    let via_local: Vec<String> = ids.iter().map(|s| local.pseudonym(s.as_bytes())).collect();
    assert!(
        via_local == via_transit,
        "local mode gives the same pseudonyms as Transit"
    );

    let other = transit
        .hmac_batch("domain-b", b.latest_version, &inputs)
        .await?;
    assert!(
        other.iter().zip(&via_transit).all(|(x, y)| x != y),
        "domains give unrelated pseudonyms"
    );

    // A rotation opens a new epoch; the pinned version keeps giving the same pseudonyms.
    transit.rotate("domain-a").await?;
    let rotated = transit.ensure_key("domain-a", true).await?;
    assert_eq!(rotated.latest_version, a.latest_version + 1);
    let pinned = transit
        .hmac_batch("domain-a", a.latest_version, &inputs[..10])
        .await?;
    assert!(
        pinned[..] == via_transit[..10],
        "pinned version is stable across rotation"
    );
    let new_epoch = transit
        .hmac_one("domain-a", rotated.latest_version, inputs[0])
        .await?;
    assert!(new_epoch.starts_with(&format!("vault:v{}:", rotated.latest_version)));
    assert!(new_epoch != via_transit[0]);
    Ok(())
}
