//! The diff between two scans: which listening sockets and TCP connections appeared and went.
//!
//! Pure apart from the owner lookups it asks of an [`OwnerCache`], so that it can be tested
//! with made-up scans.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::owners::{Owner, OwnerCache, OwnerSource};
use super::sock::{Key, Sock};

pub(super) use sec_tracker_proto::v1::NetworkAction as Action;
use sec_tracker_proto::v1::{Direction, SocketState};

/// One thing to report.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Change {
    pub action: Action,
    pub sock: Sock,
    /// The socket's state now: for a closed one, the state it moved to (`CLOSE_WAIT`,
    /// `TIME_WAIT`…) or `CLOSED` when it is gone.
    pub state: SocketState,
    /// Inbound or outbound for connections; unspecified for listening sockets.
    pub direction: Direction,
    pub owner: Option<Arc<Owner>>,
}

struct Tracked {
    sock: Sock,
    direction: Direction,
    owner: Option<Arc<Owner>>,
    /// Its opening has been reported (or it is part of the baseline). A new socket whose owner
    /// a walk of /proc could not find is held back one scan and looked up again: the walk may
    /// have raced the process installing the fd (accept()).
    reported: bool,
}

#[derive(Default)]
pub(super) struct Tracker {
    tracked: HashMap<Key, Tracked>,
    baselined: bool,
    /// Connections (their 4-tuple, inode 0) tracked in the last scans, with the scan that last
    /// saw them: a destroy broadcast for one of them is not a connection between scans (its
    /// closing was, or will be, reported by a diff).
    recent: HashMap<Key, u64>,
    scans: u64,
}

/// Scans a connection is remembered for after it was last seen: its socket may linger in
/// CLOSE_WAIT or FIN_WAIT before the kernel destroys it.
const REMEMBERED_SCANS: u64 = 3;

/// Counts for `status`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counts {
    pub listening: usize,
    pub established: usize,
}

impl Tracker {
    pub(super) fn is_baselined(&self) -> bool {
        self.baselined
    }

    /// A destroyed TCP socket that no scan saw: it opened and closed between two scans.
    pub(super) fn unseen(&self, s: &Sock) -> bool {
        !self.recent.contains_key(&Key {
            inode: 0,
            ..s.key()
        })
    }

    /// Whether `port` is one of the TCP ports being listened on (a connection to it came in).
    pub(super) fn is_listening_port(&self, port: u16) -> bool {
        self.tracked
            .values()
            .any(|t| !t.sock.proto.is_udp() && t.sock.is_listening() && t.sock.local_port == port)
    }

    /// Remembers the connections of this scan, and forgets those not seen for a while.
    fn remember_recent(&mut self) {
        self.scans += 1;
        let scan = self.scans;
        for k in self.tracked.keys() {
            self.recent.insert(Key { inode: 0, ..*k }, scan);
        }
        self.recent
            .retain(|_, seen| scan.saturating_sub(*seen) <= REMEMBERED_SCANS);
    }

    pub(super) fn counts(&self) -> Counts {
        let listening = self
            .tracked
            .values()
            .filter(|t| t.sock.is_listening())
            .count();
        Counts {
            listening,
            established: self.tracked.len() - listening,
        }
    }

