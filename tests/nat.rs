//! Devices behind home routers, on networks of Linux namespaces (`failup_tests::netns`): the
//! "internet" is 203.0.113.0/24, each home is a private network masqueraded behind one address
//! of it. The tests need root, `ip` and `iptables`, and skip with a message without them.

use std::time::Duration;

use failup_tests::netns::{Nat, Net, Relay};
use failup_tests::{Daemon, wait_until};

const SOON: Duration = Duration::from_secs(60);

fn observed(d: &Daemon) -> Vec<String> {
    d.status()["observed"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o["addr"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A device behind a router learns from its peers the address the outside sees it at, and
/// from two peers at different addresses that the router keeps one public port for both; the
/// address reaches the other devices through the circle.
#[test]
fn a_device_behind_a_router_learns_its_public_address_and_that_the_mapping_is_stable() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let router = net.router("r1", Nat::Stable);
    let home = net.behind(&router, "phone");
    let (c_host, d_host) = (net.public_host("laptop"), net.public_host("desktop"));
    let laptop = Daemon::start_in(&c_host, "laptop");
    let phone = Daemon::start_in(&home, "phone");
    let desktop = Daemon::start_in(&d_host, "desktop");
    // The phone can dial out; nobody can dial in.
    laptop.pair(&phone);
    let outside = format!("{}:7676", router.ip);
    wait_until("the phone to hear its public address", SOON, || {
        observed(&phone).contains(&outside)
    });
    assert!(
        !observed(&phone).contains(&format!("{}:7676", home.ip)),
        "its own address is not an outside view"
    );
    assert_eq!(
        phone.status()["mapping"],
        "unknown",
        "one peer tells nothing of the router"
    );
    let said = phone.ok(&["status"]);
    assert!(
        said.contains(&format!("seen from outside as: {outside} (by 1 device)")),
        "{said}"
    );

    // A second device elsewhere: the phone dials it (it learns of it through the circle) and
    // is seen at the same port, so the router keeps one mapping for every peer.
    laptop.pair(&desktop);
    wait_until("the phone to be seen by two devices", SOON, || {
        phone.status()["mapping"] == "stable"
    });
    assert!(
        phone
            .ok(&["status"])
            .contains("router: keeps one public port")
    );
    // The desktop knows the phone's public address, as the phone put it in the circle, as an
    // address to meet at and never to dial unasked.
    wait_until(
        "the desktop to know the phone's public address",
        SOON,
        || {
            let peers: serde_json::Value =
                serde_json::from_str(&desktop.ok(&["--json", "peers"])).unwrap_or_default();
            peers.as_array().is_some_and(|list| {
                list.iter().any(|p| {
                    p["name"] == "phone"
                        && p["outside"]
                            .as_array()
                            .is_some_and(|o| o.contains(&outside.as_str().into()))
                        && !p["addrs"]
                            .as_array()
                            .is_some_and(|a| a.contains(&outside.as_str().into()))
                })
            })
        },
    );
    drop((laptop, phone, desktop));
    drop(net);
}

/// Behind a router that gives each peer a port of its own, what one peer sees is no use to
/// another: the device says so and publishes no outside address.
#[test]
fn a_router_with_a_port_per_destination_is_told_and_nothing_is_published() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let router = net.router("r2", Nat::PerDestination);
    let home = net.behind(&router, "phone");
    let (c_host, d_host) = (net.public_host("laptop"), net.public_host("desktop"));
    let laptop = Daemon::start_in(&c_host, "laptop");
    let phone = Daemon::start_in(&home, "phone");
    let desktop = Daemon::start_in(&d_host, "desktop");
    laptop.pair(&phone);
    laptop.pair(&desktop);
    wait_until("the phone to be seen by both", SOON, || {
        phone.status()["mapping"] == "per-destination"
    });
    let seen = observed(&phone);
    assert_eq!(seen.len(), 2, "two ports: {seen:?}");
    assert!(
        seen.iter()
            .all(|a| a.starts_with(&format!("{}:", router.ip))),
        "{seen:?}"
    );
    assert!(
        phone
            .ok(&["status"])
            .contains("only a relay or a forwarded port")
    );
    // doctor says what would help.
    let doctor = String::from_utf8_lossy(&phone.run(&["doctor"]).stdout).into_owned();
    assert!(
        doctor.contains("gives each peer a port of its own")
            && doctor.contains("run `failup relay`"),
        "{doctor}"
    );
    drop((laptop, phone, desktop));
    drop(net);
}

/// What `peers --json` says of the device called `name`.
fn peer_path(d: &Daemon, name: &str) -> serde_json::Value {
    let peers: serde_json::Value =
        serde_json::from_str(&d.ok(&["--json", "peers"])).unwrap_or_default();
    peers
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == name))
        .cloned()
        .unwrap_or_default()
}

