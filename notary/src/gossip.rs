//! Notaries are ordinary peers: a notary service runs beside a replicate node that shares its
//! feed store, and this bridge connects the two.
//!
//! - Node → notary: when the node stores entries of a feed received from a peer, the notary
//!   learns the certified ones ([`NotaryHandle::learn`]). A notary that was down or partitioned
//!   catches up from other notaries, wallets or any peer holding the wallet, with no client
//!   involved; its amnesia guard lifts as soon as it holds what it heard of.
//! - Notary → node: when the notary keeps entries of a wallet (certified ones learned from a
//!   proposal, or the one it voted for), the node is asked to replicate that wallet and told of
//!   the new entries, so that peers get them. At start, every wallet the notary knows is asked
//!   for.
//!
//! Certificates travel as the `scrip/certificate` attachment of their entry; the node must run
//! with [`crate::certified::CertificateCheck`] as its attachment check so that only valid ones
//! are kept.

use scrip_replicate::{Event, Network, NodeLink};
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::service::{NotaryEvent, NotaryHandle, NotaryLink};

/// Starts the bridge between `notary` and the node behind `node` (which must share the
/// notary's feed store). It stops when either side shuts down.
pub fn bridge<N: Network>(node: NodeLink<N>, notary: &NotaryHandle) -> JoinHandle<()> {
    let mut node_events = node.events();
    let mut notary_events = notary.events();
    let link = notary.link();
    tokio::spawn(async move {
        if !replicate_known_wallets(&node, &link).await {
            return;
        }
        loop {
            tokio::select! {
                event = node_events.recv() => match event {
                    Ok(Event::Stored { feed, from: Some(_), received, .. }) if received > 0 => {
                        link.learn(feed).await;
                    }
                    Ok(_) => {}
                    // Missed events: look at every wallet again.
                    Err(RecvError::Lagged(_)) => {
                        for wallet in link.wallets().await {
                            link.learn(wallet).await;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                event = notary_events.recv() => match event {
                    Ok(NotaryEvent::Stored { wallet, head }) => {
                        if node.request_feed(wallet).await.is_err()
                            || node.announce(wallet, head).await.is_err()
                        {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        if !replicate_known_wallets(&node, &link).await {
                            return;
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    })
}

/// Asks the node to replicate every wallet the notary knows. False if the node is gone.
async fn replicate_known_wallets<N: Network>(node: &NodeLink<N>, notary: &NotaryLink) -> bool {
    for wallet in notary.wallets().await {
        if node.request_feed(wallet).await.is_err() {
            return false;
        }
    }
    true
}
