//! File monitor: create, modify (on close-write), delete, rename and attribute/owner/mode changes
//! under `monitoring.watch_paths`, recursively, with SHA-256 of regular files before and after,
//! and a baseline kept on disk ([`store`], not in memory: collectord's memory does not grow with
//! the number of files) so that changes made while the agent was down are reported when it starts.
//!
//! Mechanism: inotify (see [`watcher`]); the agent's own files (`agent.state_dir`,
//! `monitoring.exclude_paths`) are never watched, so it cannot report itself in a loop.
//! Modifications are attributed to the writing process through fanotify where it is available
//! ([`attribution`]); other events, and every event where it is not, say
//! `attribution_unavailable`.

mod attribution;
mod baseline;
mod hash;
mod store;
mod tree;
mod watcher;

use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use sec_tracker_proto::json::{escape_bytes, now_ns};
use sec_tracker_proto::v1::{
    event, Event, EventType, FileAction, FileEvent, MonitorState, Severity,
};

use super::{Monitor, MonitorContext, MonitorFuture};
pub use attribution::{parse_named_events, Group as FanotifyGroup, NamedEvent};
use hash::hex;
pub use watcher::Change;

pub const NAME: &str = "file_monitor";
/// How often the baseline's changes are committed to its store (a crash loses at most these
/// seconds' worth, which the next start reports again as made while the agent was down).
const SAVE_EVERY: Duration = Duration::from_secs(5);
const BASELINE_FILE: &str = "file-baseline.db";
/// Where versions before the store kept the baseline (imported once, then removed).
const OLD_BASELINE_FILE: &str = "file-baseline.jsonl";

/// The file monitor, with its fanotify group opened beforehand (while collectord still held
/// CAP_SYS_ADMIN; see [`crate::privileges`]).
pub struct FileMonitor {
    pub fanotify: Option<nix::Result<FanotifyGroup>>,
}

impl Monitor for FileMonitor {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(self: Box<Self>, ctx: MonitorContext) -> MonitorFuture {
        let fanotify = self.fanotify;
        super::run_on_thread("file-monitor", ctx, move |ctx| run_watcher(ctx, fanotify))
    }
}

/// The fanotify group attribution reads (needs CAP_SYS_ADMIN).
pub fn open_fanotify() -> nix::Result<FanotifyGroup> {
    attribution::init()
}

