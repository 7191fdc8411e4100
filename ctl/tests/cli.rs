//! sec-trackerctl as a user runs it: against a real collectord, and standalone.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use sec_tracker_testkit::{require_root, wait_for, Daemon};
use serde_json::Value;

const CTL: &str = env!("CARGO_BIN_EXE_sec-trackerctl");
const PROCESS_ONLY: &str =
    r#"{"monitoring": {"file_monitor": false, "auth_monitor": false, "network_monitor": false}}"#;
const SEED_EXAMPLE: &str = r#"{
  "server": {"url": "https://your-server.com", "api_key": "your-api-key", "timeout": "30s", "retry_max": 3, "batch_size": 100},
  "agent": {"id": "unique-agent-id", "name": "server-name", "report_interval": "60s", "buffer_size": 1000, "max_queue_size": 10000, "enable_tls": true},
  "monitoring": {"system_info": true, "process_monitor": true, "file_monitor": true, "network_monitor": true, "auth_monitor": true,
                 "watch_paths": ["/etc", "/usr/bin", "/var/log"], "scan_interval": "5s"},
  "local_output": {"json_format": false, "one_shot": false, "show_timestamp": true, "show_colors": true, "compact_output": false}
}"#;

fn collectord_bin() -> PathBuf {
    sec_tracker_testkit::workspace_bin(CTL, "collectord")
}

fn tag(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("st-{name}-{}-{nanos}", std::process::id())
}

fn ctl(args: &[&str]) -> Command {
    let mut c = Command::new(CTL);
    c.args(args)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    c
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Lines of a child's stdout, delivered through a channel so a test can wait with a deadline.
fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Keeps spawning a short-lived `sh -c 'sleep 0.05' <tag>` until a line containing the tag
/// arrives (the watcher may still be attaching when the first one runs); returns that line and
/// every line seen before it. 50 ms, not an instant `true`: on a loaded CI machine the point is
/// the CLI, not scheduler luck (the exec-storm benchmark measures instant processes).
fn spawn_until_seen(rx: &mpsc::Receiver<String>, tag: &str) -> (String, Vec<String>) {
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        Command::new("/bin/sh")
            .args(["-c", "sleep 0.05", tag])
            .status()
            .unwrap();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            if line.contains(tag) {
                return (line, seen);
            }
            seen.push(line);
        }
    }
    panic!(
        "no line with {tag} within 30 s; saw {} lines: {:?}",
        seen.len(),
        seen.iter().rev().take(5).collect::<Vec<_>>()
    );
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn version_prints_the_version() {
    let (code, out, _) = run(&mut ctl(&["version"]));
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        format!("sec-trackerctl {}", env!("CARGO_PKG_VERSION"))
    );
}

