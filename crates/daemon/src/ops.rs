//! The engine thread's answers to control requests: journal operations run on the store exactly
//! as the `failup` command would run them itself, and the daemon's own operations (pairing,
//! peers, sync, status).

use std::time::{Duration, Instant};

use jiff::civil::Date;

use super::*;
use crate::pairing::{Code, Incoming, Invite, Joined, Reply};

/// Longest an invite may stay valid; a longer `--ttl` is cut to this.
pub const MAX_INVITE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

fn ts(ms: i64) -> Result<Timestamp, String> {
    Timestamp::from_millisecond(ms).map_err(|e| e.to_string())
}

fn day(text: &str) -> Result<Date, String> {
    text.parse().map_err(|e| format!("bad day {text:?}: {e}"))
}

impl State {
    /// Answers one control request; slow ones (join, sync) answer later through `reply`.
    pub(crate) fn control(&mut self, request: Request, reply: oneshot::Sender<Response>) {
        let response = match request {
            Request::Join { code, name } => return self.join(code, name, reply),
            Request::PartnerJoin { code, label } => return self.partner_join(code, label, reply),
            Request::Sync { timeout_ms } => return self.sync(timeout_ms, reply),
            other => self.answer(other),
        };
        let _ = reply.send(response.unwrap_or_else(Response::Error));
    }

    fn answer(&mut self, request: Request) -> Result<Response, String> {
        let s = &mut self.store;
        let e = |e: StoreError| e.to_string();
        Ok(match request {
            Request::Log { new, now_ms, today } => {
                Response::Entry(s.log(new, ts(now_ms)?, day(&today)?).map_err(e)?)
            }
            Request::Update { id, patch, now_ms } => {
                Response::Entry(s.update(id, patch, ts(now_ms)?).map_err(e)?)
            }
            Request::Delete { id, now_ms } => {
                let gone = s.delete(id, ts(now_ms)?).map_err(e)?;
                // Deleted either way; a space it could not leave is the person's to know of.
                self.unshare_all(id)
                    .map_err(|why| format!("deleted {id}, but {why}"))?;
                Response::Entry(gone)
            }
            Request::Get { id } => Response::MaybeEntry(s.get(id).map_err(e)?),
            Request::Resolve { prefix } => Response::Id(s.resolve(&prefix).map_err(e)?),
            Request::List { filter, limit } => Response::Entries(
                s.list(
                    &filter,
                    limit.map(|l| usize::try_from(l).unwrap_or(usize::MAX)),
                )
                .map_err(e)?,
            ),
            Request::Scan { since, until } => {
                let since = since.as_deref().map(day).transpose()?;
                let until = until.as_deref().map(day).transpose()?;
                let mut all: Vec<Entry> = Vec::new();
                s.scan(Order::OldestFirst, since, until, |en| {
                    all.push(en);
                    ControlFlow::Continue(())
                })
                .map_err(e)?;
                Response::Entries(all)
            }
            Request::Import { entries, now_ms } => {
                let r = s.import(entries, ts(now_ms)?).map_err(e)?;
                Response::Imported {
                    added: r.added as u64,
                    skipped: r.skipped as u64,
                }
            }
            Request::Compact => {
                s.compact().map_err(e)?;
                Response::Done
            }
            Request::Check => {
                let r = s.check().map_err(e)?;
                Response::Checked {
                    documents: r.documents as u64,
                    entries: r.entries as u64,
                    mismatches: r.mismatches as u64,
                }
            }
            Request::Status => Response::Status(self.status()),
            Request::Invite { ttl_secs } => Response::Invite(self.invite(ttl_secs, None)?),
            Request::Peers => Response::Peers(self.peers()),
            Request::PeerAddr { device, addr } => {
                let device = self.find_device(&device)?;
                let addr: SocketAddr = addr.parse().map_err(|_| {
                    format!("{addr:?} is not an address (use host:port, e.g. 192.168.1.20:7676)")
                })?;
                self.add_addr(device, addr)?;
                Response::Done
            }
            Request::PeerRemove { device } => {
                let device = self.find_device(&device)?;
                self.revoke(device)?;
                Response::Done
            }
            Request::PartnerInvite { ttl_secs, label } => {
                Response::Invite(self.invite(ttl_secs, Some(label))?)
            }
            Request::Partners => Response::Partners(self.partner_list()),
            Request::PartnerRevoke { label } => {
                self.partner_revoke(&label)?;
                Response::Done
            }
            Request::Share {
                id,
                with,
                only,
                now_ms,
            } => {
                self.share(id, &with, only.as_deref(), ts(now_ms)?)?;
                Response::Done
            }
            Request::Unshare { id, with } => {
                self.unshare(id, &with)?;
                Response::Done
            }
            Request::Feed { partner, now_ms } => {
                Response::Feed(self.feed(partner.as_deref(), ts(now_ms)?)?)
            }
            Request::Cheer { id, text, now_ms } => {
                self.cheer(&id, &text, ts(now_ms)?)?;
                Response::Done
            }
            Request::Shares => Response::Shares(sharing::shares(&self.store)?),
            Request::Join { .. } | Request::PartnerJoin { .. } | Request::Sync { .. } => {
                return Err("internal: handled elsewhere".into());
            }
        })
    }