    /// Takes one scan (every socket the kernel listed) and returns what changed since the last.
    /// The first scan is the baseline: it reports nothing.
    pub(super) fn scan<S: OwnerSource>(
        &mut self,
        socks: &[Sock],
        owners: &mut OwnerCache<S>,
    ) -> Vec<Change> {
        let current: HashMap<Key, &Sock> = socks
            .iter()
            .filter(|s| s.is_listening() || s.is_established_tcp())
            .map(|s| (s.key(), s))
            .collect();
        // TCP listeners of this scan and the last: a connection to one of their ports is
        // inbound (the last scan's count too, for a listener closed right after accepting).
        let mut listeners: HashMap<u16, Vec<IpAddr>> = HashMap::new();
        for s in current
            .values()
            .copied()
            .chain(self.tracked.values().map(|t| &t.sock))
            .filter(|s| !s.proto.is_udp() && s.is_listening())
        {
            listeners.entry(s.local_port).or_default().push(s.local);
        }
        let direction = |s: &Sock| -> Direction {
            if s.is_listening() {
                Direction::Unspecified
            } else if listeners
                .get(&s.local_port)
                .is_some_and(|addrs| addrs.iter().any(|a| covers(a, &s.local)))
            {
                Direction::Inbound
            } else {
                Direction::Outbound
            }
        };

        if !self.baselined {
            owners.resolve(current.values().map(|s| s.inode));
            let mut keys: Vec<&Key> = current.keys().collect();
            keys.sort_by_key(|k| (!current[*k].is_listening(), **k));
            for k in keys {
                let s = current[k];
                let owner = self.owner_of(s, owners);
                if owner.is_none() {
                    owners.give_up(s.inode);
                }
                let t = Tracked {
                    sock: s.clone(),
                    direction: direction(s),
                    owner,
                    reported: true,
                };
                self.tracked.insert(*k, t);
            }
            self.baselined = true;
            self.prune(owners);
            self.remember_recent();
            return Vec::new();
        }

        // A connection waiting in a listener's accept queue has no inode yet; once accepted it
        // gets one. Same connection: carry it over silently.
        let upgrades: Vec<(Key, Key)> = current
            .keys()
            .filter(|k| k.inode != 0 && !self.tracked.contains_key(k))
            .map(|k| (Key { inode: 0, ..*k }, *k))
            .filter(|(k0, _)| self.tracked.contains_key(k0) && !current.contains_key(k0))
            .collect();
        for (k0, k) in &upgrades {
            if let Some(mut t) = self.tracked.remove(k0) {
                t.sock = current[k].clone();
                self.tracked.insert(*k, t);
            }
        }
        let mut deferred: Vec<Key> = self
            .tracked
            .iter()
            .filter(|(k, t)| !t.reported && current.contains_key(k))
            .map(|(k, _)| *k)
            .collect();
        let mut opened: Vec<Key> = current
            .keys()
            .filter(|k| !self.tracked.contains_key(k))
            .copied()
            .collect();
        let mut closed: Vec<Key> = self
            .tracked
            .keys()
            .filter(|k| !current.contains_key(k))
            .copied()
            .collect();
        // Listeners first, so that their owners are known to the connections they accepted.
        deferred.sort_by_key(|k| (!current[k].is_listening(), *k));
        opened.sort_by_key(|k| (!current[k].is_listening(), *k));
        closed.sort_by_key(|k| (self.tracked[k].sock.is_listening(), *k));

        owners.resolve(
            opened
                .iter()
                .chain(&deferred)
                .chain(upgrades.iter().map(|(_, k)| k))
                .map(|k| k.inode),
        );

        let mut changes = Vec::new();
        for k in &deferred {
            if let Some(t) = self.tracked.get_mut(k) {
                t.owner = owners.get(k.inode);
                t.reported = true;
                changes.push(change(opening_action(&t.sock), t, t.sock.socket_state()));
            }
        }
        for (_, k) in &upgrades {
            if let Some(owner) = owners.get(k.inode) {
                if let Some(t) = self.tracked.get_mut(k) {
                    t.owner = Some(owner);
                }
            }
        }
        for k in &opened {
            let s = current[k];
            let owner = self.owner_of(s, owners);
            let reported = owner.is_some() || !owners.worth_retrying(s.inode);
            let t = Tracked {
                sock: s.clone(),
                direction: direction(s),
                owner,
                reported,
            };
            if reported {
                changes.push(change(opening_action(s), &t, s.socket_state()));
            }
            self.tracked.insert(*k, t);
        }
        if !closed.is_empty() {
            // A connection that left ESTABLISHED is usually still there in its next state,
            // without an inode once its process has closed it.
            let now: HashMap<Key, u8> = socks
                .iter()
                .map(|s| {
                    (
                        Key {
                            inode: 0,
                            ..s.key()
                        },
                        s.state,
                    )
                })
                .collect();
            for k in &closed {
                let Some(t) = self.tracked.remove(k) else {
                    continue;
                };
                if !t.reported {
                    changes.push(change(opening_action(&t.sock), &t, t.sock.socket_state()));
                }
                let state = match now.get(&Key { inode: 0, ..*k }) {
                    Some(st) if !t.sock.proto.is_udp() && *st != t.sock.state => {
                        super::sock::tcp_state(*st)
                    }
                    _ => SocketState::Closed,
                };
                let action = if t.sock.is_listening() {
                    Action::ListenClosed
                } else {
                    Action::ConnectionClosed
                };
                changes.push(change(action, &t, state));
            }
        }
        self.prune(owners);
        self.remember_recent();
        changes
    }