fn connected_to(d: &Daemon, other: &Daemon) -> bool {
    let id = other.status()["device"].clone();
    d.status()["connected"]
        .as_array()
        .is_some_and(|c| c.contains(&id))
}

/// Two devices in two homes, each behind a router that keeps one public port, meet through a
/// third on the internet: it tells both where it sees the other, they dial at the same moment,
/// and they stay connected and keep syncing once the third is gone.
#[test]
fn two_devices_behind_two_routers_meet_through_a_third_and_sync_without_it() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let (r1, r2) = (net.router("r1", Nat::Stable), net.router("r2", Nat::Stable));
    let (h1, h2) = (net.behind(&r1, "phone"), net.behind(&r2, "tablet"));
    let c_host = net.public_host("laptop");
    let mut laptop = Daemon::start_in(&c_host, "laptop");
    let phone = Daemon::start_in(&h1, "phone");
    let tablet = Daemon::start_in(&h2, "tablet");
    laptop.pair(&phone);
    laptop.pair(&tablet);
    wait_until("the phone and the tablet to meet", SOON, || {
        connected_to(&phone, &tablet) && connected_to(&tablet, &phone)
    });
    // The phone sees how it reaches the tablet: through the tablet's router, met through
    // the laptop.
    let seen = peer_path(&phone, "tablet");
    assert_eq!(seen["path"], "punched", "{seen}");
    assert!(
        seen["via"]
            .as_str()
            .is_some_and(|v| v.starts_with("203.0.113.")),
        "{seen}"
    );
    let line = phone.ok(&["peers"]);
    assert!(
        line.contains(
            "connected across the internet, met through another of your devices or your relay (203.0.113."
        ),
        "{line}"
    );
    // `status` says the same of each connection.
    let tablet_id = tablet.status()["device"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let said = phone.ok(&["status"]);
    assert!(
        said.contains(&format!(
            "tablet ({}): connected across the internet, met through another of your devices or your relay",
            &tablet_id[..7]
        )),
        "{said}"
    );
    laptop.stop();
    let id = phone
        .ok(&["log", "Lost the match in the last minute"])
        .trim()
        .to_owned();
    wait_until("the tablet to hold the phone's entry", SOON, || {
        tablet.run(&["show", &id]).status.success()
    });
    let back = tablet
        .ok(&["log", "Burnt the toast again"])
        .trim()
        .to_owned();
    wait_until("the phone to hold the tablet's entry", SOON, || {
        phone.run(&["show", &back]).status.success()
    });
    drop((laptop, phone, tablet));
    drop(net);
}