/// What bash offers for `words` (the last one being completed), with the script
/// `sec-trackerctl completions bash` prints.
fn bash_completes(script: &Path, words: &[&str]) -> Vec<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(
            r#"source "$0"
               COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
               fn=$(complete -p sec-trackerctl | sed 's/.*-F \([^ ]*\).*/\1/')
               "$fn" sec-trackerctl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
               printf '%s\n' "${COMPREPLY[@]}""#,
        )
        .arg(script)
        .args(words)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn bash_completion_offers_the_subcommands_and_their_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (code, script, err) = run(&mut ctl(&["completions", "bash"]));
    assert_eq!(code, Some(0), "{err}");
    let path = dir.path().join("sec-trackerctl.bash");
    std::fs::write(&path, script).unwrap();
    assert_eq!(bash_completes(&path, &["sec-trackerctl", "wat"]), ["watch"]);
    assert_eq!(
        bash_completes(&path, &["sec-trackerctl", "watch", "--js"]),
        ["--json"]
    );
    let subcommands = bash_completes(&path, &["sec-trackerctl", ""]);
    for s in ["watch", "snapshot", "status", "config-check", "rules"] {
        assert!(subcommands.iter().any(|c| c == s), "{s} in {subcommands:?}");
    }
    assert_eq!(
        bash_completes(&path, &["sec-trackerctl", "rules", "l"]),
        ["list"]
    );
    assert_eq!(
        bash_completes(&path, &["sec-trackerctl", "snapshot", "--j"]),
        ["--json"]
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let (code, script, err) = run(&mut ctl(&["completions", shell]));
        assert_eq!(code, Some(0), "{shell}: {err}");
        assert!(script.contains("sec-trackerctl"), "{shell}");
    }
    let (code, _, err) = run(&mut ctl(&["completions", "tcsh"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("possible values"), "{err}");
}

#[test]
fn man_pages_cover_every_subcommand_and_both_daemons() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&mut ctl(&["manpages", dir.path().to_str().unwrap()]));
    assert_eq!(code, Some(0), "{err}");
    let written: Vec<&str> = out.lines().collect();
    for page in [
        "man1/sec-trackerctl.1",
        "man1/sec-trackerctl-watch.1",
        "man1/sec-trackerctl-snapshot.1",
        "man1/sec-trackerctl-status.1",
        "man1/sec-trackerctl-rules.1",
        "man8/collectord.8",
        "man8/shipperd.8",
    ] {
        let path = dir.path().join(page);
        assert!(
            written.contains(&path.to_str().unwrap()),
            "{page} in {written:?}"
        );
        let roff = std::fs::read_to_string(&path).unwrap();
        assert!(roff.starts_with(".ie") || roff.contains(".TH"), "{page}");
    }
    let watch = std::fs::read_to_string(dir.path().join("man1/sec-trackerctl-watch.1")).unwrap();
    assert!(watch.contains("json"), "{watch}");
    let shipperd = std::fs::read_to_string(dir.path().join("man8/shipperd.8")).unwrap();
    assert!(shipperd.contains(".TH shipperd 8"), "{shipperd}");
    assert!(shipperd.contains("allow\\-root"), "{shipperd}");
    // Rendered by man itself where it is installed (CI installs man-db).
    if Path::new("/usr/bin/man").exists() {
        let text = Command::new("man")
            .arg("-l")
            .arg(dir.path().join("man8/collectord.8"))
            .env("MANWIDTH", "100")
            .env("MANPAGER", "cat")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("--socket"), "{text}");
        assert!(text.contains("capabilities"), "{text}");
    }
    let (code, _, err) = run(&mut ctl(&["manpages", "/proc/no-such-dir/x"]));
    assert_eq!(code, Some(1));
    assert!(err.contains("cannot create"), "{err}");
}

