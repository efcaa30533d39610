//! The audit replays a wallet's log from its bytes: a sound log gives a step per entry with the
//! balance after it; a damaged one stops at the first violation with its position and reason.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::sync::Arc;

use scrip_feed::{Entry, Keypair, Seq};
use scrip_ledger::audit::audit_with;
use scrip_ledger::kit::{KitWallet, notaries};
use scrip_ledger::{AuditReport, Verdict, VerifyAll, audit};

fn wallet(seed: u8) -> KitWallet {
    KitWallet::new(Arc::new(Keypair::from_seed(&[seed; 32])), notaries(100, 4))
}

/// Alice: receives 25.00 from the issuer, pays 5.00 to Bob, who rejects it, and reclaims it.
fn alices_log() -> (KitWallet, KitWallet, KitWallet) {
    let mut issuer = wallet(1);
    let mut alice = wallet(2);
    let mut bob = wallet(3);
    let eur = issuer.currency("EUR", 2).unwrap();
    issuer.mint(&eur, 10_000);
    let funding = issuer.order(alice.id(), &eur, 2_500);
    alice.accept(&issuer, funding);
    let payment = alice.order(bob.id(), &eur, 500);
    let rejection = bob.reject(&alice, payment);
    alice.reclaim(payment, &bob, rejection);
    (issuer, alice, bob)
}

fn violation(report: &AuditReport) -> (u64, String) {
    match &report.verdict {
        Verdict::Violation { seq, code, .. } => (*seq, code.clone()),
        Verdict::Sound => panic!("the audit found nothing"),
    }
}

#[test]
fn a_sound_log_replays_step_by_step() {
    let (_, alice, bob) = alices_log();
    let report = audit(&alice.id(), &alice.log);
    assert!(report.is_sound(), "{:?}", report.verdict);
    assert_eq!(report.entries, 4);
    assert_eq!(report.quorum, 3);
    let kinds: Vec<&str> = report.steps.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["genesis", "accept", "order", "reclaim"]);
    let after: Vec<Option<&str>> = report
        .steps
        .iter()
        .map(|s| s.balance_after.as_deref())
        .collect();
    assert_eq!(after, [None, Some("25.00"), Some("20.00"), Some("25.00")]);
    assert_eq!(report.steps[2].counterparty, Some(bob.id().to_string()));
    assert_eq!(report.steps[2].direction.as_deref(), Some("-"));
    assert_eq!(report.balances.len(), 1);
    assert_eq!(report.balances[0].amount, "25.00");
    // Serializable for the CLI.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["verdict"]["verdict"], "sound");
    assert_eq!(json["steps"][1]["amount"], "25.00");
}

#[test]
fn parallel_and_sequential_audits_agree() {
    let (issuer, alice, _) = alices_log();
    assert_eq!(
        audit(&alice.id(), &alice.log),
        audit_with(&alice.id(), &alice.log, &VerifyAll)
    );
    assert_eq!(
        audit(&issuer.id(), &issuer.log),
        audit_with(&issuer.id(), &issuer.log, &VerifyAll)
    );
}

#[test]
fn a_tampered_payload_is_found_where_it_is() {
    let (_, mut alice, _) = alices_log();
    let entry = &alice.log[2].entry;
    let mut payload = entry.payload().unwrap().to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    alice.log[2].entry = Entry::decode(entry.header_bytes(), Some(payload)).unwrap();
    let report = audit(&alice.id(), &alice.log);
    assert_eq!(violation(&report), (3, "invalid-entry".into()));
    assert_eq!(report.steps.len(), 3, "the replay stops at the violation");
}

#[test]
fn a_missing_certificate_is_found() {
    let (_, mut alice, _) = alices_log();
    alice.log[1].certificate = None;
    assert_eq!(
        violation(&audit(&alice.id(), &alice.log)),
        (2, "not-certified".into())
    );
}

#[test]
fn a_forged_vote_is_found() {
    let (_, mut alice, _) = alices_log();
    let certificate = alice.log[3].certificate.as_mut().unwrap();
    let mut bytes = *certificate.votes[0].signature.as_bytes();
    bytes[0] ^= 1;
    certificate.votes[0].signature = scrip_feed::Signature::from_bytes(bytes);
    assert_eq!(
        violation(&audit(&alice.id(), &alice.log)),
        (4, "invalid-certificate".into())
    );
}

