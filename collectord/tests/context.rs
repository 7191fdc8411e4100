//! Context on every event, performed for real: a parent that exits before its child runs
//! anything, real cgroups named as each container runtime names them, real namespaces from
//! `unshare`, a real login uid, and file changes of every kind by an unprivileged user, each
//! joined to the process that made it by its entity id.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{event, Event, EventType, FileAction, ProcessAction, ProcessEvent};
use sec_tracker_testkit::{as_nobody, require_root, Daemon};
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_collectord");

fn tag(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("st-{name}-{}-{nanos}", std::process::id())
}

fn process(e: &Event) -> Option<&ProcessEvent> {
    match &e.details {
        Some(event::Details::Process(p)) => Some(p),
        _ => None,
    }
}

/// The exec of `sh -c … TAG` itself, not of a shell whose script mentions TAG.
fn last_arg_is(p: &ProcessEvent, tag: &str) -> bool {
    p.argv.last().is_some_and(|a| a == tag.as_bytes())
}

fn mentions(p: &ProcessEvent, tag: &str) -> bool {
    p.argv
        .iter()
        .any(|a| String::from_utf8_lossy(a).contains(tag))
}

/// Reads events until `found` has seen everything it wants (it returns true), or fails at the
/// deadline with what it saw.
async fn read_until(
    s: &mut Streaming<sec_tracker_proto::v1::SubscribeResponse>,
    what: &str,
    mut found: impl FnMut(&Event) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let item = tokio::time::timeout(left, s.next()).await;
        let Ok(Some(Ok(r))) = item else {
            panic!(
                "{what}: not seen within 20 s ({} events read); the last:\n{}",
                seen.len(),
                seen[seen.len().saturating_sub(30)..].join("\n")
            );
        };
        if let Some(Item::Event(e)) = r.item {
            seen.push(e.message.clone());
            if found(&e) {
                return;
            }
        }
    }
}

const PROCESS_ONLY: &str = r#"{"agent": {"state_dir": "@STATE@"}, "monitoring": {"file_monitor": false,
    "auth_monitor": false, "network_monitor": false, "system_info": false}}"#;

/// A shell starts a child in the background and exits; the child runs a program 300 ms later,
/// reparented by then. Its lineage still names the shell that started it (and what
/// started that), with entity ids that join: the exec keeps the child's id, and its parent's id
/// is the shell's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lineage_names_a_parent_that_exited_before_its_child_ran() {
    if !require_root("context_lineage") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let mut s = d.subscribe(&[EventType::Process], false).await;
    let t = tag("lineage");
    let mut outer = Command::new("/bin/sh")
        .args([
            "-c",
            // The outer shell lives 50 ms (its own exec is read while it runs: one that exits
            // within microseconds is reported as gone, another test's matter), then exits well
            // before its child runs anything.
            &format!("/bin/sh -c 'sleep 0.3; exec /bin/true {t}' & sleep 0.05; exit 0"),
        ])
        .spawn()
        .unwrap();
    let outer_pid = outer.id();
    assert!(outer.wait().unwrap().success());
    let (mut outer_entity, mut child) = (String::new(), None::<ProcessEvent>);
    read_until(&mut s, "the child's exec of /bin/true", |e| {
        let Some(p) = process(e) else { return false };
        if p.action() == ProcessAction::Exec && p.pid == outer_pid {
            outer_entity.clone_from(&p.entity_id);
        }
        if p.action() == ProcessAction::Exec && p.name == "true" && mentions(p, &t) {
            child = Some(p.clone());
            return true;
        }
        false
    })
    .await;
    let child = child.unwrap();
    assert!(!outer_entity.is_empty(), "the outer shell's exec was seen");
    assert_ne!(
        child.ppid, outer_pid,
        "reparented by the time it ran: {child:?}"
    );
    let first = &child.ancestors[0];
    assert_eq!(
        (first.pid, first.name.as_str()),
        (outer_pid, "sh"),
        "{child:?}"
    );
    assert_eq!(first.entity_id, outer_entity);
    assert_eq!(child.parent_entity_id, outer_entity);
    // And above the shell: this test, then on up to pid 1 (or as far as it is known).
    assert_eq!(child.ancestors[1].pid, std::process::id(), "{child:?}");
    assert_eq!(child.entity_id.len(), 32);
    assert_ne!(child.entity_id, outer_entity);
}

