//! The fields a rule can match, by the names rule files use (`process.exe`, `file.path`, …), and
//! how each is read from an event without allocating.

use sec_tracker_proto::json::Named;
use sec_tracker_proto::v1::{event, Event};

/// A field's value, borrowed from the event.
#[derive(Debug, Clone, Copy)]
pub(super) enum Value<'a> {
    Str(&'a [u8]),
    Num(u64),
    Bool(bool),
}

macro_rules! fields {
    ($($variant:ident => $name:literal),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Field { $($variant),* }

        impl Field {
            pub(super) const ALL: &'static [(&'static str, Field)] = &[$(($name, Field::$variant)),*];

            pub(super) fn parse(name: &str) -> Option<Field> {
                Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
            }

            pub(super) fn name(self) -> &'static str {
                match self { $(Field::$variant => $name),* }
            }
        }
    };
}

fields! {
    Type => "type",
    Action => "action",
    Source => "source",
    ProcessPid => "process.pid",
    ProcessUid => "process.uid",
    ProcessEuid => "process.euid",
    ProcessUser => "process.user",
    ProcessName => "process.name",
    ProcessExe => "process.exe",
    ProcessArgs => "process.args",
    ProcessCwd => "process.cwd",
    ProcessParentName => "process.parent_name",
    ProcessAncestorName => "process.ancestors.name",
    ProcessAncestorExe => "process.ancestors.exe",
    ProcessLoginUser => "process.login_user",
    ProcessLoginUid => "process.login_uid",
    ProcessUnit => "process.unit",
    ProcessContainerRuntime => "process.container.runtime",
    ProcessTty => "process.tty",
    ProcessGainedRoot => "process.gained_root",
    ProcessInContainer => "process.in_container",
    ProcessStdioSocket => "process.stdio_socket",
    ProcessLdPreload => "process.ld_preload",
    ProcessTargetName => "process.target.name",
    ProcessTargetExe => "process.target.exe",
    ProcessTargetIsDescendant => "process.target_is_descendant",
    ProcessOldName => "process.old_name",
    FilePath => "file.path",
    FileOldPath => "file.old_path",
    FileKind => "file.kind",
    FileMode => "file.mode",
    FileModeGained => "file.mode_gained",
    FileUid => "file.uid",
    FileExe => "file.exe",
    FileUser => "file.user",
    FileWhileAgentDown => "file.while_agent_down",
    FileShrank => "file.shrank",
    FileMtimeMovedBack => "file.mtime_moved_back",
    AuthUser => "auth.user",
    AuthTargetUser => "auth.target_user",
    AuthSourceAddress => "auth.source_address",
    AuthMethod => "auth.method",
    AuthSuccess => "auth.success",
    AuthService => "auth.service",
    AuthCommand => "auth.command",
    AuthVerified => "auth.verified",
    AuthBurst => "auth.burst",
    NetworkProtocol => "network.protocol",
    NetworkLocalPort => "network.local_port",
    NetworkRemoteAddress => "network.remote_address",
    NetworkRemotePort => "network.remote_port",
    NetworkDirection => "network.direction",
    NetworkExe => "network.exe",
    NetworkProcessName => "network.process_name",
    NetworkUser => "network.user",
    NetworkBetweenScans => "network.between_scans",
    AgentKind => "agent.kind",
}

/// A file known before the change (its modification time is set) got smaller.
fn shrank(mtime_before_ns: i64, size_before: u64, size: u64) -> bool {
    mtime_before_ns != 0 && size < size_before
}

/// A file's modification time went back: set into the past (`touch -d`, `touch -r`).
fn moved_back(mtime_before_ns: i64, mtime_ns: i64) -> bool {
    mtime_before_ns != 0 && mtime_ns != 0 && mtime_ns < mtime_before_ns
}

/// What kind of value a field holds, for checking rule files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Text,
    Number,
    Flag,
}

impl Field {
    pub(super) fn kind(self) -> Kind {
        match self {
            Field::ProcessPid
            | Field::ProcessUid
            | Field::ProcessEuid
            | Field::ProcessLoginUid
            | Field::FileMode
            | Field::FileModeGained
            | Field::FileUid
            | Field::NetworkLocalPort
            | Field::NetworkRemotePort => Kind::Number,
            Field::ProcessGainedRoot
            | Field::ProcessInContainer
            | Field::ProcessTargetIsDescendant
            | Field::FileWhileAgentDown
            | Field::FileShrank
            | Field::FileMtimeMovedBack
            | Field::AuthSuccess
            | Field::AuthVerified
            | Field::AuthBurst
            | Field::NetworkBetweenScans => Kind::Flag,
            _ => Kind::Text,
        }
    }

