//! Reads system information from `/proc`, `statvfs` and `getifaddrs`.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;
use nix::sys::statvfs::{statvfs, FsFlags};
use procfs::{Current, CurrentSI};
use sec_tracker_proto::v1::{
    CpuInfo, DiskInfo, LoadAverage, MemoryInfo, NetworkInterface, SystemInfo,
};

/// Shortest window CPU usage is measured over; a fresh pair of samples is taken when the last
/// one is older than [`MAX_WINDOW`] or younger than this.
const MIN_WINDOW: Duration = Duration::from_millis(100);
const MAX_WINDOW: Duration = Duration::from_secs(5);
const FRESH_WINDOW: Duration = Duration::from_millis(250);

/// Filesystems that are real storage even though their source is not a block device.
const NETWORK_OR_POOL_FS: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "zfs",
    "ceph",
    "glusterfs",
    "9p",
    "virtiofs",
];
/// Block-backed filesystems that are noise for an operator (snap packages are squashfs loops).
const NOISE_FS: &[&str] = &["squashfs", "iso9660"];

/// Keeps the previous `/proc/stat` sample so CPU usage is a real delta.
#[derive(Default)]
pub struct SystemSampler {
    last_cpu: Option<(CpuTicks, Instant)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CpuTicks {
    pub busy: u64,
    pub total: u64,
}

impl SystemSampler {
    pub fn new() -> Self {
        Self::default()
    }

    /// CPU usage in percent since the previous sample, taking a fresh 250 ms window when there
    /// is no usable previous sample. Blocks for at most that window.
    pub fn cpu_usage(&mut self) -> f64 {
        let now = Instant::now();
        let usable = self
            .last_cpu
            .filter(|(_, at)| (MIN_WINDOW..=MAX_WINDOW).contains(&now.duration_since(*at)));
        let before = match usable {
            Some((t, _)) => t,
            None => {
                let t = read_cpu_ticks().unwrap_or(CpuTicks { busy: 0, total: 0 });
                std::thread::sleep(FRESH_WINDOW);
                t
            }
        };
        let after = read_cpu_ticks().unwrap_or(before);
        self.last_cpu = Some((after, Instant::now()));
        usage_between(before, after)
    }

    /// Everything DESIGN.md lists. Never fails as a whole: a part that cannot be read is left
    /// empty and logged.
    pub fn collect(&mut self) -> SystemInfo {
        let uts = nix::sys::utsname::uname().ok();
        let machine = uts
            .as_ref()
            .map(|u| u.machine().to_string_lossy().into_owned())
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        let stats = procfs::KernelStats::current().ok();
        let cores = stats
            .as_ref()
            .map(|s| s.cpu_time.len() as u32)
            .filter(|n| *n > 0)
            .or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .map(|n| n.get() as u32)
            })
            .unwrap_or(1);
        let cpuinfo = procfs::CpuInfo::current().ok();
        let model_name = cpuinfo
            .as_ref()
            .and_then(|c| {
                c.model_name(0)
                    .map(str::to_owned)
                    .or_else(|| c.get_field(0, "Hardware").map(str::to_owned))
            })
            .unwrap_or_default();
        let usage = self.cpu_usage();
        let load = procfs::LoadAverage::current().ok();
        SystemInfo {
            hostname: nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            os: "linux".into(),
            kernel: uts
                .as_ref()
                .map(|u| u.release().to_string_lossy().into_owned())
                .unwrap_or_default(),
            architecture: debian_arch(&machine).to_owned(),
            machine,
            os_release: os_release_pretty_name().unwrap_or_default(),
            cpu_info: Some(CpuInfo {
                cores,
                model_name,
                usage_percent: usage,
            }),
            memory_info: memory().or_else(|| {
                tracing::warn!("cannot read /proc/meminfo");
                None
            }),
            disks: disks(),
            network_interfaces: interfaces(),
            uptime_seconds: procfs::Uptime::current().map(|u| u.uptime).unwrap_or(0.0),
            load_average: load.as_ref().map(|l| LoadAverage {
                one: f64::from(l.one),
                five: f64::from(l.five),
                fifteen: f64::from(l.fifteen),
            }),
            timestamp_ns: sec_tracker_proto::json::now_ns(),
            process_count: load.map_or(0, |l| u64::from(l.max)),
        }
    }
}

pub(super) fn read_cpu_ticks() -> Option<CpuTicks> {
    let t = procfs::KernelStats::current().ok()?.total;
    let idle = t.idle + t.iowait.unwrap_or(0);
    let busy = t.user
        + t.nice
        + t.system
        + t.irq.unwrap_or(0)
        + t.softirq.unwrap_or(0)
        + t.steal.unwrap_or(0);
    Some(CpuTicks {
        busy,
        total: busy + idle,
    })
}

pub(super) fn usage_between(a: CpuTicks, b: CpuTicks) -> f64 {
    let total = b.total.saturating_sub(a.total);
    if total == 0 {
        return 0.0;
    }
    let busy = b.busy.saturating_sub(a.busy);
    (busy as f64 * 100.0 / total as f64).clamp(0.0, 100.0)
}

/// Go's architecture names ("amd64"), which existing scripts read; keep them.
fn debian_arch(machine: &str) -> &str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" | "arm64" => "arm64",
        "i386" | "i686" => "386",
        "armv7l" => "arm",
        other => other,
    }
}

fn os_release_pretty_name() -> Option<String> {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_owned())
}