    /// The process of a socket; for a connection not yet accepted (no inode), the process of
    /// the listener that will accept it.
    fn owner_of<S: OwnerSource>(&self, s: &Sock, owners: &OwnerCache<S>) -> Option<Arc<Owner>> {
        if s.inode != 0 {
            return owners.get(s.inode);
        }
        if s.is_listening() {
            return None;
        }
        self.tracked
            .values()
            .filter(|t| {
                !t.sock.proto.is_udp()
                    && t.sock.is_listening()
                    && t.sock.local_port == s.local_port
                    && covers(&t.sock.local, &s.local)
            })
            .find_map(|t| t.owner.clone())
    }

    fn prune<S: OwnerSource>(&self, owners: &mut OwnerCache<S>) {
        let present: HashSet<u64> = self.tracked.keys().map(|k| k.inode).collect();
        owners.retain(&present);
    }
}

fn opening_action(s: &Sock) -> Action {
    if s.is_listening() {
        Action::ListenOpened
    } else {
        Action::ConnectionEstablished
    }
}

fn change(action: Action, t: &Tracked, state: SocketState) -> Change {
    Change {
        action,
        sock: t.sock.clone(),
        state,
        direction: t.direction,
        owner: t.owner.clone(),
    }
}

/// Whether a listener bound to `listener` accepts connections to `local`.
fn covers(listener: &IpAddr, local: &IpAddr) -> bool {
    listener.is_unspecified() || canonical(listener) == canonical(local)
}