/// The first cgroup2 mount of this machine (`/sys/fs/cgroup` on a unified host,
/// `/sys/fs/cgroup/unified` on a hybrid one).
fn cgroup2_root() -> Option<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    info.lines().find_map(|l| {
        let (left, right) = l.split_once(" - ")?;
        if !right.starts_with("cgroup2 ") {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

/// Processes moved into real cgroups named as docker, containerd (Kubernetes), cri-o, podman,
/// Kubernetes' cgroupfs driver, LXC and systemd-nspawn name theirs: each exec names the runtime,
/// the container and the unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_are_named_from_real_cgroups() {
    if !require_root("context_containers") {
        return;
    }
    let Some(root) = cgroup2_root() else {
        panic!("no cgroup2 hierarchy mounted (needed to place processes as runtimes do)");
    };
    let id = format!("{:0>64}", format!("{:x}", std::process::id()));
    let base = format!("st-ctx-{}", std::process::id());
    let cases: Vec<(String, &str, String, &str)> = vec![
        (
            format!("{base}.slice/docker-{id}.scope"),
            "docker",
            id.clone(),
            "docker-",
        ),
        (
            format!("{base}.slice/kubepods-pod1.slice/cri-containerd-{id}.scope"),
            "containerd",
            id.clone(),
            "cri-containerd-",
        ),
        (
            format!("{base}.slice/crio-{id}.scope"),
            "cri-o",
            id.clone(),
            "crio-",
        ),
        (
            format!("{base}.slice/libpod-{id}.scope"),
            "podman",
            id.clone(),
            "libpod-",
        ),
        (
            format!("{base}/kubepods/besteffort/pod7/{id}"),
            "kubernetes",
            id.clone(),
            "",
        ),
        (
            format!("{base}/lxc.payload.web01"),
            "lxc",
            "web01".into(),
            "",
        ),
        (
            format!("{base}.slice/machine-build.scope"),
            "systemd-nspawn",
            "build".into(),
            "machine-",
        ),
    ];
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let mut s = d.subscribe(&[EventType::Process], false).await;
    let mut made = Vec::new();
    for (i, (path, runtime, want_id, unit_prefix)) in cases.iter().enumerate() {
        let dir = root.join(path);
        std::fs::create_dir_all(&dir).unwrap();
        made.push(dir.clone());
        let t = tag(&format!("ctr{i}"));
        // What runs there lives a moment (as a container's processes do): its context is read
        // after its exec, from /proc.
        let script = format!(
            "echo $$ > '{}/cgroup.procs' && exec /bin/sh -c 'sleep 0.2' {t}",
            dir.display()
        );
        assert!(Command::new("/bin/sh")
            .args(["-c", &script])
            .status()
            .unwrap()
            .success());
        let mut got = None;
        read_until(&mut s, &format!("the exec in {path}"), |e| {
            let p = process(e).filter(|p| p.action() == ProcessAction::Exec && last_arg_is(p, &t));
            got = p.cloned();
            got.is_some()
        })
        .await;
        let p = got.unwrap();
        let c = p
            .container
            .as_ref()
            .unwrap_or_else(|| panic!("{path}: no container in {p:?}"));
        assert_eq!(
            (c.runtime.as_str(), c.id.as_str()),
            (*runtime, want_id.as_str()),
            "{path}"
        );
        if !unit_prefix.is_empty() {
            assert!(p.unit.starts_with(unit_prefix), "{path}: unit {:?}", p.unit);
        }
    }
    // The cgroups go once their processes have (deepest first).
    for dir in made {
        let mut d = dir.as_path();
        while d != root.as_path() {
            let _ = std::fs::remove_dir(d);
            d = d.parent().unwrap();
        }
    }
}

/// Programs run by `unshare` in new pid, mount, network and user namespaces say so; one run in
/// the host's namespaces says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_other_than_the_hosts_are_named() {
    if !require_root("context_namespaces") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let mut s = d.subscribe(&[EventType::Process], false).await;
    let cases: [(&[&str], [bool; 4]); 4] = [
        (
            &["--pid", "--fork", "--mount-proc"],
            [true, true, false, false],
        ),
        (&["--net"], [false, false, true, false]),
        (&["--user", "--map-root-user"], [false, false, false, true]),
        (&[], [false, false, false, false]),
    ];
    for (args, want) in cases {
        let t = tag("ns");
        assert!(Command::new("unshare")
            .args(args)
            .args(["/bin/sh", "-c", "sleep 0.2", &t])
            .status()
            .unwrap()
            .success());
        let mut got = None;
        // The shell unshare runs, not unshare itself (whose command line ends the same).
        read_until(&mut s, &format!("a shell under unshare {args:?}"), |e| {
            let p = process(e).filter(|p| {
                p.action() == ProcessAction::Exec && p.name == "sh" && last_arg_is(p, &t)
            });
            got = p.cloned();
            got.is_some()
        })
        .await;
        let p = got.unwrap();
        let ns = p.namespaces.unwrap_or_default();
        assert_eq!([ns.pid, ns.mnt, ns.net, ns.user], want, "unshare {args:?}");
    }
}

/// A process whose login uid was set (as pam_loginuid does at login) and that then runs as root
/// still names who logged in, and its session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_user_is_kept_under_root() {
    if !require_root("context_login") {
        return;
    }
    let d = Daemon::start(Path::new(BIN), PROCESS_ONLY);
    let mut s = d.subscribe(&[EventType::Process], false).await;
    let t = tag("login");
    assert!(Command::new("/bin/sh")
        .args([
            "-c",
            // A program that lives a moment: context is read from /proc while it runs (one that
            // exits at once is reported as such, which is another test's matter).
            &format!("echo 65534 > /proc/self/loginuid && exec /bin/sh -c 'sleep 0.2' {t}")
        ])
        .status()
        .unwrap()
        .success());
    let mut got = None;
    read_until(&mut s, "the exec after the login", |e| {
        let p = process(e).filter(|p| p.action() == ProcessAction::Exec && last_arg_is(p, &t));
        got = p.cloned();
        got.is_some()
    })
    .await;
    let p = got.unwrap();
    assert_eq!(p.user, "root");
    assert_eq!(
        (p.login_uid, p.login_user.as_str()),
        (Some(65534), "nobody")
    );
    assert!(p.session_id.is_some(), "{p:?}");

    // On a terminal (script(1) gives it a pseudo-terminal), the tty is named.
    let t = tag("tty");
    assert!(Command::new("script")
        .args(["-qec", &format!("/bin/sh -c 'sleep 0.2' {t}"), "/dev/null"])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap()
        .success());
    let mut got = None;
    read_until(&mut s, "the exec on a terminal", |e| {
        let p = process(e).filter(|p| p.action() == ProcessAction::Exec && last_arg_is(p, &t));
        got = p.cloned();
        got.is_some()
    })
    .await;
    let p = got.unwrap();
    assert!(p.tty.starts_with("pts/"), "{p:?}");
}