fn run_watcher(
    ctx: &MonitorContext,
    fanotify: Option<nix::Result<FanotifyGroup>>,
) -> anyhow::Result<()> {
    let cfg = &ctx.config;
    let state_dir = cfg.agent.state_dir.join("collectord");
    let mut excludes: Vec<Vec<u8>> = cfg
        .monitoring
        .exclude_paths
        .iter()
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .collect();
    excludes.push(cfg.agent.state_dir.as_os_str().as_bytes().to_vec());
    let started = Instant::now();
    let working = ctx.health.working();
    let (mut w, failed) = watcher::Watcher::new(
        &cfg.monitoring.watch_paths,
        excludes,
        cfg.monitoring.max_hash_bytes,
        cfg.monitoring.max_files as usize,
    )?;
    for (p, e) in failed {
        if e.kind() == std::io::ErrorKind::NotFound {
            tracing::info!(path = %p.display(), "watch path does not exist on this host; skipped");
        } else {
            tracing::warn!(path = %p.display(), error = %e, "watch path cannot be opened as a directory; skipped");
        }
    }
    let health = std::sync::Arc::clone(&ctx.health);
    w.on_progress(move || health.progress());
    match fanotify.unwrap_or_else(attribution::init) {
        Ok(fan) => w.attribute_with(attribution::Attributor::new(fan)),
        Err(e) => {
            tracing::warn!(error = %e, "fanotify unavailable (needs CAP_SYS_ADMIN at start): file changes are not attributed to processes")
        }
    }
    w.baseline = open_baseline(&state_dir);
    for mut c in w.start() {
        c.while_down = true;
        c.attribution_note = "made while the agent was down".into();
        ctx.emit(file_event(&c));
    }
    let detail = format!(
        "inotify on {} directories, {} files in the baseline (built in {:.1}s); attribution {}",
        w.watch_count(),
        w.baseline.len(),
        started.elapsed().as_secs_f64(),
        match (w.attribution_on(), w.attribution_mark_errors()) {
            (false, _) => "unavailable".to_owned(),
            (true, 0) => format!("by fanotify, {}", w.attribution_mode()),
            (true, n) => format!(
                "by fanotify, {}, except {n} directories (mark limit)",
                w.attribution_mode()
            ),
        }
    );
    tracing::info!("file monitor: {detail}");
    ctx.health.set_state(MonitorState::Running, detail);
    for n in w.notices.drain(..) {
        report(ctx, n);
    }
    drop(working);

    let mut changes = Vec::new();
    let mut last_save = Instant::now();
    while !ctx.shutdown.is_cancelled() {
        let _working = ctx.health.working();
        let ready = {
            let mut fds = vec![PollFd::new(w.fd(), PollFlags::POLLIN)];
            if let Some(fd) = w.attribution_fd() {
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            match poll(&mut fds, PollTimeout::from(200u16)) {
                Ok(n) => n > 0,
                Err(nix::errno::Errno::EINTR) => false,
                Err(e) => return Err(e.into()),
            }
        };
        if ready {
            w.read(&mut changes)?;
        }
        w.tick(&mut changes);
        for c in changes.drain(..) {
            ctx.emit(file_event(&c));
        }
        for n in w.notices.drain(..) {
            report(ctx, n);
        }
        if w.dirty && last_save.elapsed() >= SAVE_EVERY {
            w.commit();
            last_save = Instant::now();
        }
    }
    w.commit();
    Ok(())
}

/// The baseline store in `state_dir`, with a baseline saved by an earlier version moved into it.
fn open_baseline(state_dir: &std::path::Path) -> baseline::Baseline {
    let path = state_dir.join(BASELINE_FILE);
    let old = state_dir.join(OLD_BASELINE_FILE);
    // Made as the other state files are (their writer creates the directory); a failure shows
    // in the store's own note below.
    let _ = std::fs::create_dir_all(state_dir);
    let (mut store, note) = baseline::Baseline::open(&path);
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
    if store.len() == 0 && old.exists() {
        match baseline::import_jsonl(&old, &mut store) {
            Ok(bad) => {
                if bad > 0 {
                    tracing::warn!(bad, path = %old.display(), "skipped damaged lines of the old file baseline");
                }
                tracing::info!(files = store.len(), from = %old.display(), "file baseline moved into its store");
                let _ = std::fs::remove_file(&old);
            }
            Err(e) => {
                tracing::warn!(error = %e, path = %old.display(), "cannot read the old file baseline; starting a new one")
            }
        }
    }
    store
}

fn report(ctx: &MonitorContext, n: watcher::Notice) {
    match n {
        watcher::Notice::WatchLimit { path, limit } => {
            ctx.health.errors.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "inotify watch limit reached (fs.inotify.max_user_watches = {limit}) at {}: directories beyond it are not watched; \
                 raise it with `sysctl fs.inotify.max_user_watches=524288` (and in /etc/sysctl.d/) and restart collectord",
                escape_bytes(&path)
            );
            tracing::error!("{msg}");
            ctx.notice("watch_limit", Severity::Warning, 0, msg);
        }
        watcher::Notice::BaselineFull { limit, at } => {
            ctx.health.errors.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "the file baseline holds its limit of {limit} files (monitoring.max_files), reached at {}: files beyond it are watched \
                 and their changes reported, but they are not kept, so changes made to them while the agent is down are not seen; \
                 raise monitoring.max_files or narrow monitoring.watch_paths",
                escape_bytes(&at)
            );
            tracing::warn!("{msg}");
            ctx.notice("baseline_full", Severity::Warning, 0, msg);
        }
        watcher::Notice::QueueOverflow => {
            ctx.health.lost.fetch_add(1, Ordering::Relaxed);
            let msg = "the kernel's inotify queue overflowed; the watched trees were rescanned and the differences reported".to_owned();
            tracing::warn!("{msg}");
            ctx.notice("events_lost", Severity::Warning, 0, msg);
        }
        watcher::Notice::RootGone(p) => {
            let msg = format!(
                "watch path {} was removed or moved; it is no longer watched",
                escape_bytes(&p)
            );
            tracing::warn!("{msg}");
            ctx.notice("watch_root_gone", Severity::Warning, 0, msg);
        }
    }
}

