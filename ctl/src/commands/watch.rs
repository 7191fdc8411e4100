//! `watch`: continuous monitoring. System information first, then every event as it happens.
//! Against a daemon it follows collectord across restarts, resuming where it stopped and saying
//! what it missed.

use std::time::Duration;

use anyhow::bail;
use futures_util::StreamExt;
use sec_tracker_proto::backoff::Backoff;
use sec_tracker_proto::v1::subscribe_response::Item;
use sec_tracker_proto::v1::{EventType, Severity, SubscribeRequest};

use crate::cli::{SnapshotArgs, WatchArgs};
use crate::commands::{snapshot, Context};
use crate::render::Printer;
use crate::source::Source;

pub(crate) async fn run(ctx: &Context, args: &WatchArgs) -> anyhow::Result<()> {
    if ctx.config.local_output.one_shot {
        let snap = SnapshotArgs {
            output: args.output.clone(),
            standalone: args.standalone,
        };
        return snapshot::run(ctx, &snap).await;
    }
    let types: Vec<i32> = args
        .types
        .iter()
        .map(|t| EventType::from(*t) as i32)
        .collect();
    let min_severity = Severity::from(args.min_severity);
    let style = ctx.style(&args.output);
    let mut source = Source::open(
        &ctx.config,
        ctx.config_path.clone(),
        &ctx.socket,
        args.standalone,
    )
    .await?;
    if !style.json {
        eprintln!("Starting Security Tracker Agent in LOCAL mode...");
        eprintln!("Agent ID: {}", ctx.config.agent_id());
        eprintln!(
            "Output Format: {}",
            if style.compact {
                "Compact"
            } else {
                "Human-readable"
            }
        );
        eprintln!("Mode: Continuous");
        match &source {
            Source::Daemon(_) => eprintln!("Source: collectord at {}", ctx.socket.display()),
            Source::InProcess(_) => eprintln!("Source: in-process collector"),
        }
        eprintln!("\n=== CONTINUOUS MONITORING ===\nPress Ctrl+C to stop...\n");
    }
    let mut printer = Printer::new(std::io::stdout().lock(), style);
    let mut filter = ContextFilter::new(args);
    let wants_system = types.is_empty() || types.contains(&(EventType::System as i32));
    // In-process, the system monitor's first report is in the replay; a daemon's may be an
    // interval old, so take a fresh one.
    let replay = args.replay || !source.is_daemon();
    if source.is_daemon() && wants_system && !args.replay {
        let info = source.snapshot().await?;
        let mut e = collectord::monitors::system_info::system_event(info);
        e.seq = 0;
        printer.event(&e)?;
    }
    let mut resume = SubscribeRequest {
        replay,
        types: types.clone(),
        min_severity: min_severity as i32,
        ..Default::default()
    };
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let mut stream = source.subscribe(resume.clone()).await?;
        let ended = loop {
            tokio::select! {
                _ = &mut ctrl_c => return Ok(()),
                item = stream.next() => match item {
                    None => break "collectord closed the stream".to_owned(),
                    Some(Err(e)) => break format!("{e:#}"),
                    Some(Ok(r)) => match r.item {
                        Some(Item::Hello(h)) => resume.stream_id = h.stream_id,
                        Some(Item::Event(e)) => {
                            resume.after_seq = resume.after_seq.max(e.seq);
                            if filter.accepts(&e) {
                                printer.event(&e)?;
                            }
                        }
                        Some(Item::Gap(g)) => {
                            resume.after_seq = resume.after_seq.max(g.last_missed_seq);
                            printer.gap(&g)?;
                        }
                        None => {}
                    },
                },
            }
        };
        if !source.is_daemon() {
            bail!("the in-process collector stopped: {ended}");
        }
        eprintln!(
            "sec-trackerctl: {ended}; reconnecting to {} …",
            ctx.socket.display()
        );
        source = reconnect(ctx, &mut ctrl_c).await?;
        // Resume after the last event we printed; the collector reports what is gone.
        resume.replay = false;
    }
}

async fn reconnect(
    ctx: &Context,
    ctrl_c: &mut std::pin::Pin<&mut impl std::future::Future>,
) -> anyhow::Result<Source> {
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        match crate::source::connect(&ctx.socket).await {
            Ok(client) => {
                eprintln!("sec-trackerctl: reconnected");
                return Ok(Source::Daemon(client));
            }
            // Someone else serves the socket now: never read from it, and say why.
            Err(e) if is_untrusted_server(&e) => return Err(e),
            Err(_) => {}
        }
        tokio::select! {
            _ = ctrl_c.as_mut() => std::process::exit(0),
            _ = tokio::time::sleep(backoff.next_delay()) => {}
        }
    }
}

fn is_untrusted_server(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
}

/// `--container`, `--unit`, `--user`: a process event passes when its own context matches; a
/// file, network or auth event when the process it names (by entity id) was seen to match.
struct ContextFilter {
    container: Option<String>,
    unit: Option<String>,
    user: Option<String>,
    /// Entity ids of processes seen to match (bounded: the oldest are forgotten).
    matching: std::collections::HashSet<String>,
    order: std::collections::VecDeque<String>,
}

const REMEMBERED: usize = 65_536;

impl ContextFilter {
    fn new(args: &WatchArgs) -> ContextFilter {
        ContextFilter {
            container: args.container.clone(),
            unit: args.unit.clone(),
            user: args.user.clone(),
            matching: Default::default(),
            order: Default::default(),
        }
    }

    fn active(&self) -> bool {
        self.container.is_some() || self.unit.is_some() || self.user.is_some()
    }

    fn accepts(&mut self, e: &sec_tracker_proto::v1::Event) -> bool {
        use sec_tracker_proto::v1::event::Details;
        if !self.active() {
            return true;
        }
        let entity = match &e.details {
            Some(Details::Process(p)) => {
                let ok = self.process_matches(p);
                if ok && !p.entity_id.is_empty() && self.matching.insert(p.entity_id.clone()) {
                    self.order.push_back(p.entity_id.clone());
                    if self.order.len() > REMEMBERED {
                        if let Some(old) = self.order.pop_front() {
                            self.matching.remove(&old);
                        }
                    }
                }
                return ok;
            }
            Some(Details::File(f)) => &f.entity_id,
            Some(Details::Network(n)) => &n.entity_id,
            Some(Details::Auth(a)) => &a.entity_id,
            _ => return false,
        };
        !entity.is_empty() && self.matching.contains(entity)
    }

    fn process_matches(&self, p: &sec_tracker_proto::v1::ProcessEvent) -> bool {
        let container_ok = self.container.as_deref().is_none_or(|want| {
            p.container.as_ref().is_some_and(|c| {
                want == "any" || c.runtime == want || (!want.is_empty() && c.id.starts_with(want))
            })
        });
        let unit_ok = self
            .unit
            .as_deref()
            .is_none_or(|want| match want.strip_suffix('*') {
                Some(prefix) => p.unit.starts_with(prefix),
                None => p.unit == want,
            });
        let user_ok = self
            .user
            .as_deref()
            .is_none_or(|want| p.login_user == want || p.user == want);
        container_ok && unit_ok && user_ok
    }
}