/// A device whose address changes (a phone moving from home Wi-Fi to another network) keeps
/// syncing: its next packets come from the new address, and it is in touch again within
/// seconds.
#[test]
fn a_device_that_changes_its_address_keeps_syncing() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let (r1, r2) = (net.router("r1", Nat::Stable), net.router("r2", Nat::Stable));
    let h1 = net.behind(&r1, "phone");
    let c_host = net.public_host("laptop");
    let laptop = Daemon::start_in(&c_host, "laptop");
    let phone = Daemon::start_in(&h1, "phone");
    laptop.pair(&phone);
    let first = phone.ok(&["log", "Missed the train"]).trim().to_owned();
    wait_until("the laptop to hold the first entry", SOON, || {
        laptop.run(&["show", &first]).status.success()
    });
    // The phone leaves home: the same device, now on the second router's network.
    net.move_behind(&h1, &r2);
    let second = phone
        .ok(&["log", "Spilled coffee on the way"])
        .trim()
        .to_owned();
    let started = std::time::Instant::now();
    wait_until(
        "the laptop to hold the entry logged after the move",
        SOON,
        || laptop.run(&["show", &second]).status.success(),
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "back in touch after {:?}",
        started.elapsed()
    );
    // The laptop tells the phone where it is seen now, and the old address is gone.
    let now_at = format!("{}:7676", r2.ip);
    wait_until("the phone to hear its new outside address", SOON, || {
        observed(&phone) == vec![now_at.clone()]
    });
    drop((laptop, phone));
    drop(net);
}

/// Two devices with only IPv6 addresses (as on many mobile networks) pair by the invite's
/// IPv6 address and sync: the daemon listens on both IP versions by default, advertises its
/// global IPv6 address, and shows the path with it.
#[test]
fn devices_with_only_ipv6_pair_and_sync() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let (l_host, p_host) = (net.public_host("laptop"), net.public_host("phone"));
    let (Some(l_ip), Some(_)) = (net.ipv6_only(&l_host), net.ipv6_only(&p_host)) else {
        return;
    };
    let laptop = Daemon::start_in(&l_host, "laptop");
    let phone = Daemon::start_in(&p_host, "phone");
    let code = laptop.ok(&["pair", "invite"]).trim().to_owned();
    phone.ok(&["pair", "join", &code]);
    let id = phone
        .ok(&["log", "Froze in the interview"])
        .trim()
        .to_owned();
    wait_until("the laptop to hold the phone's entry", SOON, || {
        laptop.run(&["show", &id]).status.success()
    });
    let seen = peer_path(&phone, "laptop");
    assert_eq!(seen["via"], format!("[{l_ip}]:7676"), "{seen}");
    assert_eq!(seen["path"], "internet", "{seen}");
    drop((laptop, phone));
    drop(net);
}