/// Files created, made setuid, renamed and deleted by `nobody` in a watched directory: every
/// event names the program that did it (pid, exe, user) with the entity id of that program's
/// own exec event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_file_change_names_the_process_that_made_it() {
    if !require_root("context_file_attribution") {
        return;
    }
    let dir = tempfile::Builder::new().prefix("st-ctx").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let tree = dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::set_permissions(&tree, std::fs::Permissions::from_mode(0o777)).unwrap();
    let config = format!(
        r#"{{"agent": {{"state_dir": "@STATE@"}}, "monitoring": {{"auth_monitor": false,
            "network_monitor": false, "system_info": false, "watch_paths": ["{}"]}}}}"#,
        tree.display()
    );
    let d = Daemon::start(Path::new(BIN), &config);
    d.until_running().await;
    let mut s = d
        .subscribe(&[EventType::Process, EventType::File], false)
        .await;
    let script = "mkdir d && : > f && chmod 4755 f && mv f g && rm g && rmdir d";
    assert!(as_nobody(Path::new("/bin/sh"), None)
        .args(["-c", script])
        .current_dir(&tree)
        .status()
        .unwrap()
        .success());
    let want: [(FileAction, &str, &str); 5] = [
        (FileAction::Created, "d", "mkdir"),
        (FileAction::Attributes, "f", "chmod"),
        (FileAction::Renamed, "g", "mv"),
        (FileAction::Deleted, "g", "rm"),
        (FileAction::Deleted, "d", "rmdir"),
    ];
    let mut execs: Vec<(String, String)> = Vec::new(); // (program, entity id)
    let mut files = Vec::new();
    read_until(&mut s, "every change of the script", |e| {
        match &e.details {
            Some(event::Details::Process(p)) if p.action() == ProcessAction::Exec => {
                execs.push((p.name.clone(), p.entity_id.clone()))
            }
            Some(event::Details::File(f)) => files.push(f.clone()),
            _ => {}
        }
        want.iter().all(|(action, name, _)| {
            files
                .iter()
                .any(|f| f.action() == *action && f.path.ends_with(name.as_bytes()))
        })
    })
    .await;
    for (action, name, program) in want {
        let f = files
            .iter()
            .find(|f| {
                f.action() == action
                    && f.path.ends_with(name.as_bytes())
                    && f.exe.ends_with(program.as_bytes())
            })
            .unwrap_or_else(|| {
                panic!("{action:?} {name} by {program}: not attributed in {files:#?}")
            });
        assert_eq!(f.user, "nobody", "{f:?}");
        assert!(!f.attribution_unavailable && f.pid > 0, "{f:?}");
        let exec = execs
            .iter()
            .find(|(n, id)| n == program && *id == f.entity_id);
        assert!(
            exec.is_some(),
            "{program}'s exec with entity {} in {execs:?}",
            f.entity_id
        );
    }
}
