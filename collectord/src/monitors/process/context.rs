//! Where a process runs and on whose behalf: its login (the audit login uid and session, kept
//! through sudo and su), its systemd unit, its container and runtime, whether it is in
//! namespaces other than the host's, and a stable id (`entity_id`) that a server can join events
//! on across pid reuse and reboots.
//!
//! The parsers are pure functions over `/proc` file contents (fuzzed in `collectord/fuzz`); the
//! reader reads a live process, as soon after its exec as the connector allows.

use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;

use sha2::{Digest, Sha256};

use super::proc_reader::ProcDir;

/// A container a process runs in, as its cgroup path names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// `docker`, `containerd`, `cri-o`, `podman`, `kubernetes` (a pod's container, runtime not
    /// named in the path), `lxc`, `systemd-nspawn`.
    pub runtime: &'static str,
    /// The runtime's container id (64 hex digits), or the LXC / machine name.
    pub id: String,
}

/// What a process's cgroup says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cgroup {
    /// The systemd unit (`ssh.service`, `session-3.scope`, `docker-<id>.scope`), or the slice
    /// when the process sits in one directly; empty when the path names none.
    pub unit: String,
    pub container: Option<Container>,
}

/// Namespaces the process does not share with the host (PID 1, or collectord where PID 1 cannot
/// be read).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Namespaces {
    pub pid: bool,
    pub mnt: bool,
    pub net: bool,
    pub user: bool,
}

/// Everything read for one process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessContext {
    /// From `/proc/<pid>/stat`: part of the entity id.
    pub starttime: Option<u64>,
    /// Its controlling terminal (`pts/3`, `tty1`), if any.
    pub tty: Option<String>,
    pub login_uid: Option<u32>,
    pub session_id: Option<u32>,
    pub cgroup: Cgroup,
    pub namespaces: Namespaces,
}