    /// The event type a field belongs to (None: any event), so that a rule only looks at the
    /// events it can match.
    pub(super) fn event_type(self) -> Option<&'static str> {
        let name = self.name();
        ["process", "file", "auth", "network", "agent"]
            .into_iter()
            .find(|t| name.starts_with(t) && name.as_bytes().get(t.len()) == Some(&b'.'))
            .map(|t| if t == "agent" { "system" } else { t })
    }

    /// Calls `f` with each value the field has in `e` (several for lists such as the ancestors)
    /// until it returns true; returns whether it did. A field the event lacks has no value.
    pub(super) fn any<'a>(self, e: &'a Event, f: &mut impl FnMut(Value<'a>) -> bool) -> bool {
        use Value::{Bool, Num, Str};
        let d = e.details.as_ref();
        match self {
            Field::Type => f(Str(e.r#type().name().as_bytes())),
            Field::Source => f(Str(e.source.as_bytes())),
            Field::Action => match d {
                Some(event::Details::Process(p)) => f(Str(p.action().name().as_bytes())),
                Some(event::Details::File(x)) => f(Str(x.action().name().as_bytes())),
                Some(event::Details::Auth(a)) => f(Str(a.action().name().as_bytes())),
                Some(event::Details::Network(n)) => f(Str(n.action().name().as_bytes())),
                Some(event::Details::Agent(a)) => f(Str(a.kind.as_bytes())),
                _ => false,
            },
            Field::AgentKind => match d {
                Some(event::Details::Agent(a)) => f(Str(a.kind.as_bytes())),
                _ => false,
            },
            _ => match d {
                Some(event::Details::Process(p)) => match self {
                    Field::ProcessPid => f(Num(u64::from(p.pid))),
                    Field::ProcessUid => f(Num(u64::from(p.uid))),
                    Field::ProcessEuid => f(Num(u64::from(p.euid))),
                    Field::ProcessUser => f(Str(p.user.as_bytes())),
                    Field::ProcessName => f(Str(p.name.as_bytes())),
                    Field::ProcessExe => f(Str(&p.exe)),
                    Field::ProcessArgs => p.argv.iter().any(|a| f(Str(a))),
                    Field::ProcessCwd => f(Str(&p.cwd)),
                    Field::ProcessParentName => f(Str(p.parent_name.as_bytes())),
                    Field::ProcessAncestorName => {
                        p.ancestors.iter().any(|a| f(Str(a.name.as_bytes())))
                    }
                    Field::ProcessAncestorExe => p.ancestors.iter().any(|a| f(Str(&a.exe))),
                    Field::ProcessLoginUser => {
                        p.login_uid.is_some() && f(Str(p.login_user.as_bytes()))
                    }
                    Field::ProcessLoginUid => p.login_uid.is_some_and(|u| f(Num(u64::from(u)))),
                    Field::ProcessUnit => f(Str(p.unit.as_bytes())),
                    Field::ProcessContainerRuntime => p
                        .container
                        .as_ref()
                        .is_some_and(|c| f(Str(c.runtime.as_bytes()))),
                    Field::ProcessInContainer => f(Bool(p.container.is_some())),
                    Field::ProcessTty => f(Str(p.tty.as_bytes())),
                    Field::ProcessGainedRoot => f(Bool(p.gained_root)),
                    Field::ProcessStdioSocket => f(Str(p.stdio_socket.as_bytes())),
                    Field::ProcessLdPreload => f(Str(&p.ld_preload)),
                    Field::ProcessTargetName => {
                        p.target.as_ref().is_some_and(|t| f(Str(t.name.as_bytes())))
                    }
                    Field::ProcessTargetExe => p.target.as_ref().is_some_and(|t| f(Str(&t.exe))),
                    Field::ProcessTargetIsDescendant => f(Bool(p.target_is_descendant)),
                    Field::ProcessOldName => f(Str(p.old_name.as_bytes())),
                    _ => false,
                },
                Some(event::Details::File(x)) => match self {
                    // Either name of a rename: moving a file out of a place is a change there.
                    Field::FilePath => {
                        f(Str(&x.path)) || (!x.old_path.is_empty() && f(Str(&x.old_path)))
                    }
                    Field::FileOldPath => !x.old_path.is_empty() && f(Str(&x.old_path)),
                    Field::FileKind => f(Str(x.kind.as_bytes())),
                    Field::FileMode => f(Num(u64::from(x.mode))),
                    Field::FileModeGained => f(Num(u64::from(x.mode & !x.mode_before))),
                    Field::FileUid => f(Num(u64::from(x.uid))),
                    Field::FileExe => f(Str(&x.exe)),
                    Field::FileUser => f(Str(x.user.as_bytes())),
                    Field::FileWhileAgentDown => f(Bool(x.while_agent_down)),
                    Field::FileShrank => f(Bool(shrank(x.mtime_before_ns, x.size_before, x.size))),
                    Field::FileMtimeMovedBack => f(Bool(moved_back(x.mtime_before_ns, x.mtime_ns))),
                    _ => false,
                },
                Some(event::Details::Auth(a)) => match self {
                    Field::AuthUser => f(Str(a.user.as_bytes())),
                    Field::AuthTargetUser => f(Str(a.target_user.as_bytes())),
                    Field::AuthSourceAddress => f(Str(a.source_address.as_bytes())),
                    Field::AuthMethod => f(Str(a.method.as_bytes())),
                    Field::AuthSuccess => f(Bool(a.success)),
                    Field::AuthService => f(Str(a.service.as_bytes())),
                    Field::AuthCommand => f(Str(a.command.as_bytes())),
                    Field::AuthVerified => f(Bool(a.verified)),
                    Field::AuthBurst => f(Bool(a.burst)),
                    _ => false,
                },
                Some(event::Details::Network(n)) => match self {
                    Field::NetworkProtocol => f(Str(n.protocol.as_bytes())),
                    Field::NetworkLocalPort => f(Num(u64::from(n.local_port))),
                    Field::NetworkRemoteAddress => f(Str(n.remote_address.as_bytes())),
                    Field::NetworkRemotePort => f(Num(u64::from(n.remote_port))),
                    Field::NetworkDirection => f(Str(n.direction().name().as_bytes())),
                    Field::NetworkExe => f(Str(&n.exe)),
                    Field::NetworkProcessName => f(Str(n.process_name.as_bytes())),
                    Field::NetworkUser => f(Str(n.user.as_bytes())),
                    Field::NetworkBetweenScans => f(Bool(n.between_scans)),
                    _ => false,
                },
                _ => false,
            },
        }
    }
}

impl Field {
    /// The same as [`Field::any`], over an event in its JSON shape (a line of `watch --json`), for
    /// trying rules on recorded events (`sec-trackerctl rules test`).
    pub(super) fn any_json<'a>(
        self,
        e: &'a serde_json::Value,
        f: &mut impl FnMut(Value<'a>) -> bool,
    ) -> bool {
        use Value::{Bool, Num, Str};
        let d = &e["details"];
        let text = |v: &'a serde_json::Value| v.as_str().map(str::as_bytes);
        let ty = e["type"].as_str().unwrap_or("");
        let on = |t: &str| ty == t;
        let s = |key: &str, f: &mut dyn FnMut(Value<'a>) -> bool| -> bool {
            text(&d[key]).is_some_and(|v| f(Str(v)))
        };
        let n = |key: &str, f: &mut dyn FnMut(Value<'a>) -> bool| -> bool {
            d[key].as_u64().is_some_and(|v| f(Num(v)))
        };
        let b = |key: &str, f: &mut dyn FnMut(Value<'a>) -> bool| -> bool {
            f(Bool(d[key].as_bool().unwrap_or(false)))
        };
        let octal = |key: &str| {
            d[key]
                .as_str()
                .and_then(|m| u64::from_str_radix(m, 8).ok())
                .unwrap_or(0)
        };
        let f: &mut dyn FnMut(Value<'a>) -> bool = f;
        match self {
            Field::Type => f(Str(ty.as_bytes())),
            Field::Source => text(&e["source"]).is_some_and(|v| f(Str(v))),
            Field::Action => {
                let key = if on("system") { "kind" } else { "action" };
                s(key, f)
            }
            Field::AgentKind => on("system") && s("kind", f),
            Field::ProcessPid if on("process") => n("pid", f),
            Field::ProcessUid if on("process") => n("uid", f),
            Field::ProcessEuid if on("process") => n("euid", f),
            Field::ProcessUser if on("process") => s("user", f),
            Field::ProcessName if on("process") => s("name", f),
            Field::ProcessExe if on("process") => s("exe", f),
            Field::ProcessArgs if on("process") => d["argv"]
                .as_array()
                .is_some_and(|a| a.iter().filter_map(text).any(|x| f(Str(x)))),
            Field::ProcessCwd if on("process") => s("cwd", f),
            Field::ProcessParentName if on("process") => s("parent_name", f),
            Field::ProcessAncestorName | Field::ProcessAncestorExe if on("process") => {
                let key = if self == Field::ProcessAncestorName {
                    "name"
                } else {
                    "exe"
                };
                d["ancestors"]
                    .as_array()
                    .is_some_and(|a| a.iter().filter_map(|x| text(&x[key])).any(|x| f(Str(x))))
            }
            Field::ProcessLoginUser if on("process") => s("login_user", f),
            Field::ProcessLoginUid if on("process") => n("login_uid", f),
            Field::ProcessUnit if on("process") => s("unit", f),
            Field::ProcessContainerRuntime if on("process") => {
                text(&d["container"]["runtime"]).is_some_and(|v| f(Str(v)))
            }
            Field::ProcessInContainer if on("process") => f(Bool(d["container"].is_object())),
            Field::ProcessTty if on("process") => s("tty", f),
            Field::ProcessGainedRoot if on("process") => b("gained_root", f),
            Field::ProcessStdioSocket if on("process") => {
                f(Str(text(&d["stdio_socket"]).unwrap_or_default()))
            }
            Field::ProcessLdPreload if on("process") => {
                f(Str(text(&d["ld_preload"]).unwrap_or_default()))
            }
            Field::ProcessTargetName if on("process") => {
                text(&d["target"]["name"]).is_some_and(|v| f(Str(v)))
            }
            Field::ProcessTargetExe if on("process") => {
                text(&d["target"]["exe"]).is_some_and(|v| f(Str(v)))
            }
            Field::ProcessTargetIsDescendant if on("process") => b("target_is_descendant", f),
            Field::ProcessOldName if on("process") => s("old_name", f),
            Field::FilePath if on("file") => {
                s("path", f)
                    || (d["old_path"].as_str().is_some_and(|o| !o.is_empty()) && s("old_path", f))
            }
            Field::FileOldPath if on("file") => {
                d["old_path"].as_str().is_some_and(|o| !o.is_empty()) && s("old_path", f)
            }
            Field::FileKind if on("file") => s("kind", f),
            Field::FileMode if on("file") => f(Num(octal("mode"))),
            Field::FileModeGained if on("file") => f(Num(octal("mode") & !octal("mode_before"))),
            Field::FileUid if on("file") => n("uid", f),
            Field::FileExe if on("file") => s("exe", f),
            Field::FileUser if on("file") => s("user", f),
            Field::FileWhileAgentDown if on("file") => b("while_agent_down", f),
            Field::FileShrank if on("file") => {
                let n = |k: &str| d[k].as_u64().unwrap_or(0);
                let before = d["mtime_before_ns"].as_i64().unwrap_or(0);
                f(Bool(shrank(before, n("size_before"), n("size"))))
            }
            Field::FileMtimeMovedBack if on("file") => {
                let t = |k: &str| d[k].as_i64().unwrap_or(0);
                f(Bool(moved_back(t("mtime_before_ns"), t("mtime_ns"))))
            }
            Field::AuthUser if on("auth") => s("user", f),
            Field::AuthTargetUser if on("auth") => s("target_user", f),
            Field::AuthSourceAddress if on("auth") => s("source_address", f),
            Field::AuthMethod if on("auth") => s("method", f),
            Field::AuthSuccess if on("auth") => b("success", f),
            Field::AuthService if on("auth") => s("service", f),
            Field::AuthCommand if on("auth") => s("command", f),
            Field::AuthVerified if on("auth") => b("verified", f),
            Field::AuthBurst if on("auth") => b("burst", f),
            Field::NetworkProtocol if on("network") => s("protocol", f),
            Field::NetworkLocalPort if on("network") => n("local_port", f),
            Field::NetworkRemoteAddress if on("network") => s("remote_address", f),
            Field::NetworkRemotePort if on("network") => n("remote_port", f),
            Field::NetworkDirection if on("network") => s("direction", f),
            Field::NetworkExe if on("network") => s("exe", f),
            Field::NetworkProcessName if on("network") => s("process_name", f),
            Field::NetworkUser if on("network") => s("user", f),
            Field::NetworkBetweenScans if on("network") => b("between_scans", f),
            _ => false,
        }
    }
}