/// A router that offers port mapping (UPnP IGD, NAT-PMP, PCP: miniupnpd) forwards the
/// daemon's port when asked: a device on the internet joins the device behind it by dialing
/// the forwarded address the invite code carries, they sync, and the forward is gone from the
/// router once the daemon stops. With `portmap` off nothing is asked.
#[test]
fn a_router_offering_port_mapping_lets_a_device_outside_reach_the_one_behind_it() {
    // miniupnpd maps nothing for a router whose public address is reserved (documentation
    // ranges included), so this internet is a range it takes for public (see offer_upnp).
    let Some(mut net) = Net::with_internet([198, 0, 0]) else {
        return;
    };
    let router = net.router("r1", Nat::Stable);
    let (home, other) = (net.behind(&router, "laptop"), net.behind(&router, "tablet"));
    let Some(upnp) = net.offer_upnp(&router) else {
        return;
    };
    let phone_host = net.public_host("phone");
    let mut laptop = Daemon::start_in(&home, "laptop");
    let public = format!("{}:", router.ip);
    wait_until("the router to forward the laptop's port", SOON, || {
        laptop.status()["mapped"]
            .as_str()
            .is_some_and(|m| m.starts_with(&public))
    });
    // The router picks the public port (UPnP's AddAnyPortMapping).
    let forwarded = laptop.status()["mapped"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let port = forwarded.rsplit(':').next().unwrap_or_default().to_owned();
    assert!(
        upnp.forwards().contains(&format!("dport {port}")),
        "the router holds the forward: {}",
        upnp.forwards()
    );
    assert!(
        laptop
            .ok(&["status"])
            .contains(&format!("port forwarded by the router: {forwarded}"))
    );

    // The phone outside joins by dialing the forwarded address (nothing else of the laptop's
    // is reachable from the internet), and they sync both ways.
    let phone = Daemon::start_in(&phone_host, "phone");
    laptop.pair(&phone);
    let id = laptop
        .ok(&["log", "Forgot the keys again"])
        .trim()
        .to_owned();
    wait_until("the phone to hold the laptop's entry", SOON, || {
        phone.run(&["show", &id]).status.success()
    });
    let seen = peer_path(&phone, "laptop");
    assert_eq!(seen["via"], forwarded.as_str(), "{seen}");
    assert_eq!(seen["path"], "mapped", "{seen}");
    let line = phone.ok(&["peers"]);
    assert!(
        line.contains(&format!(
            "connected through a router's forwarded port ({forwarded})"
        )),
        "{line}"
    );
    // The circle lists the forwarded address first among the laptop's, for every device.
    assert_eq!(seen["addrs"][0], forwarded.as_str(), "{seen}");

    // A second device behind the same router with port mapping off asks for nothing: by the
    // time it has joined and synced over its own outgoing connection, no forward of its own.
    let tablet = Daemon::start_in_with(&other, "tablet", &[("portmap", "false")]);
    phone.pair(&tablet);
    wait_until("the tablet to hold the laptop's entry", SOON, || {
        tablet.run(&["show", &id]).status.success()
    });
    assert!(tablet.status()["mapped"].is_null(), "{}", tablet.status());
    assert_eq!(
        upnp.forwards().lines().count(),
        1,
        "only the laptop's forward: {}",
        upnp.forwards()
    );

    // Stopping the daemon gives the forward back.
    laptop.stop();
    wait_until("the router to drop the forward", SOON, || {
        !upnp.forwards().contains(&format!("dport {port}"))
    });
    drop((laptop, phone, tablet, upnp));
    drop(net);
}

/// A phone paired at home, then taken behind a router that gives each peer a port of its own,
/// cannot be met directly; both devices use the person's relay and go on syncing through it,
/// and the relay's log and files hold no byte of what they wrote.
#[test]
fn devices_that_cannot_meet_sync_through_the_persons_relay_which_sees_nothing() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let home_router = net.router("home", Nat::Stable);
    let away = net.router("away", Nat::PerDestination);
    let (laptop_host, phone_host) = (
        net.behind(&home_router, "laptop"),
        net.behind(&home_router, "phone"),
    );
    let relay_host = net.public_host("relay");
    let relay = Relay::start(&relay_host);
    let settings = [("relay", relay.code.as_str())];
    let laptop = Daemon::start_in_with(&laptop_host, "laptop", &settings);
    let phone = Daemon::start_in_with(&phone_host, "phone", &settings);
    wait_until("both to link to the relay", SOON, || {
        laptop.status()["relay"]["linked"] == true && phone.status()["relay"]["linked"] == true
    });
    assert!(
        laptop
            .ok(&["status"])
            .contains(&format!("relay: {}:7677 (linked)", relay_host.ip))
    );
    let doctor = String::from_utf8_lossy(&laptop.run(&["doctor"]).stdout).into_owned();
    assert!(
        doctor.contains(&format!("linked to {}:7677", relay_host.ip)),
        "{doctor}"
    );
    // The token stays out of a listing of the settings.
    let token = relay
        .code
        .split(['.', '@'])
        .nth(1)
        .unwrap_or("?")
        .to_owned();
    let list = laptop.ok(&["config", "list"]);
    assert!(
        list.contains("(token hidden)") && !list.contains(&token),
        "{list}"
    );
    laptop.pair(&phone);
    wait_until("the two to connect at home", SOON, || {
        peer_path(&phone, "laptop")["path"] == "local"
    });

    // The phone leaves: from behind the second router nothing reaches the laptop directly.
    net.move_behind(&phone_host, &away);
    let story = "Froze during the pitch and forgot the second slide";
    let id = phone.ok(&["log", story]).trim().to_owned();
    // The connection from home dies without a word: it is given up after 30 s of silence
    // (the idle timeout), then the next dial goes through the relay.
    wait_until(
        "the laptop to hold the entry from away",
        Duration::from_secs(120),
        || laptop.run(&["show", &id]).status.success(),
    );
    let seen = peer_path(&laptop, "phone");
    assert_eq!(seen["path"], "relayed", "{seen}");
    assert_eq!(seen["via"], format!("{}:7677", relay_host.ip), "{seen}");
    assert!(laptop.ok(&["peers"]).contains(&format!(
        "connected through your relay ({}:7677)",
        relay_host.ip
    )));
    let back = laptop
        .ok(&["log", "Missed the call with the bank"])
        .trim()
        .to_owned();
    wait_until("the phone to hold the laptop's entry", SOON, || {
        phone.run(&["show", &back]).status.success()
    });

    let written = relay.written();
    let text = String::from_utf8_lossy(&written);
    assert!(text.contains("linked"), "the relay logs links: {text}");
    for words in [story, "Missed the call", "second slide"] {
        assert!(
            !written.windows(words.len()).any(|w| w == words.as_bytes()),
            "the relay wrote {words:?}"
        );
    }
    drop((laptop, phone, relay));
    drop(net);
}

