//! `config-check`: every problem of a config file, or a summary of what it sets.

use std::path::Path;

use sec_tracker_proto::config::DEFAULT_CONFIG_PATH;
use sec_tracker_proto::Config;

/// A line of the report on stdout. A reader that closed the pipe (`config-check | grep -q`) has
/// what it wanted: the write error is dropped, not a panic; the exit status carries the verdict.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// Returns the process exit code: 0 valid, 1 invalid.
pub(crate) fn run(path: Option<&Path>) -> u8 {
    let path = path.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    match Config::load(path) {
        Ok(c) => {
            say!("{}: valid", path.display());
            let m = &c.monitoring;
            let on: Vec<&str> = [
                ("system_info", m.system_info),
                ("process_monitor", m.process_monitor),
                ("file_monitor", m.file_monitor),
                ("network_monitor", m.network_monitor),
                ("auth_monitor", m.auth_monitor),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
            say!("  agent id:      {}", c.agent_id());
            say!(
                "  server:        {}",
                if c.server.url.is_empty() {
                    "(none: local mode only)".to_owned()
                } else {
                    c.server.url.clone()
                }
            );
            say!(
                "  api key:       {}",
                if c.server.api_key.is_empty() {
                    "(not set)"
                } else {
                    "set (not shown)"
                }
            );
            say!("  monitors:      {}", on.join(", "));
            say!(
                "  watch paths:   {}",
                m.watch_paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            say!(
                "  scan interval: {}",
                humantime::format_duration(m.scan_interval)
            );
            say!("  buffer size:   {} events", c.agent.buffer_size);
            // The rules are part of the configuration: their problems fail the check too.
            match collectord::rules::Rules::load(Some(&m.rules_dir)) {
                Ok(r) => {
                    let set = r.current();
                    let own = set.rules.iter().filter(|r| r.origin != "built-in").count();
                    say!(
                        "  rules:         {} ({} from {}), all valid",
                        set.rules.len(),
                        own,
                        m.rules_dir.display()
                    );
                    0
                }
                Err(problems) => {
                    for p in &problems {
                        eprintln!("sec-trackerctl: {p}");
                    }
                    1
                }
            }
        }
        Err(e) => {
            eprintln!("sec-trackerctl: {e}");
            1
        }
    }
}
