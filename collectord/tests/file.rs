//! The file monitor on a real directory tree: what an operator sees when files change.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{event, EventType, FileAction, FileEvent, Severity, SubscribeResponse};
use sec_tracker_testkit::{require_root, Daemon};
use tonic::Streaming;

const BIN: &str = env!("CARGO_BIN_EXE_collectord");

struct Tree {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: String,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("watched");
    std::fs::create_dir_all(root.join("existing")).unwrap();
    std::fs::write(root.join("b.txt"), "version 1\n").unwrap();
    std::fs::write(root.join("existing").join("c.txt"), "c\n").unwrap();
    let config = format!(
        r#"{{"agent": {{"state_dir": "{}"}},
            "monitoring": {{"process_monitor": false, "auth_monitor": false, "network_monitor": false,
                           "file_monitor": true, "system_info": false, "watch_paths": ["{}"]}}}}"#,
        dir.path().join("state").display(),
        root.display()
    );
    Tree {
        _dir: dir,
        root,
        config,
    }
}

/// What `sha256sum` says, as an operator would check.
fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn subscribe(d: &Daemon) -> Streaming<SubscribeResponse> {
    d.subscribe(&[EventType::File], true).await
}

/// Reads file events until one matches, failing after a deadline; returns it with its severity.
async fn expect(
    s: &mut Streaming<SubscribeResponse>,
    what: &str,
    mut pred: impl FnMut(&FileEvent) -> bool,
) -> (FileEvent, Severity, String) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout_at(deadline, s.next()).await;
        let Ok(Some(Ok(r))) = next else {
            panic!("no event for {what}; saw: {seen:#?}");
        };
        if let Some(Item::Event(e)) = r.item {
            if let Some(event::Details::File(f)) = &e.details {
                if pred(f) {
                    return (f.clone(), e.severity(), e.message.clone());
                }
                seen.push(e.message.clone());
            }
        }
    }
}