/// Two devices in two homes, each behind a router that keeps one public port, with no other
/// device to introduce them: they connect through the person's relay, which also tells each
/// where it sees it; they tell each other through the relayed connection, dial at the same
/// moment, and the direct connection replaces the relayed one.
#[test]
fn devices_connected_through_the_relay_meet_directly_and_leave_it() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let (home, away) = (
        net.router("home", Nat::Stable),
        net.router("away", Nat::Stable),
    );
    let (laptop_host, phone_host) = (net.behind(&home, "laptop"), net.behind(&home, "phone"));
    let relay_host = net.public_host("relay");
    let relay = Relay::start(&relay_host);
    let settings = [("relay", relay.code.as_str())];
    let laptop = Daemon::start_in_with(&laptop_host, "laptop", &settings);
    let phone = Daemon::start_in_with(&phone_host, "phone", &settings);
    // The relay is the only one that sees the laptop from outside: what it says is learnt.
    wait_until("the laptop to learn where the relay sees it", SOON, || {
        observed(&laptop)
            .iter()
            .any(|a| a.starts_with(&home.ip.to_string()))
    });
    laptop.pair(&phone);
    wait_until("the two to connect at home", SOON, || {
        peer_path(&phone, "laptop")["path"] == "local"
    });

    net.move_behind(&phone_host, &away);
    let id = phone
        .ok(&["log", "Skipped the run for the third day"])
        .trim()
        .to_owned();
    // The connection from home is given up after 30 s of silence, the next one runs through
    // the relay, and within seconds of that a direct one replaces it.
    wait_until(
        "the laptop to hold the entry from away",
        Duration::from_secs(120),
        || laptop.run(&["show", &id]).status.success(),
    );
    wait_until("the two to meet directly", SOON, || {
        peer_path(&laptop, "phone")["path"] == "punched"
            && peer_path(&phone, "laptop")["path"] == "punched"
    });
    let seen = peer_path(&phone, "laptop");
    assert!(
        seen["via"]
            .as_str()
            .is_some_and(|v| v.starts_with(&home.ip.to_string())),
        "{seen}"
    );
    let line = phone.ok(&["peers"]);
    assert!(
        line.contains(
            "connected across the internet, met through another of your devices or your relay"
        ),
        "{line}"
    );
    let back = laptop
        .ok(&["log", "Forgot the dentist again"])
        .trim()
        .to_owned();
    wait_until("the phone to hold the laptop's entry", SOON, || {
        phone.run(&["show", &back]).status.success()
    });
    drop((laptop, phone, relay));
    drop(net);
}