#[test]
fn a_missing_entry_is_a_gap() {
    let (_, mut alice, _) = alices_log();
    alice.log.remove(1);
    assert_eq!(
        violation(&audit(&alice.id(), &alice.log)),
        (3, "gap".into())
    );
}

#[test]
fn a_forged_citation_is_found() {
    let (issuer, mut alice, _) = alices_log();
    // Rewrite history from the accept on: cite the issuer's mint as an order.
    alice.log.truncate(1);
    alice.accept(&issuer, Seq::new(2));
    let (seq, code) = violation(&audit(&alice.id(), &alice.log));
    assert_eq!((seq, code.as_str()), (2, "not-an-order"));
}

#[test]
fn an_empty_log_has_no_genesis() {
    let alice = wallet(2);
    assert_eq!(
        violation(&audit(&alice.id(), &[])),
        (1, "missing-genesis".into())
    );
}

#[test]
fn the_batched_precomputation_gives_the_answers_of_single_checks_even_for_forgeries() {
    use scrip_ledger::SignatureCheck;
    use scrip_ledger::audit::precompute;
    use scrip_ledger::verify::subject_of;
    let (_, mut alice, _) = alices_log();
    // A forged entry signature, and a forged vote on another entry, among honest ones.
    let entry = &alice.log[2].entry;
    let mut header = entry.header_bytes().to_vec();
    let last = header.len() - 1;
    header[last] ^= 1;
    alice.log[2].entry = Entry::decode(&header, entry.payload().map(<[u8]>::to_vec)).unwrap();
    let certificate = alice.log[3].certificate.as_mut().unwrap();
    let mut bytes = *certificate.votes[1].signature.as_bytes();
    bytes[9] ^= 1;
    certificate.votes[1].signature = scrip_feed::Signature::from_bytes(bytes);
    let pre = precompute(&alice.log);
    assert!(pre.len() > 10, "the honest signatures are precomputed");
    let mut bad = 0;
    for certified in &alice.log {
        let single = VerifyAll.entry(&certified.entry);
        bad += usize::from(single.is_err());
        assert_eq!(
            format!("{:?}", pre.entry(&certified.entry)),
            format!("{single:?}")
        );
        if let Some(certificate) = &certified.certificate {
            let single = VerifyAll.votes(certificate, &subject_of(&certified.entry));
            bad += usize::from(single.is_err());
            assert_eq!(
                format!(
                    "{:?}",
                    pre.votes(certificate, &subject_of(&certified.entry))
                ),
                format!("{single:?}")
            );
        }
    }
    // The forged entry signature, the certificate for that entry (its votes name the entry's
    // old id), and the forged vote.
    assert_eq!(bad, 3, "every forgery is found");
    assert_eq!(
        violation(&audit(&alice.id(), &alice.log)),
        (3, "invalid-entry".into())
    );
}

/// Two citations of one order in a log, one of them forged (a vote changed, or the payload
/// changed under the same signed header) and placed first: the precomputed answers are keyed
/// by what they checked, so the forgery is refused and the genuine citation accepted, in
/// either order. (Keyed by the entry id alone, the later answer overwrote the earlier one, and
/// a forgery placed before the genuine citation passed.)
#[test]
fn a_forged_citation_beside_the_genuine_one_gets_its_own_answer() {
    use scrip_ledger::SignatureCheck;
    use scrip_ledger::audit::precompute;
    use scrip_ledger::content::WalletEntry;
    use scrip_ledger::verify::subject_of;
    let (issuer, _, _) = alices_log();
    let funding = Seq::new(3);
    let genuine = issuer.cite(funding);
    let mut forged_vote = genuine.clone();
    let mut bytes = *forged_vote.entry.certificate.votes[0].signature.as_bytes();
    bytes[9] ^= 1;
    forged_vote.entry.certificate.votes[0].signature = scrip_feed::Signature::from_bytes(bytes);
    let mut forged_payload = genuine.clone();
    let last = forged_payload.entry.bytes.payload.len() - 1;
    forged_payload.entry.bytes.payload[last] ^= 1;
    let order = genuine.entry.bytes.decode().unwrap();
    let subject = subject_of(&order);
    for forged in [&forged_vote, &forged_payload] {
        for forged_first in [true, false] {
            // A log citing the order twice (the fold would refuse the second; only the
            // precomputed answers matter here).
            let mut carol = wallet(9);
            let citations = if forged_first {
                [forged, &genuine]
            } else {
                [&genuine, forged]
            };
            for citation in citations {
                let mut accept = issuer.accept_of(funding, None);
                if let WalletEntry::Accept(a) = &mut accept {
                    a.order = citation.clone();
                }
                carol.push(&accept);
            }
            let pre = precompute(&carol.log);
            for citation in [&genuine, forged] {
                let entry = citation.entry.bytes.decode().unwrap();
                let single = (
                    VerifyAll.entry(&entry),
                    VerifyAll.votes(&citation.entry.certificate, &subject),
                );
                let batched = (
                    pre.entry(&entry),
                    pre.votes(&citation.entry.certificate, &subject),
                );
                assert_eq!(
                    format!("{batched:?}"),
                    format!("{single:?}"),
                    "forged first: {forged_first}"
                );
            }
            let forged_entry = forged.entry.bytes.decode().unwrap();
            assert!(
                pre.entry(&forged_entry).is_err()
                    || pre.votes(&forged.entry.certificate, &subject).is_err(),
                "the forgery is refused (forged first: {forged_first})"
            );
        }
    }
}