fn memory() -> Option<MemoryInfo> {
    let m = procfs::Meminfo::current().ok()?;
    let total = m.mem_total;
    // Kernels before 3.14 have no MemAvailable; approximate as free + buffers + cache.
    let available = m
        .mem_available
        .unwrap_or(m.mem_free + m.buffers + m.cached)
        .min(total);
    let used = total - available;
    Some(MemoryInfo {
        total,
        available,
        used,
        usage_percent: if total > 0 {
            used as f64 * 100.0 / total as f64
        } else {
            0.0
        },
        swap_total: m.swap_total,
        swap_free: m.swap_free,
    })
}

/// Real mounted filesystems: block-device or network/pool backed, one entry per device (bind
/// mounts of the same device are the shortest mount point only).
fn disks() -> Vec<DiskInfo> {
    let mounts = match procfs::process::Process::myself().and_then(|p| p.mountinfo()) {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read mountinfo");
            return Vec::new();
        }
    };
    let mut by_device: BTreeMap<String, procfs::process::MountInfo> = BTreeMap::new();
    for m in mounts {
        let source = m.mount_source.clone().unwrap_or_default();
        let real = (source.starts_with("/dev/") && !NOISE_FS.contains(&m.fs_type.as_str()))
            || NETWORK_OR_POOL_FS.contains(&m.fs_type.as_str());
        if !real {
            continue;
        }
        let key = m.majmin.clone();
        let replace = by_device.get(&key).is_none_or(|prev| {
            m.mount_point.as_os_str().len() < prev.mount_point.as_os_str().len()
        });
        if replace {
            by_device.insert(key, m);
        }
    }
    let mut out: Vec<DiskInfo> = by_device
        .into_values()
        .filter_map(|m| {
            let st = statvfs(&m.mount_point).ok()?;
            let frag = st.fragment_size() as u64;
            let total = st.blocks() as u64 * frag;
            let free = st.blocks_free() as u64 * frag;
            let available = st.blocks_available() as u64 * frag;
            let used = total.saturating_sub(free);
            // As df: used / (used + available to unprivileged users).
            let denom = used + available;
            Some(DiskInfo {
                mount_point: m.mount_point.to_string_lossy().into_owned(),
                device: m.mount_source.unwrap_or_default(),
                fs_type: m.fs_type,
                total,
                available,
                used,
                usage_percent: if denom > 0 {
                    used as f64 * 100.0 / denom as f64
                } else {
                    0.0
                },
                inodes_total: st.files() as u64,
                inodes_free: st.files_free() as u64,
                read_only: st.flags().contains(FsFlags::ST_RDONLY),
            })
        })
        .collect();
    out.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
    out
}

fn interfaces() -> Vec<NetworkInterface> {
    let counters = procfs::net::dev_status().unwrap_or_default();
    let mut by_name: BTreeMap<String, NetworkInterface> = BTreeMap::new();
    let mut seen_addr: HashSet<(String, String)> = HashSet::new();
    if let Ok(addrs) = getifaddrs() {
        for ifa in addrs {
            let entry = by_name
                .entry(ifa.interface_name.clone())
                .or_insert_with(|| NetworkInterface {
                    name: ifa.interface_name.clone(),
                    ..Default::default()
                });
            entry.up |= ifa.flags.contains(InterfaceFlags::IFF_UP);
            let Some(addr) = ifa.address else { continue };
            if let Some(link) = addr.as_link_addr() {
                if let Some(mac) = link.addr() {
                    if mac.iter().any(|b| *b != 0) {
                        entry.mac = mac
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":");
                    }
                }
                continue;
            }
            let prefix = |mask: Option<u32>| mask.map(|m| format!("/{m}")).unwrap_or_default();
            let text = if let Some(v4) = addr.as_sockaddr_in() {
                let mask = ifa
                    .netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in())
                    .map(|m| u32::from(m.ip()).count_ones());
                format!("{}{}", v4.ip(), prefix(mask))
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                let mask = ifa
                    .netmask
                    .as_ref()
                    .and_then(|m| m.as_sockaddr_in6())
                    .map(|m| u128::from(m.ip()).count_ones());
                format!("{}{}", v6.ip(), prefix(mask))
            } else {
                continue;
            };
            if seen_addr.insert((ifa.interface_name.clone(), text.clone())) {
                entry.addresses.push(text);
            }
        }
    }
    for (name, c) in counters {
        let entry = by_name
            .entry(name.clone())
            .or_insert_with(|| NetworkInterface {
                name,
                ..Default::default()
            });
        entry.rx_bytes = c.recv_bytes;
        entry.tx_bytes = c.sent_bytes;
        entry.rx_packets = c.recv_packets;
        entry.tx_packets = c.sent_packets;
        entry.rx_errors = c.recv_errs;
        entry.tx_errors = c.sent_errs;
    }
    by_name.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_busy_share_of_the_delta() {
        let a = CpuTicks {
            busy: 100,
            total: 1000,
        };
        let b = CpuTicks {
            busy: 150,
            total: 1200,
        };
        assert!((usage_between(a, b) - 25.0).abs() < 1e-9);
        assert_eq!(usage_between(a, a), 0.0);
        // A counter that went backwards (CPU hot-unplug) is not a negative percentage.
        assert_eq!(usage_between(b, a), 0.0);
    }

    #[test]
    fn architecture_uses_the_seed_names() {
        assert_eq!(debian_arch("x86_64"), "amd64");
        assert_eq!(debian_arch("aarch64"), "arm64");
        assert_eq!(debian_arch("riscv64"), "riscv64");
    }
}