/// Parses `/proc/<pid>/cgroup` (v2: `0::/path`; v1: `id:controllers:/path` per hierarchy). The
/// unit comes from the v2 line or v1's `name=systemd` hierarchy; a container from any line.
pub fn parse_cgroup(text: &[u8]) -> Cgroup {
    let mut out = Cgroup::default();
    // Hybrid hosts have both: systemd's own v1 hierarchy is the one it keeps units in.
    let (mut systemd_v1, mut unified): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    for line in text.split(|b| *b == b'\n') {
        let mut parts = line.splitn(3, |b| *b == b':');
        let (Some(_id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if controllers == b"name=systemd" {
            systemd_v1 = Some(path);
        } else if controllers.is_empty() {
            unified = Some(path);
        }
        if out.container.is_none() {
            out.container = container_in(path);
        }
    }
    let placed = |p: &&[u8]| p.iter().any(|b| *b != b'/');
    if let Some(path) = systemd_v1.filter(placed).or(unified) {
        out.unit = unit_in(path);
    }
    out
}

/// The innermost `.service` or `.scope` of `path`, else its innermost `.slice`.
fn unit_in(path: &[u8]) -> String {
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    let pick = parts
        .iter()
        .rev()
        .find(|p| p.ends_with(b".service") || p.ends_with(b".scope"))
        .or_else(|| parts.iter().rev().find(|p| p.ends_with(b".slice")));
    pick.map(|p| String::from_utf8_lossy(p).into_owned())
        .unwrap_or_default()
}

fn is_container_id(s: &[u8]) -> bool {
    s.len() == 64 && s.iter().all(u8::is_ascii_hexdigit)
}

/// The container a cgroup path names, innermost first.
fn container_in(path: &[u8]) -> Option<Container> {
    let parts: Vec<&[u8]> = path
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .collect();
    for (i, part) in parts.iter().enumerate().rev() {
        let scoped = |prefix: &[u8]| -> Option<String> {
            let id = part.strip_prefix(prefix)?.strip_suffix(b".scope")?;
            is_container_id(id).then(|| String::from_utf8_lossy(id).into_owned())
        };
        // systemd cgroup driver: <runtime>-<id>.scope (their "-conmon-" scopes are the monitor).
        for (prefix, runtime) in [
            (&b"docker-"[..], "docker"),
            (b"cri-containerd-", "containerd"),
            (b"crio-", "cri-o"),
            (b"libpod-", "podman"),
        ] {
            if let Some(id) = scoped(prefix) {
                return Some(Container { runtime, id });
            }
        }
        // A name is taken as written or not at all: a name that is not UTF-8 would come out
        // as something the cgroup never said.
        let name = |prefix: &[u8]| -> Option<String> {
            let n = part.strip_prefix(prefix)?;
            std::str::from_utf8(n)
                .ok()
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
        };
        // LXC 4+ (`lxc.payload.<name>`; `lxc.monitor.<name>` is LXC itself); systemd-nspawn.
        if let Some(id) = name(b"lxc.payload.") {
            return Some(Container { runtime: "lxc", id });
        }
        if let Some(id) = part
            .strip_prefix(b"machine-")
            .and_then(|p| p.strip_suffix(b".scope"))
            .filter(|n| !n.is_empty() && !n.starts_with(b"qemu"))
            .and_then(|n| std::str::from_utf8(n).ok())
        {
            return Some(Container {
                runtime: "systemd-nspawn",
                id: id.to_owned(),
            });
        }
        // cgroupfs driver: /docker/<id>, /lxc/<name>, /kubepods/<qos>/pod<uid>/<id>.
        let parent = i.checked_sub(1).map(|j| parts[j]);
        if is_container_id(part) {
            let runtime = match parent {
                Some(b"docker") => "docker",
                Some(p) if p.starts_with(b"pod") => "kubernetes",
                Some(b"libpod_parent") => "podman",
                _ => continue,
            };
            return Some(Container {
                runtime,
                id: String::from_utf8_lossy(part).into_owned(),
            });
        }
        if parent == Some(b"lxc") {
            if let Ok(id) = std::str::from_utf8(part) {
                return Some(Container {
                    runtime: "lxc",
                    id: id.to_owned(),
                });
            }
        }
    }
    None
}

/// The start time (field 22 of `/proc/<pid>/stat`, clock ticks since boot). The command name in
/// field 2 may hold spaces and parentheses: fields are counted after its last `)`.
pub fn parse_starttime(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|b| *b == b')')?;
    let rest = stat.get(close + 1..)?;
    // After the name: state is field 3, starttime field 22, so the 20th field of the rest.
    let field = rest
        .split(|b| *b == b' ')
        .filter(|f| !f.is_empty())
        .nth(19)?;
    std::str::from_utf8(field).ok()?.trim().parse().ok()
}

/// The controlling terminal (field 7 of `/proc/<pid>/stat`, a device number) by its name under
/// `/dev`; None for none or a device this does not name.
pub fn parse_tty(stat: &[u8]) -> Option<String> {
    let close = stat.iter().rposition(|b| *b == b')')?;
    let field = stat
        .get(close + 1..)?
        .split(|b| *b == b' ')
        .filter(|f| !f.is_empty())
        .nth(4)?;
    let nr: i64 = std::str::from_utf8(field).ok()?.parse().ok()?;
    let nr = u32::try_from(nr).ok().filter(|n| *n != 0)?;
    let major = (nr >> 8) & 0xfff;
    let minor = (nr & 0xff) | ((nr >> 12) & 0xf_ff00);
    match major {
        136..=143 => Some(format!("pts/{}", (major - 136) * 256 + minor)),
        4 if minor < 64 => Some(format!("tty{minor}")),
        4 => Some(format!("ttyS{}", minor - 64)),
        _ => None,
    }
}

/// `/proc/<pid>/loginuid` or `sessionid`: None when unset (`4294967295`, `-1`) or unreadable.
pub fn parse_audit_id(text: &[u8]) -> Option<u32> {
    let v: i64 = std::str::from_utf8(text).ok()?.trim().parse().ok()?;
    u32::try_from(v).ok().filter(|v| *v != u32::MAX)
}

/// A process's stable id: the same for its whole life (exec included), different for any other
/// process on any boot. Hex of the first 16 bytes of SHA-256(boot id, pid, start time).
pub fn entity_id(boot_id: &str, pid: u32, starttime: u64) -> String {
    let mut h = Sha256::new();
    h.update(boot_id.as_bytes());
    h.update(pid.to_le_bytes());
    h.update(starttime.to_le_bytes());
    let digest = h.finalize();
    let mut s = String::with_capacity(32);
    for b in &digest[..16] {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Reads processes' context, with the host's namespaces and this boot's id read once.
pub struct ContextReader {
    boot_id: String,
    host_ns: [Vec<u8>; 4],
    buf: Vec<u8>,
}

const NS: [&str; 4] = ["pid", "mnt", "net", "user"];

impl Default for ContextReader {
    fn default() -> Self {
        Self::new()
    }
}

impl ContextReader {
    pub fn new() -> ContextReader {
        let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        ContextReader {
            boot_id,
            // PID 1's, or our own where PID 1's cannot be read (a sandbox's PID 1 may be
            // out of reach even for root).
            host_ns: NS.map(|n| {
                let init = ns_link(1, n);
                if init.is_empty() {
                    std::fs::read_link(format!("/proc/self/ns/{n}"))
                        .map(|p| p.as_os_str().as_bytes().to_vec())
                        .unwrap_or_default()
                } else {
                    init
                }
            }),
            buf: Vec::with_capacity(1024),
        }
    }

    pub fn boot_id(&self) -> &str {
        &self.boot_id
    }

    /// The start time of `pid`, None when it is gone.
    pub fn starttime(&mut self, pid: u32) -> Option<u64> {
        self.read(&format!("/proc/{pid}/stat"), 4096)?;
        parse_starttime(&self.buf)
    }

    /// The entity id of a live `pid` (None when it is gone).
    pub fn entity_id_of(&mut self, pid: u32) -> Option<String> {
        let start = self.starttime(pid)?;
        Some(entity_id(&self.boot_id, pid, start))
    }

    pub fn read_context(&mut self, pid: u32) -> ProcessContext {
        match ProcDir::open(pid) {
            Some(dir) => self.read_context_in(&dir),
            None => ProcessContext::default(),
        }
    }

    /// [`ContextReader::read_context`] of a process whose directory is open.
    pub fn read_context_in(&mut self, dir: &ProcDir) -> ProcessContext {
        let read = |name: &str, limit: usize, buf: &mut Vec<u8>| dir.read(name, limit, buf).ok();
        let (starttime, tty) = match read("stat", 4096, &mut self.buf) {
            Some(()) => (parse_starttime(&self.buf), parse_tty(&self.buf)),
            None => (None, None),
        };
        let login_uid =
            read("loginuid", 32, &mut self.buf).and_then(|()| parse_audit_id(&self.buf));
        let session_id =
            read("sessionid", 32, &mut self.buf).and_then(|()| parse_audit_id(&self.buf));
        let cgroup = match read("cgroup", 16 * 1024, &mut self.buf) {
            Some(()) => parse_cgroup(&self.buf),
            None => Cgroup::default(),
        };
        let mut namespaces = Namespaces::default();
        for (i, flag) in [
            &mut namespaces.pid,
            &mut namespaces.mnt,
            &mut namespaces.net,
            &mut namespaces.user,
        ]
        .into_iter()
        .enumerate()
        {
            let link = dir.link(&format!("ns/{}", NS[i]));
            *flag = !link.is_empty() && !self.host_ns[i].is_empty() && link != self.host_ns[i];
        }
        ProcessContext {
            starttime,
            tty,
            login_uid,
            session_id,
            cgroup,
            namespaces,
        }
    }

    fn read(&mut self, path: &str, limit: u64) -> Option<()> {
        self.buf.clear();
        File::open(path)
            .ok()?
            .take(limit)
            .read_to_end(&mut self.buf)
            .ok()?;
        Some(())
    }
}

fn ns_link(pid: u32, ns: &str) -> Vec<u8> {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cg(text: &str) -> Cgroup {
        parse_cgroup(text.as_bytes())
    }

    const ID: &str = "3f2a9c1b7d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5061728394a5b6c7d8e";

    #[test]
    fn units_and_slices() {
        assert_eq!(cg("0::/system.slice/ssh.service\n").unit, "ssh.service");
        assert_eq!(
            cg("0::/user.slice/user-1000.slice/session-3.scope\n").unit,
            "session-3.scope"
        );
        assert_eq!(
            cg("0::/user.slice/user-1000.slice/user@1000.service/app.slice/vte-spawn-1.scope\n")
                .unit,
            "vte-spawn-1.scope"
        );
        assert_eq!(cg("0::/system.slice\n").unit, "system.slice");
        assert_eq!(cg("0::/\n"), Cgroup::default());
        // v1: the unit from name=systemd, whatever the other hierarchies say.
        let v1 = "12:cpu,cpuacct:/system.slice/cron.service\n1:name=systemd:/system.slice/cron.service\n0::/\n";
        assert_eq!(cg(v1).unit, "cron.service");
        // Hybrid, placed only in the unified hierarchy.
        assert_eq!(
            cg("9:name=systemd:/\n0::/system.slice/ssh.service\n").unit,
            "ssh.service"
        );
    }

    #[test]
    fn containers_as_each_runtime_names_them() {
        let cases = [
            (format!("0::/system.slice/docker-{ID}.scope"), "docker", ID.to_owned()),
            (format!("12:pids:/docker/{ID}\n1:name=systemd:/docker/{ID}"), "docker", ID.to_owned()),
            (
                format!("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/cri-containerd-{ID}.scope"),
                "containerd",
                ID.to_owned(),
            ),
            (format!("0::/kubepods.slice/kubepods-pod9.slice/crio-{ID}.scope"), "cri-o", ID.to_owned()),
            (format!("0::/machine.slice/libpod-{ID}.scope/container"), "podman", ID.to_owned()),
            (format!("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope"), "podman", ID.to_owned()),
            (format!("11:memory:/kubepods/burstable/pod0c1d2e3f/{ID}"), "kubernetes", ID.to_owned()),
            ("0::/lxc.payload.web01".to_owned(), "lxc", "web01".to_owned()),
            ("4:memory:/lxc/web01\n1:name=systemd:/lxc/web01/init.scope".to_owned(), "lxc", "web01".to_owned()),
            ("0::/machine.slice/machine-build.scope/payload".to_owned(), "systemd-nspawn", "build".to_owned()),
        ];
        for (text, runtime, id) in cases {
            assert_eq!(
                cg(&text).container,
                Some(Container { runtime, id }),
                "{text}"
            );
        }
        // Not containers: a conmon monitor scope, an id of the wrong length, a plain service.
        for text in [
            format!("0::/machine.slice/libpod-conmon-{ID}.scope"),
            "0::/system.slice/docker-abc.scope".to_owned(),
            "0::/system.slice/docker.service".to_owned(),
            "0::/lxc.monitor.web01".to_owned(),
            "garbage\n::\n\u{0}".to_owned(),
        ] {
            assert_eq!(cg(&text).container, None, "{text}");
        }
    }

    #[test]
    fn start_time_after_a_hostile_name() {
        let stat =
            b"4242 (a) b) (c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_starttime(stat), Some(987654));
        assert_eq!(parse_starttime(b"4242 (x) S 1"), None);
        assert_eq!(parse_starttime(b""), None);
    }

    #[test]
    fn terminals_by_name() {
        let stat =
            |tty_nr: u32| format!("1 (sh) S 0 1 1 {tty_nr} -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0 0");
        assert_eq!(parse_tty(stat(0x8803).as_bytes()), Some("pts/3".into()));
        assert_eq!(
            parse_tty(stat((137 << 8) | 4).as_bytes()),
            Some("pts/260".into())
        );
        assert_eq!(parse_tty(stat(0x0401).as_bytes()), Some("tty1".into()));
        assert_eq!(parse_tty(stat(0x0440).as_bytes()), Some("ttyS0".into()));
        assert_eq!(parse_tty(stat(0).as_bytes()), None);
        assert_eq!(parse_starttime(stat(0).as_bytes()), Some(5));
    }

    #[test]
    fn audit_ids() {
        assert_eq!(parse_audit_id(b"1000"), Some(1000));
        assert_eq!(parse_audit_id(b"4294967295"), None);
        assert_eq!(parse_audit_id(b"-1\n"), None);
        assert_eq!(parse_audit_id(b"x"), None);
    }

    #[test]
    fn entity_ids_are_stable_and_distinct() {
        let a = entity_id("boot-1", 42, 1000);
        assert_eq!(a, entity_id("boot-1", 42, 1000));
        assert_eq!(a.len(), 32);
        assert_ne!(a, entity_id("boot-1", 42, 1001), "pid reused");
        assert_ne!(a, entity_id("boot-2", 42, 1000), "another boot");
        assert_ne!(a, entity_id("boot-1", 43, 1000));
    }

    #[test]
    fn reads_itself() {
        let mut r = ContextReader::new();
        assert_eq!(r.boot_id().len(), 36);
        let me = std::process::id();
        let id = r.entity_id_of(me).unwrap();
        assert_eq!(Some(id), r.entity_id_of(me));
        let c = r.read_context(me);
        assert_eq!(
            c.namespaces,
            Namespaces::default(),
            "the tests run in the host's namespaces"
        );
    }
}
