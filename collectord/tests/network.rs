//! The network monitor in a real collectord: real listeners and connections opened by this test
//! process, each expected as an event naming this process.

use sec_tracker_proto::json::Named;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{
    event, Event, EventType, NetworkEvent, Severity, StatusRequest, SubscribeRequest,
    SubscribeResponse,
};
use sec_tracker_testkit::{eventually, require_root, Daemon};
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_collectord");
const NETWORK_ONLY: &str = r#"{"monitoring": {"process_monitor": false, "file_monitor": false,
    "auth_monitor": false, "network_monitor": true, "scan_interval": "200ms"}}"#;
const WAIT: Duration = Duration::from_secs(10);

/// The stream, with every network event received so far, so that events can be awaited in any
/// order.
struct Events {
    stream: Streaming<SubscribeResponse>,
    seen: Vec<Event>,
}

fn net(e: &Event) -> Option<&NetworkEvent> {
    match &e.details {
        Some(event::Details::Network(n)) => Some(n),
        _ => None,
    }
}

impl Events {
    /// The first event (seen already or still to come) that `pred` accepts.
    async fn expect(&mut self, what: &str, pred: impl Fn(&NetworkEvent) -> bool) -> Event {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut checked = 0;
        loop {
            if let Some(e) = self.seen[checked..]
                .iter()
                .find(|e| net(e).is_some_and(&pred))
            {
                return e.clone();
            }
            checked = self.seen.len();
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Ok(Some(Ok(r))) => {
                    if let Some(Item::Event(e)) = r.item {
                        self.seen.push(e);
                    }
                }
                Ok(other) => panic!("stream ended waiting for {what}: {other:?}"),
                Err(_) => panic!(
                    "timed out after {WAIT:?} waiting for {what}; network events seen:\n{}",
                    self.seen
                        .iter()
                        .map(|e| e.message.as_str())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
    }
}

fn inode(fd: impl AsFd) -> u64 {
    nix::sys::stat::fstat(fd.as_fd()).unwrap().st_ino
}

struct Me {
    pid: u32,
    name: String,
    exe: Vec<u8>,
    /// This process's entity id, as collectord derives it (a server joins on it).
    entity_id: String,
}

fn me() -> Me {
    Me {
        entity_id: collectord::monitors::process::context::ContextReader::new()
            .entity_id_of(std::process::id())
            .unwrap(),
        pid: std::process::id(),
        name: std::fs::read_to_string("/proc/self/comm")
            .unwrap()
            .trim_end()
            .to_owned(),
        exe: std::env::current_exe().unwrap().into_os_string().into_vec(),
    }
}

/// Owned by this process, as the monitor must find it from the socket inode.
fn assert_mine(e: &Event, me: &Me) {
    let n = net(e).unwrap();
    assert_eq!(n.pid, me.pid, "{}", e.message);
    assert_eq!(n.process_name, me.name, "{}", e.message);
    assert_eq!(n.exe, me.exe, "{}", e.message);
    assert_eq!((n.uid, n.user.as_str()), (0, "root"), "{}", e.message);
    assert_eq!(n.entity_id, me.entity_id, "{}", e.message);
    assert!(
        e.message
            .contains(&format!("by {} (PID: {})", me.name, me.pid)),
        "{}",
        e.message
    );
    assert_eq!(e.r#type(), EventType::Network);
    assert_eq!(e.source, "network_monitor");
}

/// Listener, client, accepted side, all closed again, on `addr`.
async fn listen_connect_close(ev: &mut Events, addr: IpAddr, proto: &str, me: &Me) {
    let listener = TcpListener::bind(SocketAddr::new(addr, 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let l_inode = inode(&listener);
    let e = ev
        .expect(&format!("listen_opened {proto} port {port}"), |n| {
            n.action().name() == "listen_opened"
                && n.local_port == u32::from(port)
                && n.protocol == proto
        })
        .await;
    assert_mine(&e, me);
    let n = net(&e).unwrap();
    assert_eq!(e.severity(), Severity::Warning);
    assert_eq!(n.state().name(), "LISTEN");
    assert_eq!(n.local_address, addr.to_string());
    assert_eq!(n.inode, l_inode);
    assert!(
        e.message.starts_with("New listening port: "),
        "{}",
        e.message
    );

    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    let cport = client.local_addr().unwrap().port();
    let out = ev
        .expect(&format!("outbound {proto} connection from {cport}"), |n| {
            n.action().name() == "connection_established"
                && n.local_port == u32::from(cport)
                && n.remote_port == u32::from(port)
        })
        .await;
    assert_mine(&out, me);
    let n = net(&out).unwrap();
    assert_eq!(
        (n.direction().name(), n.protocol.as_str(), n.state().name()),
        ("outbound", proto, "ESTABLISHED")
    );
    assert_eq!(
        (n.remote_address.clone(), n.inode),
        (addr.to_string(), inode(&client))
    );
    assert_eq!(out.severity(), Severity::Info);
    let inb = ev
        .expect(&format!("inbound {proto} connection to {port}"), |n| {
            n.action().name() == "connection_established"
                && n.local_port == u32::from(port)
                && n.remote_port == u32::from(cport)
        })
        .await;
    assert_mine(&inb, me);
    let n = net(&inb).unwrap();
    assert_eq!(n.direction().name(), "inbound");
    // 0 when a scan caught it in the accept queue, before accept() gave it a socket inode.
    assert!([inode(&server), 0].contains(&n.inode), "{n:?}");
    // Both messages name the client first.
    let client_end = SocketAddr::new(addr, cport).to_string();
    let server_end = SocketAddr::new(addr, port).to_string();
    let arrow = format!("{client_end} -> {server_end}");
    assert!(out.message.contains(&arrow), "{}", out.message);
    assert!(inb.message.contains(&arrow), "{}", inb.message);

    drop(client);
    drop(server);
    for (local, remote) in [(cport, port), (port, cport)] {
        let e = ev
            .expect(
                &format!("{proto} connection {local}->{remote} closed"),
                |n| {
                    n.action().name() == "connection_closed"
                        && n.local_port == u32::from(local)
                        && n.remote_port == u32::from(remote)
                },
            )
            .await;
        assert_mine(&e, me);
    }
    drop(listener);
    let e = ev
        .expect(&format!("listen_closed {proto} port {port}"), |n| {
            n.action().name() == "listen_closed" && n.local_port == u32::from(port)
        })
        .await;
    assert_mine(&e, me);
    assert_eq!(e.severity(), Severity::Info);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_and_connections_name_their_process() {
    if !require_root("network_listeners_and_connections") {
        return;
    }
    let me = me();
    // Open before collectord starts: part of the baseline, never reported.
    let old = TcpListener::bind("127.0.0.1:0").unwrap();
    let old_port = u32::from(old.local_addr().unwrap().port());

    let mut d = Daemon::start(Path::new(BIN), NETWORK_ONLY);
    let mut client = d.client().await;
    let status_client = client.clone();
    let detail = eventually("network monitor running", WAIT, || {
        let mut c = status_client.clone();
        async move {
            let s = c.status(StatusRequest {}).await.ok()?.into_inner();
            let m = s
                .monitors
                .into_iter()
                .find(|m| m.name == "network_monitor")?;
            (m.state().name() == "running").then_some(m.detail)
        }
    })
    .await;
    assert!(detail.starts_with("sock_diag every 200ms"), "{detail}");
    assert!(detail.contains("baseline: "), "{detail}");

    let stream = client
        .subscribe(SubscribeRequest {
            types: vec![EventType::Network as i32],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut ev = Events {
        stream,
        seen: Vec::new(),
    };

    listen_connect_close(&mut ev, "127.0.0.1".parse().unwrap(), "tcp", &me).await;
    listen_connect_close(&mut ev, "::1".parse().unwrap(), "tcp6", &me).await;

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let uport = u32::from(udp.local_addr().unwrap().port());
    let e = ev
        .expect("udp listen_opened", |n| {
            n.action().name() == "listen_opened" && n.local_port == uport
        })
        .await;
    assert_mine(&e, &me);
    assert_eq!(net(&e).unwrap().protocol, "udp");
    drop(udp);
    ev.expect("udp listen_closed", |n| {
        n.action().name() == "listen_closed" && n.local_port == uport
    })
    .await;

    assert!(
        !ev.seen
            .iter()
            .any(|e| net(e).is_some_and(|n| n.local_port == old_port)),
        "a listener of the baseline was reported"
    );
    drop(old);
    assert_eq!(d.stop(), Some(0), "{}", d.log_text());
}

/// A connection that opens and closes between two scans (a beacon, a quick download) is seen as
/// the kernel destroys its socket: both ends, with their direction; no process or user (the
/// socket has no file left to name them by).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_between_two_scans_is_seen_as_the_kernel_destroys_it() {
    if !require_root("network_between_scans") {
        return;
    }
    // Scans far apart: only the destroy broadcasts can see what happens in between.
    let config = r#"{"monitoring": {"process_monitor": false, "file_monitor": false,
        "auth_monitor": false, "network_monitor": true, "scan_interval": "1h"}}"#;
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    let d = Daemon::start(Path::new(BIN), config);
    d.until_running().await;
    let mut ev = Events {
        stream: d.subscribe(&[EventType::Network], false).await,
        seen: Vec::new(),
    };
    // nobody connects, says nothing, and hangs up; the server accepts and closes.
    let client = sec_tracker_testkit::as_nobody(Path::new("/bin/bash"), None)
        .args([
            "-c",
            &format!("exec 3<>/dev/tcp/127.0.0.1/{port}; exec 3>&-"),
        ])
        .status()
        .unwrap();
    assert!(client.success());
    drop(server.accept().unwrap());
    let e = ev
        .expect("the client's end", |n| {
            n.between_scans && n.remote_port == u32::from(port)
        })
        .await;
    let n = net(&e).unwrap();
    assert_eq!(
        (
            n.action().name(),
            n.direction().name(),
            n.user.as_str(),
            n.protocol.as_str()
        ),
        ("connection_closed", "outbound", "", "tcp"),
        "{e:?}"
    );
    assert_eq!((n.pid, n.remote_address.as_str()), (0, "127.0.0.1"));
    assert!(e.message.contains("between two scans"), "{}", e.message);
    let e = ev
        .expect("the server's end", |n| {
            n.between_scans && n.local_port == u32::from(port)
        })
        .await;
    let n = net(&e).unwrap();
    assert_eq!(n.direction().name(), "inbound", "{e:?}");
    // The listener itself, untouched, is reported by nothing (it is in the baseline).
    assert!(!ev
        .seen
        .iter()
        .any(|e| net(e).is_some_and(|n| n.action().name() == "listen_closed")));
}