/// Two partners in two homes: one router offers port mapping, the other does not. Sam joins
/// Alex's space by dialing the forwarded address in the code; a shared entry reaches Sam's
/// feed, Sam's cheer reaches Alex, across both routers.
#[test]
fn partners_in_two_homes_share_and_cheer_across_both_routers() {
    // As in the port-mapping test: miniupnpd takes no documentation range for public.
    let Some(mut net) = Net::with_internet([198, 0, 0]) else {
        return;
    };
    let (r1, r2) = (
        net.router("alex-home", Nat::Stable),
        net.router("sam-home", Nat::Stable),
    );
    let (alex_host, sam_host) = (net.behind(&r1, "alex"), net.behind(&r2, "sam"));
    let Some(_upnp) = net.offer_upnp(&r1) else {
        return;
    };
    let alex = Daemon::start_in(&alex_host, "alex-laptop");
    let sam = Daemon::start_in(&sam_host, "sam-laptop");
    wait_until("alex's router to forward a port", SOON, || {
        alex.status()["mapped"].is_string()
    });
    alex.partner(&sam, "sam", "alex");
    let id = alex
        .ok(&[
            "log",
            "Bombed the interview",
            "--lesson",
            "rehearse out loud",
            "--share",
            "sam",
        ])
        .trim()
        .to_owned();
    wait_until("the shared entry in sam's feed", SOON, || {
        sam.ok(&["--json", "feed"]).contains("rehearse out loud")
    });
    sam.ok(&["cheer", &id, "so proud of you for trying"]);
    wait_until("sam's cheer at alex's", SOON, || {
        alex.ok(&["--json", "show", &id])
            .contains("so proud of you for trying")
    });
    drop((alex, sam));
    drop(net);
}

/// What `partner list --json` says of partner `label`'s device `device`.
fn partner_path(d: &Daemon, label: &str, device: &str) -> serde_json::Value {
    let list: serde_json::Value =
        serde_json::from_str(&d.ok(&["--json", "partner", "list"])).unwrap_or_default();
    list.as_array()
        .and_then(|l| l.iter().find(|p| p["label"] == label))
        .and_then(|p| p["devices"].as_array())
        .and_then(|ds| ds.iter().find(|x| x["device"] == device))
        .cloned()
        .unwrap_or_default()
}

/// Partners in two homes, behind routers that keep one public port and forward none: Alex's
/// device on the internet, set to introduce partners, tells Alex's laptop and Sam's laptop
/// where it sees the other. They dial at the same moment, and share and cheer directly once it
/// is gone.
#[test]
fn partners_in_two_homes_meet_through_a_device_that_introduces_them() {
    let Some(mut net) = Net::new() else {
        return;
    };
    let (r1, r2) = (
        net.router("alex-home", Nat::Stable),
        net.router("sam-home", Nat::Stable),
    );
    let (alex_host, sam_host) = (net.behind(&r1, "alex"), net.behind(&r2, "sam"));
    let server_host = net.public_host("alex-server");
    let mut server = Daemon::start_in_with(
        &server_host,
        "alex-server",
        &[("introduce-partners", "true")],
    );
    let alex = Daemon::start_in(&alex_host, "alex-laptop");
    let sam = Daemon::start_in(&sam_host, "sam-laptop");
    server.pair(&alex);
    server.partner(&sam, "sam", "alex");
    let (alex_id, sam_id) = (alex.device(), sam.device());
    wait_until("alex's laptop and sam's to meet", SOON, || {
        connected_to(&alex, &sam) && connected_to(&sam, &alex)
    });
    for (d, label, other) in [(&alex, "sam", &sam_id), (&sam, "alex", &alex_id)] {
        let seen = partner_path(d, label, other);
        assert_eq!(seen["path"], "punched", "{seen}");
        assert!(
            seen["via"]
                .as_str()
                .is_some_and(|v| v.starts_with("203.0.113.")),
            "{seen}"
        );
    }
    let said = alex.ok(&["partner", "list"]);
    assert!(
        said.contains(
            "connected across the internet, met through a device that introduced you (203.0.113."
        ),
        "{said}"
    );
    server.stop();
    let id = alex
        .ok(&[
            "log",
            "Froze during the toast",
            "--lesson",
            "write the first line down",
            "--share",
            "sam",
        ])
        .trim()
        .to_owned();
    wait_until("the shared entry in sam's feed", SOON, || {
        sam.ok(&["--json", "feed"])
            .contains("write the first line down")
    });
    sam.ok(&["cheer", &id, "next toast is yours"]);
    wait_until("sam's cheer at alex's", SOON, || {
        alex.ok(&["--json", "show", &id])
            .contains("next toast is yours")
    });
    drop((server, alex, sam));
    drop(net);
}