fn is(f: &FileEvent, action: FileAction, path: &Path) -> bool {
    f.action() == action && f.path == path.as_os_str().as_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_changes_arrive_with_hashes() {
    if !require_root("file_changes") {
        return;
    }
    let t = tree();
    let d = Daemon::start(Path::new(BIN), &t.config);
    // Changes made before the watches are in place belong to the start's scan, not the stream.
    d.until_running().await;
    let mut s = subscribe(&d).await;
    let root = &t.root;

    // Created, reported once its writer closes it, with its hash.
    let a = root.join("a.txt");
    std::fs::write(&a, "hello\n").unwrap();
    let (f, sev, msg) = expect(&mut s, "created a.txt", |f| is(f, FileAction::Created, &a)).await;
    assert_eq!(f.sha256_after, sha256sum(&a));
    assert_eq!((f.kind.as_str(), f.size), ("file", 6));
    // fanotify names the writer: this test process.
    assert!(!f.attribution_unavailable);
    assert_eq!(f.pid, std::process::id());
    assert_eq!(
        f.exe,
        std::env::current_exe().unwrap().as_os_str().as_bytes()
    );
    assert_eq!(f.user, "root");
    assert_eq!(sev, Severity::Info);
    assert!(msg.contains("File created"), "{msg}");

    // Modified: before and after.
    let before = sha256sum(&a);
    std::fs::write(&a, "hello world\n").unwrap();
    let (f, _, _) = expect(&mut s, "modified a.txt", |f| {
        is(f, FileAction::Modified, &a)
    })
    .await;
    assert_eq!(f.sha256_before, before);
    assert_eq!(f.sha256_after, sha256sum(&a));

    // A modification by another user, through another program, is attributed to it.
    assert!(Command::new("chmod")
        .arg("666")
        .arg(&a)
        .status()
        .unwrap()
        .success());
    expect(&mut s, "chmod 666", |f| is(f, FileAction::Attributes, &a)).await;
    let mut writer = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        // It lingers a moment after writing: a writer that exits at once is still named by
        // pid, but its user and exe may be gone before collectord can read them.
        .arg(format!("echo more >> '{}'; sleep 0.3", a.display()))
        .spawn()
        .unwrap();
    let writer_pid = writer.id();
    assert!(writer.wait().unwrap().success());
    let (f, _, msg) = expect(&mut s, "modified by nobody", |f| {
        is(f, FileAction::Modified, &a)
    })
    .await;
    assert_eq!(f.pid, writer_pid, "{msg}");
    assert_eq!(f.user, "nobody", "{msg}");
    assert!(
        msg.contains(&format!("(PID: {writer_pid}, user nobody)")),
        "{msg}"
    );

    // Nested directories made after start, and a file written into them at once.
    let deep_dir = root.join("d1").join("d2");
    std::fs::create_dir_all(&deep_dir).unwrap();
    let deep = deep_dir.join("deep.txt");
    std::fs::write(&deep, "deep\n").unwrap();
    expect(&mut s, "created d1", |f| {
        is(f, FileAction::Created, &root.join("d1")) && f.kind == "directory"
    })
    .await;
    let (f, _, _) = expect(&mut s, "created deep.txt", |f| {
        is(f, FileAction::Created, &deep)
    })
    .await;
    assert_eq!(f.sha256_after, sha256sum(&deep));
    // …and the new directory is itself watched.
    std::fs::write(&deep, "deeper\n").unwrap();
    expect(&mut s, "modified deep.txt", |f| {
        is(f, FileAction::Modified, &deep)
    })
    .await;

    // Rename across directories: old and new path in one event.
    let moved = root.join("d1").join("a2.txt");
    std::fs::rename(&a, &moved).unwrap();
    let (f, _, _) = expect(&mut s, "renamed a.txt", |f| {
        is(f, FileAction::Renamed, &moved)
    })
    .await;
    assert_eq!(f.old_path, a.as_os_str().as_bytes());

    // Mode and owner.
    assert!(Command::new("chmod")
        .arg("600")
        .arg(&moved)
        .status()
        .unwrap()
        .success());
    let (f, _, msg) = expect(&mut s, "chmod", |f| is(f, FileAction::Attributes, &moved)).await;
    assert_eq!(f.mode, 0o600);
    assert!(msg.contains("mode 666 -> 600"), "{msg}");
    assert!(Command::new("chown")
        .arg("65534:65534")
        .arg(&moved)
        .status()
        .unwrap()
        .success());
    let (f, _, _) = expect(&mut s, "chown", |f| {
        is(f, FileAction::Attributes, &moved) && f.uid == 65534
    })
    .await;
    assert_eq!(f.gid, 65534);

    // Editor-style save: write a temporary file, rename it over the original.
    let b = root.join("b.txt");
    let old_b = sha256sum(&b);
    let tmp = root.join(".b.txt.swp");
    std::fs::write(&tmp, "version 2\n").unwrap();
    std::fs::rename(&tmp, &b).unwrap();
    let (f, _, _) = expect(&mut s, "editor save of b.txt", |f| {
        is(f, FileAction::Renamed, &b)
    })
    .await;
    assert_eq!(f.old_path, tmp.as_os_str().as_bytes());
    assert_eq!(
        f.sha256_before, old_b,
        "before is the content that was replaced"
    );
    assert_eq!(f.sha256_after, sha256sum(&b));

    // A newline in a file name is carried exactly.
    let odd = root.join("new\nline");
    std::fs::write(&odd, "x").unwrap();
    let (_, _, msg) = expect(&mut s, "odd name", |f| is(f, FileAction::Created, &odd)).await;
    assert!(
        msg.contains("new\\nline") && !msg.contains('\n'),
        "the message stays on one line: {msg:?}"
    );

    // Deleted, with the hash it had.
    let last = sha256sum(&moved);
    std::fs::remove_file(&moved).unwrap();
    let (f, _, _) = expect(&mut s, "deleted a2.txt", |f| {
        is(f, FileAction::Deleted, &moved)
    })
    .await;
    assert_eq!(f.sha256_before, last);

    // Moved out of the tree: a deletion.
    let outside = t._dir.path().join("outside.txt");
    std::fs::rename(&deep, &outside).unwrap();
    expect(&mut s, "moved out", |f| is(f, FileAction::Deleted, &deep)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_while_the_collector_was_down_are_reported_at_start() {
    if !require_root("while_down") {
        return;
    }
    let t = tree();
    let mut d = Daemon::start(Path::new(BIN), &t.config);
    // The baseline is written once the monitor runs.
    d.until_running().await;
    let mut s = subscribe(&d).await;
    std::fs::write(t.root.join("marker"), "m").unwrap();
    expect(&mut s, "marker", |f| {
        is(f, FileAction::Created, &t.root.join("marker"))
    })
    .await;
    drop(s);
    assert_eq!(d.stop(), Some(0));

    let c = t.root.join("existing").join("c.txt");
    let old_c = sha256sum(&c);
    std::fs::write(&c, "changed while down\n").unwrap();
    std::fs::remove_file(t.root.join("b.txt")).unwrap();
    std::fs::write(t.root.join("new-while-down"), "n").unwrap();
    assert!(Command::new("chmod")
        .arg("700")
        .arg(t.root.join("existing"))
        .status()
        .unwrap()
        .success());

    d.spawn(Path::new(BIN));
    let mut s = subscribe(&d).await;
    // The four changes come in no particular order: gather them.
    let mut got: Vec<(FileEvent, String)> = Vec::new();
    let wanted = |got: &[(FileEvent, String)]| {
        let has = |a: FileAction, p: &Path| got.iter().any(|(f, _)| is(f, a, p));
        has(FileAction::Modified, &c)
            && has(FileAction::Deleted, &t.root.join("b.txt"))
            && has(FileAction::Created, &t.root.join("new-while-down"))
            && has(FileAction::Attributes, &t.root.join("existing"))
    };
    while !wanted(&got) {
        let (f, _, msg) = expect(&mut s, "changes made while down", |f| f.while_agent_down).await;
        got.push((f, msg));
    }
    for (f, msg) in &got {
        assert!(msg.ends_with("(while the agent was down)"), "{msg}");
        if is(f, FileAction::Modified, &c) {
            assert_eq!(f.sha256_before, old_c);
            assert_eq!(f.sha256_after, sha256sum(&c));
        }
        if is(f, FileAction::Attributes, &t.root.join("existing")) {
            assert_eq!(f.mode, 0o700);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_own_state_is_never_reported() {
    if !require_root("own_state") {
        return;
    }
    // The state directory inside the watched tree: the baseline it writes must not loop back.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("watched");
    std::fs::create_dir_all(&root).unwrap();
    let config = format!(
        r#"{{"agent": {{"state_dir": "{0}/state"}}, "monitoring": {{"process_monitor": false, "auth_monitor": false,
            "network_monitor": false, "system_info": false, "watch_paths": ["{0}"]}}}}"#,
        root.display()
    );
    let d = Daemon::start(Path::new(BIN), &config);
    d.until_running().await;
    let mut s = subscribe(&d).await;
    let marker = root.join("after-start");
    std::fs::write(&marker, "x").unwrap();
    let (_, _, _) = expect(&mut s, "marker", |f| {
        assert!(
            !f.path
                .starts_with(root.join("state").as_os_str().as_bytes()),
            "reported its own state: {:?}",
            String::from_utf8_lossy(&f.path)
        );
        is(f, FileAction::Created, &marker)
    })
    .await;
}

/// An upgrade from a version that saved the baseline as JSON lines: the new collectord takes it
/// over (a change made across the upgrade is still reported as made while it was down) and
/// removes the old file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_saved_by_an_earlier_version_is_taken_over() {
    use std::os::unix::fs::MetadataExt;
    if !require_root("old_baseline") {
        return;
    }
    let t = tree();
    let state = t.root.parent().unwrap().join("state").join("collectord");
    std::fs::create_dir_all(&state).unwrap();
    // What the old version wrote: the tree as it is, except b.txt, whose size and hash were
    // others (changed while down), and existing/c.txt, which it never saw (made while down).
    let line = |p: &Path, size: Option<u64>, hash: Option<&str>| {
        let m = std::fs::symlink_metadata(p).unwrap();
        let mut v = serde_json::json!({
            "p": p.to_str().unwrap(), "s": size.unwrap_or(m.size()), "m": m.mode(), "u": m.uid(),
            "g": m.gid(), "t": m.mtime() * 1_000_000_000 + m.mtime_nsec(),
            "c": m.ctime() * 1_000_000_000 + m.ctime_nsec(), "i": m.ino(),
        });
        if let Some(h) = hash {
            v["h"] = h.into();
        }
        v.to_string() + "\n"
    };
    let old_hash = "ab".repeat(32);
    let old = state.join("file-baseline.jsonl");
    std::fs::write(
        &old,
        line(&t.root, None, None)
            + &line(&t.root.join("existing"), None, None)
            + &line(&t.root.join("b.txt"), Some(1), Some(&old_hash)),
    )
    .unwrap();

    let d = Daemon::start(Path::new(BIN), &t.config);
    let mut s = subscribe(&d).await;
    let (f, _, _) = expect(&mut s, "b.txt changed while down", |f| {
        f.while_agent_down && is(f, FileAction::Modified, &t.root.join("b.txt"))
    })
    .await;
    assert_eq!(f.sha256_before, old_hash);
    assert_eq!(f.sha256_after, sha256sum(&t.root.join("b.txt")));
    expect(&mut s, "c.txt made while down", |f| {
        f.while_agent_down
            && is(
                f,
                FileAction::Created,
                &t.root.join("existing").join("c.txt"),
            )
    })
    .await;
    assert!(!old.exists(), "the old baseline is removed once taken over");
    assert!(state.join("file-baseline.db").exists());
}