/// The protobuf event for one change.
pub fn file_event(c: &Change) -> Event {
    let state = c.after.as_ref().or(c.before.as_ref());
    // How alarming a change is, the rules say (see crate::rules).
    let sev = Severity::Info;
    let path = escape_bytes(&c.path);
    let what = match c.action {
        FileAction::Created => format!("File created: {path}"),
        FileAction::Modified => format!("File modified: {path}"),
        FileAction::Deleted => format!("File deleted: {path}"),
        FileAction::Renamed => format!("File renamed: {} -> {path}", escape_bytes(&c.old_path)),
        FileAction::Attributes if c.after.is_none() => {
            format!(
                "File attributes changed: {path} (gone before its new attributes could be read)"
            )
        }
        FileAction::Attributes => {
            let (b, a) = (
                c.before.clone().unwrap_or_default(),
                c.after.clone().unwrap_or_default(),
            );
            let mut parts = Vec::new();
            if b.mode != a.mode {
                parts.push(format!(
                    "mode {:o} -> {:o}",
                    b.mode & 0o7777,
                    a.mode & 0o7777
                ));
            }
            if b.uid != a.uid || b.gid != a.gid {
                parts.push(format!("owner {}:{} -> {}:{}", b.uid, b.gid, a.uid, a.gid));
            }
            format!("File attributes changed: {path} ({})", parts.join(", "))
        }
        FileAction::Unspecified => format!("File changed: {path}"),
    };
    let mut message = if c.while_down {
        format!("{what} (while the agent was down)")
    } else {
        what
    };
    if c.coalesced > 0 {
        message.push_str(&format!(
            " (and {} more writes before it, in one report)",
            c.coalesced
        ));
    }
    if let Some(b) = &c.by {
        let name = std::path::Path::new(std::ffi::OsStr::from_bytes(&b.exe))
            .file_name()
            .map(|n| escape_bytes(n.as_bytes()))
            .unwrap_or_else(|| "?".into());
        message.push_str(&format!(" by {name} (PID: {}, user {})", b.pid, b.user));
    }
    let sha = |s: &Option<baseline::FileState>| {
        s.as_ref()
            .and_then(|s| s.sha256.as_ref())
            .map(hex)
            .unwrap_or_default()
    };
    Event {
        timestamp_ns: now_ns(),
        r#type: EventType::File as i32,
        severity: sev as i32,
        source: NAME.into(),
        message,
        details: Some(event::Details::File(FileEvent {
            action: c.action as i32,
            path: c.path.clone(),
            old_path: c.old_path.clone(),
            kind: state.map(|s| s.kind()).unwrap_or("unknown").into(),
            size: state.map_or(0, |s| s.size),
            mode: state.map_or(0, |s| s.mode & 0o7777),
            uid: state.map_or(0, |s| s.uid),
            gid: state.map_or(0, |s| s.gid),
            sha256_before: sha(&c.before),
            sha256_after: sha(&c.after),
            hash_skipped: state.is_some_and(|s| s.hash_skipped),
            pid: c.by.as_ref().map_or(0, |b| b.pid),
            exe: c.by.as_ref().map(|b| b.exe.clone()).unwrap_or_default(),
            user: c.by.as_ref().map(|b| b.user.clone()).unwrap_or_default(),
            attribution_unavailable: c.by.is_none(),
            while_agent_down: c.while_down,
            entity_id: c
                .by
                .as_ref()
                .map(|b| b.entity_id.clone())
                .unwrap_or_default(),
            attribution_note: c.attribution_note.clone(),
            mode_before: c.before.as_ref().map_or(0, |s| s.mode & 0o7777),
            size_before: c.before.as_ref().map_or(0, |s| s.size),
            mtime_before_ns: c.before.as_ref().map_or(0, |s| s.mtime_ns),
            mtime_ns: state.map_or(0, |s| s.mtime_ns),
        })),
        ..Default::default()
    }
}