/// Alice's log and its damaged variants (each as the tests above damage it), sorted by seq.
fn logs_sound_and_damaged() -> Vec<(scrip_feed::FeedId, Vec<scrip_ledger::CertifiedEntry>)> {
    let (issuer, alice, _) = alices_log();
    let mut logs = vec![
        (issuer.id(), issuer.log.clone()),
        (alice.id(), alice.log.clone()),
    ];
    let mut tampered = alice.log.clone();
    let entry = &tampered[2].entry;
    let mut payload = entry.payload().unwrap().to_vec();
    let last = payload.len() - 1;
    payload[last] ^= 1;
    tampered[2].entry = Entry::decode(entry.header_bytes(), Some(payload)).unwrap();
    logs.push((alice.id(), tampered));
    let mut uncertified = alice.log.clone();
    uncertified[1].certificate = None;
    logs.push((alice.id(), uncertified));
    let mut forged = alice.log.clone();
    let certificate = forged[3].certificate.as_mut().unwrap();
    let mut bytes = *certificate.votes[0].signature.as_bytes();
    bytes[0] ^= 1;
    certificate.votes[0].signature = scrip_feed::Signature::from_bytes(bytes);
    logs.push((alice.id(), forged));
    let mut gap = alice.log.clone();
    gap.remove(1);
    logs.push((alice.id(), gap));
    let mut headless = alice.log.clone();
    headless.remove(0);
    logs.push((alice.id(), headless));
    logs.push((alice.id(), Vec::new()));
    logs
}

/// An audit fed the log in parts of every size (one entry at a time up to all at once), each
/// part's signatures checked in parallel or one by one, gives exactly the whole log's report,
/// sound or at its first violation.
#[test]
fn an_audit_fed_in_parts_gives_the_whole_logs_report() {
    use scrip_ledger::Auditor;
    let logs = logs_sound_and_damaged();
    let mut violations = 0;
    for (wallet, log) in &logs {
        let whole = audit(wallet, log);
        violations += usize::from(!whole.is_sound());
        for size in 1..=log.len().max(1) {
            let mut parallel = Auditor::new(*wallet);
            let mut single = Auditor::new(*wallet);
            for part in log.chunks(size) {
                parallel.push(part);
                single.push_with(part, &VerifyAll);
            }
            assert_eq!(parallel.finish(), whole, "parts of {size}");
            assert_eq!(
                single.finish(),
                whole,
                "parts of {size}, checked one by one"
            );
        }
    }
    assert_eq!(violations, logs.len() - 2, "every damaged log is caught");
}

/// Once an audit stops at a violation, what is pushed after it is not looked at.
#[test]
fn an_audit_fed_in_parts_stops_at_the_first_violation() {
    use scrip_ledger::Auditor;
    let (_, mut alice, _) = alices_log();
    alice.log[1].certificate = None;
    let mut auditor = Auditor::new(alice.id());
    assert!(auditor.push(&alice.log[..1]), "the genesis is sound");
    assert!(
        !auditor.push(&alice.log[1..2]),
        "the uncertified accept stops it"
    );
    assert!(
        !auditor.push(&alice.log[2..]),
        "nothing after it is looked at"
    );
    let report = auditor.finish();
    assert_eq!(violation(&report), (2, "not-certified".into()));
    assert_eq!(report.steps.len(), 2);
}