    fn status(&mut self) -> StatusInfo {
        let trusted: Vec<DeviceId> = self
            .trust
            .trusted
            .read()
            .map(|t| t.iter().copied().collect())
            .unwrap_or_default();
        StatusInfo {
            device: self.identity.device().to_string(),
            listen: vec![self.listen.to_string()],
            connected: self.conns.keys().map(|d| d.to_string()).collect(),
            out_of_sync: trusted
                .iter()
                .filter(|d| !self.engine.is_in_sync(**d))
                .map(|d| d.to_string())
                .collect(),
            documents: self.store.inventory().map(|i| i.len() as u64).unwrap_or(0),
            frames_sent: self.sent.0,
            bytes_sent: self.sent.1,
        }
    }

    /// Addresses to put in an invite: the listen address, or when listening on every
    /// interface, each interface's address (other machines first, loopback last).
    pub(crate) fn invite_addrs(&self) -> Vec<String> {
        let listen = self.listen;
        if !listen.ip().is_unspecified() {
            return vec![listen.to_string()];
        }
        let mut addrs: Vec<SocketAddr> = if_addrs::get_if_addrs()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| !i.is_loopback() && i.ip().is_ipv4() == listen.is_ipv4())
            .map(|i| SocketAddr::new(i.ip(), listen.port()))
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs.truncate(circle::MAX_ADDRS - 1);
        let loopback: std::net::IpAddr = if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        addrs.push(SocketAddr::new(loopback, listen.port()));
        addrs.into_iter().map(|a| a.to_string()).collect()
    }

    pub(crate) fn invite(
        &mut self,
        ttl_secs: u64,
        partner: Option<Option<String>>,
    ) -> Result<String, String> {
        if let Some(Some(label)) = &partner {
            self.check_new_label(label)?;
        }
        if self.circle.is_none() && self.pending_circle().is_some() {
            return Err(
                "this device joined a circle whose list of devices has not arrived yet; \
                 connect to the inviting device once, then invite"
                    .into(),
            );
        }
        let ttl = Duration::from_secs(ttl_secs.min(MAX_INVITE_TTL.as_secs()));
        let secret: [u8; 16] = rand::random();
        let now = Instant::now();
        let expires = now.checked_add(ttl).unwrap_or(now);
        let is_partner = partner.is_some();
        self.invites.push(Invite {
            secret,
            expires,
            used: false,
            partner,
        });
        self.reopen_invites();
        let expires_ms = Timestamp::now().as_millisecond()
            + i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 2);
        Ok(Code {
            device: self.identity.device().0,
            addrs: self.invite_addrs(),
            secret,
            expires_ms,
        }
        .encode(is_partner))
    }

    /// Lets unknown devices complete a handshake exactly while an unused invite is unexpired.
    /// A used invite is remembered until it expires only to tell a replay "already used" (which
    /// it can hear only while another invite holds the handshake open).
    fn reopen_invites(&mut self) {
        let now = Instant::now();
        self.invites.retain(|i| i.expires > now);
        let until = self
            .invites
            .iter()
            .filter(|i| !i.used)
            .map(|i| i.expires)
            .max();
        if let Ok(mut u) = self.trust.open_invite_until.write() {
            *u = until;
        }
    }

    /// Decides a pairing attempt that reached this device.
    pub(crate) fn pair_incoming(&mut self, incoming: Incoming) {
        let Incoming {
            peer,
            remote,
            hello,
            reply,
        } = incoming;
        let now = Instant::now();
        // Compare every byte, so timing does not tell how much of a guess was right.
        let matches = |i: &Invite| {
            i.secret
                .iter()
                .zip(hello.secret.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
        };
        let found = self.invites.iter().position(matches);
        let verdict = match found.and_then(|at| self.invites.get(at)) {
            None => Err("wrong invite code".to_owned()),
            Some(i) if i.used => Err("this invite was already used".to_owned()),
            Some(i) if i.expires <= now => Err("this invite has expired".to_owned()),
            // Checked before the invite is spent, so a revoked device cannot burn it.
            Some(_) if self.is_revoked(peer) => Err("this device was revoked".to_owned()),
            Some(i) => {
                let addr = SocketAddr::new(remote.ip(), hello.port);
                match (i.partner.clone(), hello.space) {
                    (None, None) => {
                        self.admit(peer, &hello.name, addr)
                            .map(|circle| Reply::Accepted {
                                name: self.name.clone(),
                                circle: circle.to_be_bytes(),
                            })
                    }
                    (Some(label), Some(theirs)) => {
                        let label = label.unwrap_or_else(|| {
                            hello.name.chars().filter(|c| !c.is_control()).collect()
                        });
                        self.admit_partner(peer, &label, u128::from_be_bytes(theirs), addr)
                            .map(|mine| Reply::Partnered {
                                name: self.name.clone(),
                                space: mine.to_be_bytes(),
                            })
                    }
                    (None, Some(_)) => Err(
                        "this invite is for another device of the same person, not a partner"
                            .to_owned(),
                    ),
                    (Some(_), None) => Err(
                        "this invite is for a partner; join it with `failup partner join`"
                            .to_owned(),
                    ),
                }
            }
        };
        let answer = match verdict {
            Err(reason) => {
                tracing::warn!(peer = %peer.short(), "pairing refused: {reason}");
                Reply::Refused(reason)
            }
            Ok(reply) => {
                // Spent only once the joiner is admitted: a failed admission leaves it usable.
                if let Some(i) = found.and_then(|at| self.invites.get_mut(at)) {
                    i.used = true;
                }
                reply
            }
        };
        self.reopen_invites();
        let _ = reply.send(answer);
    }

    /// Adds a device to the circle, creating the circle on first use; returns its document.
    fn admit(&mut self, device: DeviceId, name: &str, addr: SocketAddr) -> Result<u128, String> {
        if self.circle.is_none() && self.pending_circle().is_some() {
            return Err("the inviting device is still waiting for its own circle".into());
        }
        let me = self.identity.device();
        let (doc, mut am, before) = match self.circle {
            Some(doc) => {
                let am = self
                    .store
                    .document(doc)
                    .map_err(|e| e.to_string())?
                    .ok_or("the circle document is missing")?;
                let before = am.clone().get_heads();
                (doc, am, before)
            }
            None => {
                let mut am = self.store.new_document();
                circle::create(
                    &mut am,
                    me,
                    &self.name,
                    &self
                        .invite_addrs()
                        .iter()
                        .filter_map(|a| a.parse().ok())
                        .collect::<Vec<_>>(),
                )
                .map_err(|e| e.to_string())?;
                (rand::random(), am, Vec::new())
            }
        };
        circle::add(&mut am, device, name, &[addr]).map_err(|e| e.to_string())?;
        am.commit();
        self.store
            .write_document(doc, &mut am, &before)
            .map_err(|e| e.to_string())?;
        if self.circle.is_none() {
            self.store
                .set_setting("circle", &doc.to_be_bytes())
                .map_err(|e| e.to_string())?;
            self.circle = Some(doc);
        }
        self.refresh_trust();
        tracing::info!(peer = %device.short(), "paired");
        Ok(doc)
    }

    fn join(&mut self, code: String, name: Option<String>, reply: oneshot::Sender<Response>) {
        if self.partners().iter().any(|p| !p.revoked) {
            let _ = reply.send(Response::Error(
                "this device already shares spaces with partners; pair it with your other                  devices from those devices instead (`failup pair invite` here)"
                    .into(),
            ));
            return;
        }
        if self.circle.is_some()
            && self
                .members()
                .iter()
                .any(|m| m.device != self.identity.device() && !m.revoked)
        {
            let _ = reply.send(Response::Error(
                "this device already belongs to a circle of devices; it cannot join another".into(),
            ));
            return;
        }
        let code = match Code::decode(&code) {
            Ok((_, true)) => {
                let _ = reply.send(Response::Error(
                    "this is a partner invite: join it with `failup partner join CODE --name LABEL`"
                        .into(),
                ));
                return;
            }
            Ok((c, false)) => c,
            Err(e) => {
                let _ = reply.send(Response::Error(e));
                return;
            }
        };
        if code.expires_ms < Timestamp::now().as_millisecond() {
            let _ = reply.send(Response::Error("this invite has expired".into()));
            return;
        }
        if code.device == self.identity.device().0 {
            let _ = reply.send(Response::Error(
                "this invite was made by this device".into(),
            ));
            return;
        }
        // A join still waiting for its circle may be retried with the same device, not another.
        if self.circle.is_none()
            && (self.pending_circle().is_some() || !self.bootstrap.is_empty())
            && !self.bootstrap.contains_key(&DeviceId(code.device))
        {
            let _ = reply.send(Response::Error(
                "this device already joined another device's circle; it cannot join a second"
                    .into(),
            ));
            return;
        }
        self.spawn_join(code, None, reply, move |mut joined, reply| {
            if let Some(n) = name {
                joined.name = n;
            }
            Event::Joined(joined, reply)
        });
    }

    /// Runs the joiner's side of a pairing in the background; once the inviter accepts, `done`
    /// makes the event that hands the result to the engine thread. A failure answers `reply`.
    pub(crate) fn spawn_join(
        &self,
        code: Code,
        space: Option<u128>,
        reply: oneshot::Sender<Response>,
        done: impl FnOnce(Joined, oneshot::Sender<Response>) -> Event + Send + 'static,
    ) {
        let (endpoint, identity, events) = (
            self.endpoint.clone(),
            self.identity.clone(),
            self.events.clone(),
        );
        let (my_name, port) = (self.name.clone(), self.listen.port());
        self.runtime.spawn(async move {
            let space = space.map(u128::to_be_bytes);
            match pairing::join(&endpoint, &identity, &code, my_name, port, space).await {
                Ok(joined) => {
                    let _ = events.send(done(joined, reply));
                }
                Err(e) => {
                    let _ = reply.send(Response::Error(e));
                }
            }
        });
    }

    /// Remembers the device this one just joined until the circle document arrives by sync.
    pub(crate) fn joined(&mut self, joined: Joined, reply: oneshot::Sender<Response>) {
        let Joined {
            inviter,
            name,
            addrs,
            circle,
            space: _,
        } = joined;
        let Some(circle) = circle else {
            let _ = reply.send(Response::Error(
                "the inviting device answered as a partner, not as a device of this person".into(),
            ));
            return;
        };
        self.bootstrap.insert(inviter, (name.clone(), addrs));
        let saved = self.save_bootstrap().and_then(|()| {
            self.store
                .set_setting("joined-circle", &circle.to_be_bytes())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = saved {
            let _ = reply.send(Response::Error(e));
            return;
        }
        // Invites made before joining would start a second circle: they are void now.
        self.invites.clear();
        self.reopen_invites();
        // No wake: the new dialer's head start keeps the two devices from dialing each other at
        // once.
        self.refresh_trust();
        tracing::info!(peer = %inviter.short(), "joined the circle of {name}");
        let _ = reply.send(Response::Done);
    }

    fn save_bootstrap(&mut self) -> Result<(), String> {
        let list: Vec<([u8; 32], String, Vec<String>)> = self
            .bootstrap
            .iter()
            .map(|(d, (n, a))| (d.0, n.clone(), a.iter().map(|a| a.to_string()).collect()))
            .collect();
        let bytes = postcard::to_allocvec(&list).map_err(|e| e.to_string())?;
        self.store
            .set_setting("bootstrap", &bytes)
            .map_err(|e| e.to_string())
    }

    fn peers(&mut self) -> Vec<PeerInfo> {
        let me = self.identity.device();
        let mut out = Vec::new();
        let mut members = self.members();
        for (d, (name, addrs)) in &self.bootstrap {
            if !members.iter().any(|m| m.device == *d) {
                members.push(circle::Member {
                    device: *d,
                    name: name.clone(),
                    addrs: addrs.clone(),
                    revoked: false,
                });
            }
        }
        for m in members {
            out.push(PeerInfo {
                device: m.device.to_string(),
                name: m.name,
                role: if m.device == me { "self" } else { "device" }.into(),
                addrs: m.addrs.iter().map(|a| a.to_string()).collect(),
                connected: self.conns.contains_key(&m.device),
                last_seen: self.seen.get(&m.device).map(|t| t.to_string()),
                last_sync: self.synced.get(&m.device).map(|t| t.to_string()),
                revoked: m.revoked,
            });
        }
        out
    }

    /// A device of the circle by its id, written with or without dashes, or a unique prefix.
    fn find_device(&mut self, text: &str) -> Result<DeviceId, String> {
        let want: String = text
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_uppercase();
        if want.is_empty() {
            return Err("give a device id".into());
        }
        let mut known: Vec<DeviceId> = self.members().iter().map(|m| m.device).collect();
        known.extend(self.bootstrap.keys().copied());
        known.sort();
        known.dedup();
        let found: Vec<DeviceId> = known
            .into_iter()
            .filter(|d| d.to_string().replace('-', "").starts_with(&want))
            .collect();
        match found.as_slice() {
            [one] => Ok(*one),
            [] => Err(format!("no device of this circle matches {text:?}")),
            _ => Err(format!(
                "{text:?} matches several devices; give more of the id"
            )),
        }
    }

    fn add_addr(&mut self, device: DeviceId, addr: SocketAddr) -> Result<(), String> {
        match self.circle {
            Some(_) => self.edit_circle(|am| circle::add_addr(am, device, addr))?,
            None => {
                if let Some((_, addrs)) = self.bootstrap.get_mut(&device) {
                    addrs.push(addr);
                }
                self.save_bootstrap()?;
            }
        }
        self.refresh_trust();
        self.wake(device);
        Ok(())
    }

    fn revoke(&mut self, device: DeviceId) -> Result<(), String> {
        if device == self.identity.device() {
            return Err("a device cannot revoke itself; revoke it from another device".into());
        }
        if self.circle.is_some() {
            let now = Timestamp::now().as_millisecond();
            self.edit_circle(|am| circle::revoke(am, device, now).map(|()| true))?;
        }
        self.bootstrap.remove(&device);
        self.save_bootstrap()?;
        self.refresh_trust();
        tracing::warn!(peer = %device.short(), "revoked");
        Ok(())
    }

    fn sync(&mut self, timeout_ms: u64, reply: oneshot::Sender<Response>) {
        let pending: BTreeSet<DeviceId> = self
            .trust
            .trusted
            .read()
            .map(|t| t.clone())
            .unwrap_or_default();
        if pending.is_empty() {
            let _ = reply.send(Response::Synced {
                in_sync: Vec::new(),
                missing: Vec::new(),
            });
            return;
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiters.insert(
            id,
            SyncWaiter {
                pending: pending.clone(),
                done: BTreeSet::new(),
                reply,
            },
        );
        for peer in pending {
            if self.conns.contains_key(&peer) {
                // A fresh round of summaries, so "in sync" means in sync now.
                self.engine(Input::Resync(peer));
            } else {
                self.wake(peer);
            }
        }
        let events = self.events.clone();
        self.runtime.spawn(async move {
            tokio::time::sleep(Duration::from_millis(timeout_ms)).await;
            let _ = events.send(Event::SyncDeadline(id));
        });
    }

    /// A peer reported in sync: settles the `failup sync` requests waiting for it.
    pub(crate) fn sync_progress(&mut self, peer: DeviceId) {
        let finished: Vec<u64> = self
            .waiters
            .iter_mut()
            .filter_map(|(id, w)| {
                if w.pending.remove(&peer) {
                    w.done.insert(peer);
                }
                w.pending.is_empty().then_some(*id)
            })
            .collect();
        for id in finished {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.reply.send(Response::Synced {
                    in_sync: w.done.iter().map(|d| d.to_string()).collect(),
                    missing: Vec::new(),
                });
            }
        }
    }
}
