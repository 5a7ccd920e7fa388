//! Dialing the devices this one trusts: one long-lived task per device that dials while not
//! connected, backs off on failure, and sleeps without polling while connected or until woken.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use failup_wire::{ALPN_SYNC, DeviceId};
use tokio::sync::Notify;

use crate::connection::run_connection;
use crate::engine::State;

/// Longest wait between two attempts to reach a device.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long the device with the larger id waits before its first dial to a newly trusted device.
pub const DIAL_HEAD_START: Duration = Duration::from_secs(1);
/// A connection that lasted this long resets the redial backoff.
pub const STABLE_CONNECTION: Duration = Duration::from_secs(10);

/// What the engine thread keeps about a device's dialing task.
pub(crate) struct Dialer {
    wake: Arc<Notify>,
    pub(crate) addrs: Arc<RwLock<Vec<SocketAddr>>>,
    pub(crate) connected: Arc<AtomicBool>,
}

impl State {
    pub(crate) fn wake(&self, device: DeviceId) {
        if let Some(d) = self.dialers.get(&device) {
            d.connected
                .store(self.conns.contains_key(&device), Ordering::SeqCst);
            d.wake.notify_one();
        }
    }

    /// Ends the dialers of devices no longer trusted, gives the others their current addresses
    /// and starts dialers for devices newly trusted.
    pub(crate) fn update_dialers(
        &mut self,
        trusted: &BTreeSet<DeviceId>,
        known: &BTreeMap<DeviceId, Vec<SocketAddr>>,
    ) {
        // Dialers of devices no longer trusted wake, see it, and end.
        for (device, d) in self.dialers.iter() {
            if !trusted.contains(device) {
                d.connected.store(false, Ordering::SeqCst);
                d.wake.notify_one();
            }
        }
        self.dialers.retain(|device, _| trusted.contains(device));
        for device in trusted.iter().copied() {
            let addrs = self.addrs_of(device, known);
            match self.dialers.get(&device) {
                Some(d) => {
                    if let Ok(mut a) = d.addrs.write() {
                        *a = addrs;
                    }
                    // The circle changed, so the other side may have just come to trust this
                    // device: a dialer backing off after a refusal tries again now.
                    if !self.conns.contains_key(&device) {
                        d.wake.notify_one();
                    }
                }
                None => self.spawn_dialer(device, addrs),
            }
        }
    }

    /// One long-lived task per trusted device: dial while not connected, back off on failure,
    /// and sleep without polling while connected or until woken.
    fn spawn_dialer(&mut self, device: DeviceId, addrs: Vec<SocketAddr>) {
        let dialer = Dialer {
            wake: Arc::new(Notify::new()),
            addrs: Arc::new(RwLock::new(addrs)),
            connected: Arc::new(AtomicBool::new(self.conns.contains_key(&device))),
        };
        let (wake, addrs, connected) = (
            dialer.wake.clone(),
            dialer.addrs.clone(),
            dialer.connected.clone(),
        );
        self.dialers.insert(device, dialer);
        let (events, endpoint, identity, trust) = (
            self.events.clone(),
            self.endpoint.clone(),
            self.identity.clone(),
            self.trust.clone(),
        );
        // The connection dialed by the smaller id wins a race, so the larger id gives the other
        // side a head start: two devices that learn of each other at once (a pairing, an
        // introduction) then open one connection, not two that each carry every document.
        let head_start = if self.live && identity.device() > device {
            DIAL_HEAD_START
        } else {
            Duration::ZERO
        };
        self.runtime.spawn(async move {
            let mut backoff = Duration::from_millis(250);
            tokio::select! {
                _ = tokio::time::sleep(head_start) => {}
                _ = wake.notified() => {}
            }
            loop {
                if !trust.is_trusted(device) {
                    return;
                }
                if connected.load(Ordering::SeqCst) {
                    wake.notified().await;
                    continue;
                }
                let targets = addrs.read().map(|a| a.clone()).unwrap_or_default();
                // Every known address at once: a stale one (the device moved, or restarted on
                // another port) would otherwise hold up the good ones for a whole timeout.
                let mut attempts = tokio::task::JoinSet::new();
                for addr in targets {
                    let (endpoint, identity) = (endpoint.clone(), identity.clone());
                    attempts.spawn(async move {
                        tokio::time::timeout(
                            crate::CONNECT_TIMEOUT,
                            failup_net::connect(&endpoint, &identity, device, addr, ALPN_SYNC),
                        )
                        .await
                    });
                }
                let mut conn = None;
                while let Some(attempt) = attempts.join_next().await {
                    if let Ok(Ok(Ok(c))) = attempt {
                        conn = Some(c);
                        break;
                    }
                }
                attempts.abort_all();
                let mut short_lived = false;
                if let Some(c) = conn {
                    let began = Instant::now();
                    run_connection(c, device, true, events.clone()).await;
                    // A connection that lived a while proves the device healthy; one closed at
                    // once (refused, a duplicate, an error) must not turn into a redial storm,
                    // so its backoff is slept in full, whatever wakes the dialer meanwhile.
                    if began.elapsed() > STABLE_CONNECTION {
                        backoff = Duration::from_millis(250);
                    } else {
                        short_lived = true;
                    }
                }
                if short_lived {
                    tokio::time::sleep(backoff).await;
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = wake.notified() => {}
                    }
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }
}