fn canonical(a: &IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*a, IpAddr::V4),
        v4 => *v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::network::sock::{Proto, TCP_CLOSE, TCP_ESTABLISHED, TCP_LISTEN};
    use sec_tracker_proto::json::Named;
    use std::cell::RefCell;

    /// Owners by inode, changeable while a cache uses it.
    #[derive(Default)]
    struct Fake {
        owners: RefCell<HashMap<u64, Arc<Owner>>>,
    }

    impl Fake {
        fn with(owners: &[(u64, u32)]) -> Fake {
            let f = Fake::default();
            for (inode, pid) in owners {
                f.set(*inode, *pid);
            }
            f
        }
        fn set(&self, inode: u64, pid: u32) {
            self.owners.borrow_mut().insert(inode, owner(pid));
        }
    }

    impl OwnerSource for &Fake {
        fn find(&mut self, wanted: &HashSet<u64>) -> HashMap<u64, Arc<Owner>> {
            let owners = self.owners.borrow();
            wanted
                .iter()
                .filter_map(|i| Some((*i, Arc::clone(owners.get(i)?))))
                .collect()
        }
    }

    fn owner(pid: u32) -> Arc<Owner> {
        Arc::new(Owner {
            pid,
            name: format!("p{pid}"),
            exe: Vec::new(),
        })
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn listen(proto: Proto, addr: &str, port: u16, inode: u64) -> Sock {
        let any = if proto.family() == 2 { "0.0.0.0" } else { "::" };
        Sock {
            proto,
            state: if proto.is_udp() {
                TCP_CLOSE
            } else {
                TCP_LISTEN
            },
            local: ip(addr),
            local_port: port,
            remote: ip(any),
            remote_port: 0,
            uid: 0,
            inode,
        }
    }

    fn conn(l: (&str, u16), r: (&str, u16), state: u8, inode: u64) -> Sock {
        Sock {
            proto: if l.0.contains(':') {
                Proto::Tcp6
            } else {
                Proto::Tcp
            },
            state,
            local: ip(l.0),
            local_port: l.1,
            remote: ip(r.0),
            remote_port: r.1,
            uid: 0,
            inode,
        }
    }

    fn summary(c: &[Change]) -> Vec<(&'static str, u16, &'static str, &'static str, u32)> {
        c.iter()
            .map(|c| {
                (
                    c.action.name(),
                    c.sock.local_port,
                    c.direction.name(),
                    c.state.name(),
                    c.owner.as_ref().map_or(0, |o| o.pid),
                )
            })
            .collect()
    }

    #[test]
    fn baseline_then_listen_and_connections_with_direction() {
        let fake = Fake::with(&[(1, 100), (2, 200), (3, 200), (4, 200), (5, 300), (6, 400)]);
        let mut owners = OwnerCache::new(&fake);
        let mut t = Tracker::default();
        let ssh = listen(Proto::Tcp, "0.0.0.0", 22, 1);
        assert!(
            t.scan(std::slice::from_ref(&ssh), &mut owners).is_empty(),
            "baseline is silent"
        );
        assert!(t.is_baselined());

        let web = listen(Proto::Tcp6, "::", 8080, 2);
        let client = conn(("::1", 50000), ("::1", 8080), TCP_ESTABLISHED, 3);
        let server = conn(("::1", 8080), ("::1", 50000), TCP_ESTABLISHED, 4);
        let dns = listen(Proto::Udp, "127.0.0.1", 53, 5);
        let ssh_in = conn(("10.0.0.1", 22), ("10.0.0.9", 40000), TCP_ESTABLISHED, 6);
        let all = vec![
            ssh.clone(),
            web.clone(),
            client.clone(),
            server.clone(),
            dns,
            ssh_in,
        ];
        let c = t.scan(&all, &mut owners);
        assert_eq!(
            summary(&c),
            vec![
                ("listen_opened", 8080, "", "LISTEN", 200),
                ("listen_opened", 53, "", "UNCONN", 300),
                ("connection_established", 22, "inbound", "ESTABLISHED", 400),
                (
                    "connection_established",
                    8080,
                    "inbound",
                    "ESTABLISHED",
                    200
                ),
                (
                    "connection_established",
                    50000,
                    "outbound",
                    "ESTABLISHED",
                    200
                ),
            ]
        );
        assert_eq!(
            t.counts(),
            Counts {
                listening: 3,
                established: 3
            }
        );
        let walks = owners.walks;
        assert!(t.scan(&all, &mut owners).is_empty(), "nothing changed");
        assert_eq!(owners.walks, walks, "no walk of /proc when nothing is new");

        // The client closes: its socket lingers in FIN_WAIT2 without an inode; the server side
        // sees CLOSE_WAIT; then the listener goes.
        let mut fin = client.clone();
        fin.state = 5;
        fin.inode = 0;
        let mut cw = server.clone();
        cw.state = 8;
        let c = t.scan(&[ssh.clone(), web.clone(), fin, cw], &mut owners);
        assert_eq!(
            summary(&c),
            vec![
                ("connection_closed", 22, "inbound", "CLOSED", 400),
                ("connection_closed", 8080, "inbound", "CLOSE_WAIT", 200),
                ("connection_closed", 50000, "outbound", "FIN_WAIT2", 200),
                ("listen_closed", 53, "", "CLOSED", 300),
            ]
        );
        let c = t.scan(&[ssh], &mut owners);
        assert_eq!(
            summary(&c),
            vec![("listen_closed", 8080, "", "CLOSED", 200)]
        );
        assert_eq!(owners.len(), 1, "the cache holds only what is present");
    }

    #[test]
    fn reused_four_tuple_with_a_new_inode_is_a_new_connection() {
        let fake = Fake::with(&[(11, 1), (12, 1)]);
        let mut owners = OwnerCache::new(&fake);
        let mut t = Tracker::default();
        t.scan(&[], &mut owners);
        let a = conn(("127.0.0.1", 40000), ("127.0.0.1", 80), TCP_ESTABLISHED, 11);
        let mut b = a.clone();
        b.inode = 12;
        assert_eq!(t.scan(std::slice::from_ref(&a), &mut owners).len(), 1);
        assert!(t.scan(&[a], &mut owners).is_empty());
        let c = t.scan(&[b], &mut owners);
        let actions: Vec<_> = c.iter().map(|c| (c.action, c.sock.inode)).collect();
        assert_eq!(
            actions,
            vec![
                (Action::ConnectionEstablished, 12),
                (Action::ConnectionClosed, 11)
            ]
        );
    }

    #[test]
    fn a_connection_accepted_between_scans_is_one_connection_owned_by_the_listener() {
        let fake = Fake::with(&[(1, 10), (2, 11)]);
        let mut owners = OwnerCache::new(&fake);
        let mut t = Tracker::default();
        let l = listen(Proto::Tcp, "127.0.0.1", 8080, 1);
        t.scan(std::slice::from_ref(&l), &mut owners);
        let queued = conn(
            ("127.0.0.1", 8080),
            ("127.0.0.1", 40000),
            TCP_ESTABLISHED,
            0,
        );
        let c = t.scan(&[l.clone(), queued.clone()], &mut owners);
        assert_eq!(
            summary(&c),
            vec![("connection_established", 8080, "inbound", "ESTABLISHED", 10)]
        );
        let mut accepted = queued;
        accepted.inode = 2;
        assert!(t.scan(&[l.clone(), accepted], &mut owners).is_empty());
        // Closed: reported with the process that accepted it.
        let c = t.scan(&[l], &mut owners);
        assert_eq!(
            summary(&c),
            vec![("connection_closed", 8080, "inbound", "CLOSED", 11)]
        );
    }

    #[test]
    fn an_owner_not_found_is_retried_once_then_reported_without_one() {
        let fake = Fake::default();
        let mut owners = OwnerCache::new(&fake);
        let mut t = Tracker::default();
        t.scan(&[], &mut owners);
        let l = listen(Proto::Tcp, "0.0.0.0", 9000, 7);
        let l2 = listen(Proto::Tcp, "0.0.0.0", 9001, 8);
        // Not found on first sight (the walk raced the process): held back one scan.
        assert!(t.scan(&[l.clone(), l2.clone()], &mut owners).is_empty());
        fake.set(7, 70);
        let c = t.scan(&[l.clone(), l2.clone()], &mut owners);
        assert_eq!(
            summary(&c),
            vec![
                ("listen_opened", 9000, "", "LISTEN", 70),
                ("listen_opened", 9001, "", "LISTEN", 0)
            ]
        );
        assert_eq!(owners.walks, 2);
        assert!(t.scan(&[l.clone(), l2.clone()], &mut owners).is_empty());
        assert_eq!(owners.walks, 2, "no walk for an inode given up on");
        // A held-back socket that is gone by the next scan is still reported, open and closed.
        let l3 = listen(Proto::Udp6, "::", 5353, 9);
        assert!(t.scan(&[l.clone(), l2.clone(), l3], &mut owners).is_empty());
        let c = t.scan(&[l, l2], &mut owners);
        assert_eq!(
            summary(&c),
            vec![
                ("listen_opened", 5353, "", "UNCONN", 0),
                ("listen_closed", 5353, "", "CLOSED", 0)
            ]
        );
    }
}