#[test]
fn config_check_accepts_the_seed_example_and_hides_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, SEED_EXAMPLE).unwrap();
    let (code, out, _) = run(&mut ctl(&[
        "config-check",
        "--config",
        path.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("valid"), "{out}");
    assert!(out.contains("unique-agent-id"), "{out}");
    assert!(
        !out.contains("your-api-key"),
        "the API key must never be printed: {out}"
    );
}

#[test]
fn config_check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.json");
    std::fs::write(&path, r#"{"agent": {"bufer_size": 5, "report_interval": "often"}, "local_output": {"show_colours": true}}"#).unwrap();
    let (code, _, err) = run(&mut ctl(&[
        "config-check",
        "--config",
        path.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(1));
    assert!(err.contains("3 problems"), "{err}");
    assert!(
        err.contains(r#"agent.bufer_size: unknown key; did you mean "buffer_size"?"#),
        "{err}"
    );
    assert!(
        err.contains("agent.report_interval: \"often\" is not a duration"),
        "{err}"
    );
    assert!(
        err.contains(r#"local_output.show_colours: unknown key; did you mean "show_colors"?"#),
        "{err}"
    );
}

#[test]
fn a_partial_config_from_a_pipe_works() {
    // The documented usage: -config <(echo '{...}')
    let script = format!(
        r#"{CTL} --config <(echo '{{"local_output": {{"compact_output": true}}}}') config-check && \
           {CTL} --socket /nonexistent/sock --config <(echo '{{"local_output": {{"json_format": true}}}}') snapshot"#
    );
    let (code, out, err) = run(Command::new("bash").arg("-c").arg(script));
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("valid"), "{out}");
    let json_start = out.find('{').unwrap();
    let v: Value =
        serde_json::from_str(&out[json_start..]).expect("json_format from the piped config");
    assert!(v["cpu_info"]["usage_percent"].is_number());
}

#[test]
fn snapshot_json_has_the_seed_fields_without_a_daemon() {
    let (code, out, err) = run(&mut ctl(&[
        "--socket",
        "/nonexistent/sock",
        "snapshot",
        "--json",
    ]));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    for key in ["hostname", "os", "kernel", "architecture", "timestamp"] {
        assert!(v[key].is_string(), "{key}: {out}");
    }
    assert!(v["cpu_info"]["usage_percent"].is_number());
    assert!(v["cpu_info"]["cores"].as_u64().unwrap() >= 1);
    let total = v["memory_info"]["total"].as_u64().unwrap();
    let used = v["memory_info"]["used"].as_u64().unwrap();
    let available = v["memory_info"]["available"].as_u64().unwrap();
    assert_eq!(used, total - available);
    assert!(v["disks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["mount_point"] == "/"));
    assert_eq!(v["load_average"].as_array().unwrap().len(), 3);
}

#[test]
fn snapshot_human_layout_and_colour_rules() {
    let (code, out, _) = run(&mut ctl(&["--socket", "/nonexistent/sock", "snapshot"]));
    assert_eq!(code, Some(0));
    for section in [
        "== SYSTEM INFORMATION ==",
        "--- CPU ---",
        "--- MEMORY ---",
        "--- STATUS ---",
        "Load Average: ",
    ] {
        assert!(out.contains(section), "{section} missing:\n{out}");
    }
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    let (_, forced, _) =
        run(ctl(&["--socket", "/nonexistent/sock", "snapshot"]).env("CLICOLOR_FORCE", "1"));
    assert!(forced.contains("\x1b["), "CLICOLOR_FORCE gives colour");
    let (_, no_color, _) = run(ctl(&["--socket", "/nonexistent/sock", "snapshot"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1"));
    assert!(!no_color.contains('\x1b'), "NO_COLOR wins");
    let (_, flag, _) = run(
        ctl(&["--socket", "/nonexistent/sock", "snapshot", "--no-color"])
            .env("CLICOLOR_FORCE", "1"),
    );
    assert!(!flag.contains('\x1b'), "--no-color wins");
}

#[test]
fn status_says_when_collectord_is_not_running() {
    let (code, out, _) = run(&mut ctl(&["--socket", "/nonexistent/sock", "status"]));
    assert_eq!(code, Some(3));
    assert!(out.starts_with("collectord: not running"), "{out}");
    let (code, out, _) = run(&mut ctl(&[
        "--socket",
        "/nonexistent/sock",
        "status",
        "--json",
    ]));
    assert_eq!(code, Some(3));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collector"]["running"], false);
}

#[test]
fn status_shows_a_running_collector_and_its_monitors() {
    if !require_root("status_running") {
        return;
    }
    let d = Daemon::start(&collectord_bin(), PROCESS_ONLY);
    let sock = d.socket.to_str().unwrap();
    // The monitor says "starting" while it learns the processes already running.
    let (code, out, err) = wait_for(
        "the process monitor running",
        Duration::from_secs(30),
        || {
            let (code, out, err) = run(&mut ctl(&["--socket", sock, "status"]));
            out.contains("process_monitor  running")
                .then_some((code, out, err))
        },
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains(&format!("collectord: running (pid {}", d.pid())),
        "{out}"
    );
    assert!(out.contains("process_monitor  running"), "{out}");
    let (code, out, _) = run(&mut ctl(&["--socket", sock, "status", "--json"]));
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["collector"]["running"], true);
    let monitors = v["collector"]["monitors"].as_array().unwrap();
    let process = monitors
        .iter()
        .find(|m| m["name"] == "process_monitor")
        .unwrap();
    assert_eq!(process["state"], "running");
    assert_eq!(process["detail"], "kernel process connector");
}

/// The value of one series in a Prometheus text exposition.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_prints_collectords_counters_and_says_shipperd_is_down() {
    if !require_root("metrics") {
        return;
    }
    let d = Daemon::start(&collectord_bin(), PROCESS_ONLY);
    let sock = d.socket.to_str().unwrap().to_owned();
    let args = [
        "--socket",
        &sock,
        "--shipper-socket",
        "/nonexistent/shipper.sock",
        "metrics",
    ];
    let out = wait_for("process events counted", Duration::from_secs(30), || {
        // Processes to count (each exec is an INFO process event).
        let _ = Command::new("/bin/true").status();
        let (code, out, err) = run(&mut ctl(&args));
        assert_eq!(code, Some(0), "{err}");
        let running = metric(
            &out,
            r#"sec_tracker_collector_monitor_state{monitor="process_monitor",state="running"}"#,
        ) == Some(1.0);
        let execs = metric(
            &out,
            r#"sec_tracker_collector_events_total{type="process",severity="info"}"#,
        )
        .unwrap_or(0.0);
        (running && execs >= 1.0).then_some(out)
    });
    assert_eq!(metric(&out, "sec_tracker_collector_up"), Some(1.0), "{out}");
    assert_eq!(metric(&out, "sec_tracker_shipper_up"), Some(0.0), "{out}");
    assert!(
        out.contains("# TYPE sec_tracker_collector_events_total counter"),
        "{out}"
    );
    let rss = metric(&out, "sec_tracker_collector_resident_memory_bytes").unwrap();
    assert!(rss > 1e6, "{out}");
    drop(d);
    // collectord gone: down, and nothing else claimed about it.
    let (code, out, err) = run(&mut ctl(&args));
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(metric(&out, "sec_tracker_collector_up"), Some(0.0), "{out}");
    assert!(!out.contains("sec_tracker_collector_events_total"), "{out}");
}

#[test]
fn watch_json_streams_one_object_per_line_from_the_daemon() {
    if !require_root("watch_json") {
        return;
    }
    let d = Daemon::start(&collectord_bin(), PROCESS_ONLY);
    let mut child = Killed(
        ctl(&[
            "--socket",
            d.socket.to_str().unwrap(),
            "watch",
            "--json",
            "--type",
            "process",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let rx = lines_of(&mut child.0);
    let tag = tag("watch");
    let (line, before) = spawn_until_seen(&rx, &tag);
    for l in before.iter().chain([&line]) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v["type"] == "process" || v["type"] == "gap",
            "--type process let through {l}"
        );
    }
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["details"]["action"], "exec");
    assert_eq!(v["details"]["argv"][3], tag.as_str());
    assert_eq!(v["details"]["user"], "root");
    assert_eq!(v["source"], "process_monitor");
    assert!(v["seq"].as_u64().unwrap() > 0);
}

#[test]
fn watch_standalone_needs_no_daemon() {
    if !require_root("watch_standalone") {
        return;
    }
    // Every monitor runs in-process; its state goes to a directory of the test's own, not
    // /var/lib/sec-tracker.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"agent": {{"state_dir": "{}"}}, "monitoring": {{"watch_paths": ["/etc"]}}}}"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let mut child = Killed(
        ctl(&[
            "--socket",
            "/nonexistent/sock",
            "--config",
            config.to_str().unwrap(),
            "watch",
            "--compact",
            "--no-color",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
    );
    let rx = lines_of(&mut child.0);
    let tag = tag("standalone");
    let (line, _) = spawn_until_seen(&rx, &tag);
    assert!(
        line.contains("INFO") && line.contains("process") && line.contains("Process started: sh"),
        "{line}"
    );
    let _ = child.0.kill();
    let mut err = String::new();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("running the collector in-process"), "{err}");
}

#[test]
fn watch_into_a_closed_pipe_ends_quietly() {
    if !require_root("broken_pipe") {
        return;
    }
    let d = Daemon::start(&collectord_bin(), PROCESS_ONLY);
    let mut child = ctl(&["--socket", d.socket.to_str().unwrap(), "watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // As `| head -n 1`: read one line, then close the pipe.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    drop(stdout);
    let status = wait_for(
        "watch to notice the closed pipe",
        Duration::from_secs(20),
        || {
            Command::new("/bin/true").status().unwrap();
            child.try_wait().unwrap()
        },
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{status}: {err}");
    assert!(err.is_empty(), "nothing on stderr: {err}");
}

/// A peer that is neither root nor in the group is refused by the collector itself (the socket
/// is opened to everyone here so that the file mode is not what stops it); a group member is not.
#[test]
fn only_root_and_the_socket_group_may_read_the_stream() {
    if !require_root("peer_auth") {
        return;
    }
    let gid = sec_tracker_testkit::socket_group_gid();

    let d = Daemon::start(&collectord_bin(), PROCESS_ONLY);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&d.socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // A copy of the CLI that the unprivileged user can execute wherever the checkout lives.
    let ctl_copy = d.dir.path().join("sec-trackerctl");
    std::fs::copy(CTL, &ctl_copy).unwrap();
    std::fs::set_permissions(&ctl_copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sock = d.socket.to_str().unwrap();

    let as_nobody = |groups: &str| {
        run(Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", groups])
            .arg(&ctl_copy)
            .args(["--socket", sock, "status"]))
    };
    let (code, out, err) = as_nobody("--clear-groups");
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        err.contains("not authorised to read sec-tracker events"),
        "{err}"
    );
    wait_for(
        "the refusal in collectord's log",
        Duration::from_secs(5),
        || {
            d.log_text()
                .contains("refused a connection to collectord's socket")
                .then_some(())
        },
    );

    let (code, out, err) = as_nobody(&format!("--groups={gid}"));
    assert_eq!(
        code,
        Some(0),
        "a member of sec-tracker is allowed: {out}{err}"
    );
    assert!(out.contains("collectord: running"));
}

/// rsyslog must be running for auth lines to reach /var/log/auth.log (.ci/run starts it).
fn rsyslog_running() -> bool {
    let running = Command::new("pgrep")
        .args(["-x", "rsyslogd"])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !running {
        let msg = "rsyslogd is not running; .ci/run starts it";
        if std::env::var_os(sec_tracker_testkit::REQUIRE_ALL_ENV).is_some() {
            panic!("{msg}");
        }
        eprintln!("SKIPPED {msg}");
    }
    running
}

/// Waits until lines for all three types have arrived, provoking each until it does.
fn see_file_auth_network(
    rx: &mpsc::Receiver<String>,
    watched: &Path,
    tag: &str,
    json: bool,
) -> Vec<String> {
    let mut lines = Vec::new();
    let kinds = ["file", "auth", "network"];
    // File and auth events carry the tag; a listener's event names this process instead.
    let me = if json {
        format!("\"pid\":{}", std::process::id())
    } else {
        format!("PID: {}", std::process::id())
    };
    let has = |lines: &[String], kind: &str| {
        lines.iter().any(|l| {
            let ours = if kind == "network" {
                l.contains(&me)
            } else {
                l.contains(tag)
            };
            ours && if json {
                l.contains(&format!("\"type\":\"{kind}\""))
            } else {
                l.starts_with(&format!("{kind}|"))
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut listeners = Vec::new();
    let mut block = String::new();
    while !kinds.iter().all(|k| has(&lines, k)) {
        assert!(
            std::time::Instant::now() < deadline,
            "not all of {kinds:?} seen: {lines:#?}"
        );
        std::fs::write(watched.join(format!("{tag}-{}", lines.len())), "x").unwrap();
        Command::new("logger")
            .args([
                "-t",
                "sshd",
                "-p",
                "auth.info",
                &format!("Invalid user {tag} from 192.0.2.7 port 4242"),
            ])
            .status()
            .unwrap();
        listeners.push(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
            if json {
                lines.push(line);
                continue;
            }
            // Human blocks: remember the Type, attach it to the Message line.
            if let Some(t) = line.strip_prefix("Type: ") {
                block = t.to_owned();
            } else if line.starts_with("Message: ") || line.starts_with("Details: ") {
                lines.push(format!("{block}|{line}"));
            }
        }
    }
    lines
}

#[test]
fn watch_shows_file_auth_and_network_events_human_and_json() {
    if !require_root("watch_types") || !rsyslog_running() {
        return;
    }
    let tree = tempfile::tempdir().unwrap();
    let config = format!(
        r#"{{"agent": {{"state_dir": "@STATE@"}}, "monitoring": {{"process_monitor": false, "system_info": false,
            "scan_interval": "200ms", "watch_paths": ["{}"]}}}}"#,
        tree.path().display()
    );
    let d = Daemon::start(&collectord_bin(), &config);
    for json in [true, false] {
        let mut args = vec![
            "--socket",
            d.socket.to_str().unwrap(),
            "watch",
            "--type",
            "file,auth,network",
            "--no-color",
        ];
        if json {
            args.push("--json");
        }
        let mut child = Killed(
            ctl(&args)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let rx = lines_of(&mut child.0);
        let tag = tag(if json { "json" } else { "human" });
        let lines = see_file_auth_network(&rx, tree.path(), &tag, json);
        if json {
            for l in &lines {
                let v: Value = serde_json::from_str(l).unwrap();
                assert!(
                    ["file", "auth", "network", "gap"].contains(&v["type"].as_str().unwrap()),
                    "{l}"
                );
            }
            let auth = lines
                .iter()
                .find(|l| l.contains("\"type\":\"auth\"") && l.contains(&tag))
                .unwrap();
            let v: Value = serde_json::from_str(auth).unwrap();
            assert_eq!(v["details"]["action"], "ssh_invalid_user");
            assert_eq!(v["details"]["source_address"], "192.0.2.7");
            assert_eq!(v["severity"], "WARNING");
        } else {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("file|Message: File created: ") && l.contains(&tag)),
                "{lines:#?}"
            );
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("network|Message: New listening port: tcp 127.0.0.1:")),
                "{lines:#?}"
            );
        }
    }
}

/// `--user nobody` lets through nobody's processes and not root's; the human output shows who
/// started a process on one line, ending with this test.
#[test]
fn watch_filters_by_user_and_shows_the_lineage() {
    if !require_root("watch_filters") {
        return;
    }
    let d = Daemon::start(&collectord_bin(), PROCESS_ONLY);
    let socket = d.socket.to_str().unwrap();
    let mut filtered = Killed(
        ctl(&["--socket", socket, "watch", "--json", "--user", "nobody"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let rx = lines_of(&mut filtered.0);
    let (as_root, as_nobody) = (tag("root"), tag("nobody"));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut lines = Vec::new();
    'seen: loop {
        assert!(
            std::time::Instant::now() < deadline,
            "nobody's process never shown: {lines:?}"
        );
        Command::new("/bin/sh")
            .args(["-c", "sleep 0.05", &as_root])
            .status()
            .unwrap();
        sec_tracker_testkit::as_nobody(std::path::Path::new("/bin/sh"), None)
            .args(["-c", "sleep 0.05", &as_nobody])
            .status()
            .unwrap();
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            let seen = line.contains(&as_nobody);
            lines.push(line);
            if seen {
                break 'seen;
            }
        }
    }
    assert!(
        !lines.iter().any(|l| l.contains(&as_root)),
        "a root process passed --user nobody: {lines:?}"
    );
    let v: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(v["details"]["user"], "nobody");
    assert_eq!(v["details"]["entity_id"].as_str().map(str::len), Some(32));

    let mut human = Killed(
        ctl(&[
            "--socket",
            socket,
            "watch",
            "--no-color",
            "--type",
            "process",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let rx = lines_of(&mut human.0);
    let t = tag("lineage");
    spawn_until_seen(&rx, &t);
    let lineage = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("a Lineage line");
        if line.starts_with("Lineage: ") || line.starts_with("-----") {
            break line;
        }
    };
    assert!(
        lineage.starts_with("Lineage: sh(")
            && lineage.contains(&format!("({}) ← ", std::process::id())),
        "{lineage}"
    );
}

/// An operator's rule file: listed with the built-in ones, tried on recorded events, and a broken
/// one named by config-check with its file, rule and field.
#[test]
fn rules_list_test_and_check_an_operators_rule_file() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.d");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("50-local.json"),
        r#"{"rules": [{"id": "curl-from-web-server", "title": "curl run by the web server",
                       "description": "d", "severity": "warning", "mitre": ["T1105"],
                       "match": {"type": "process", "action": "exec", "process.name": "curl",
                                 "process.ancestors.name": ["nginx"]}}],
            "overrides": [{"id": "etc-changed", "enabled": false}]}"#,
    )
    .unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"monitoring": {{"rules_dir": "{}"}}}}"#,
            rules.display()
        ),
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let (code, out, err) = run(&mut ctl(&["--config", cfg, "rules", "list"]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("exec-from-writable-dir") && out.contains("CRITICAL"),
        "{out}"
    );
    assert!(
        out.contains("curl-from-web-server") && out.contains("50-local.json"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("etc-changed") && l.ends_with("(disabled)")),
        "{out}"
    );
    // Recorded events, as watch --json writes them.
    let recorded = dir.path().join("day.jsonl");
    std::fs::write(
        &recorded,
        [
            r#"{"seq":1,"type":"process","severity":"INFO","message":"Process started: curl (PID: 9)","details":{"action":"exec","name":"curl","exe":"/usr/bin/curl","ancestors":[{"pid":8,"name":"sh"},{"pid":7,"name":"nginx"}]}}"#,
            r#"{"seq":2,"type":"process","severity":"INFO","message":"Process started: x (PID: 10)","details":{"action":"exec","name":"x","exe":"/tmp/x"}}"#,
            r#"{"seq":3,"type":"file","severity":"INFO","message":"File modified: /etc/hosts","details":{"action":"modified","path":"/etc/hosts","old_path":"","mode":"644","mode_before":"644"}}"#,
            r#"{"type":"gap","missed":3}"#,
            "not json",
        ]
        .join("\n"),
    )
    .unwrap();
    let (code, out, err) = run(&mut ctl(&[
        "--config",
        cfg,
        "rules",
        "test",
        recorded.to_str().unwrap(),
    ]));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("line 1: WARNING curl-from-web-server"),
        "{out}"
    );
    assert!(
        out.contains("line 2: CRITICAL exec-from-writable-dir"),
        "{out}"
    );
    assert!(!out.contains("line 3:"), "etc-changed is disabled: {out}");
    assert!(
        out.contains("3 events, 2 would fire a rule; 1 lines were not JSON"),
        "{out}"
    );
    assert!(err.contains("line 5: not JSON"), "{err}");
    // A broken rule file fails config-check, named.
    std::fs::write(
        rules.join("60-bad.json"),
        r#"{"rules": [{"id": "x", "title": "t", "severity": "high", "match": {"process.nme": "sh"}}]}"#,
    )
    .unwrap();
    let (code, _, err) = run(&mut ctl(&["config-check", "--config", cfg]));
    assert_eq!(code, Some(1));
    assert!(
        err.contains("60-bad.json: rule x: severity: needed"),
        "{err}"
    );
    assert!(
        err.contains(
            r#"60-bad.json: rule x: match.process.nme: unknown field; did you mean "process.name"?"#
        ),
        "{err}"
    );
}

/// `config-check | grep -q …`: the reader goes away after its line; the check still exits with
/// its verdict, without a panic on the closed pipe.
#[test]
fn config_check_into_a_closed_pipe_keeps_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(&config, r#"{"monitoring": {"scan_interval": "5s"}}"#).unwrap();
    let mut child = ctl(&["config-check", "--config", config.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the check writes anything (it reads and checks its files first).
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {err}", out.status);
    assert!(!err.contains("panicked"), "{err}");
}

/// Operators of the agent this one replaces type its single-dash forms: each is taken as it is.
#[test]
fn the_seeds_single_dash_forms_work_as_they_are() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"agent": {"collector_socket": "/nonexistent/collector.sock"}}"#,
    )
    .unwrap();
    let config = config.to_str().unwrap();

    let (code, out, err) = run(&mut ctl(&[
        "-local", "-oneshot", "-json", "-config", config,
    ]));
    assert_eq!(code, Some(0), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert!(v["hostname"].is_string() && v["cpu_info"]["cores"].as_u64() >= Some(1));

    let (code, out, _) = run(&mut ctl(&["-local", "-oneshot", "-config", config]));
    assert_eq!(code, Some(0));
    assert!(out.contains("== SYSTEM INFORMATION =="), "{out}");

    let (code, out, _) = run(&mut ctl(&["-version"]));
    assert_eq!(
        (code, out.trim()),
        (
            Some(0),
            format!("sec-trackerctl {}", env!("CARGO_PKG_VERSION")).as_str()
        )
    );
    let (code, out, _) = run(&mut ctl(&["-config-check", &format!("-config={config}")]));
    assert_eq!(code, Some(0), "{out}");
    let (code, out, _) = run(&mut ctl(&["-help"]));
    assert_eq!(code, Some(0));
    assert!(out.contains("Seed equivalents"), "{out}");

    // Without -local the seed ran its server mode: shipperd's job now, and it says so.
    let (code, _, err) = run(&mut ctl(&["-json"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("shipperd"), "{err}");
}
