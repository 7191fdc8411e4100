//! Golden cases (one input and its expected record per file pair under `testdata/`), edge
//! cases, and property tests: the parsers never panic and never invent what is not in the line.

use super::*;
use proptest::prelude::*;
use std::sync::OnceLock;

/// One directory per program; each case is `NNN-action.log` (one line, as logged) and
/// `NNN-action.json` (the record expected from it, `null` for a line that is not an auth event).
const GOLDEN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/monitors/auth/testdata");

fn one(line: &str) -> AuthRecord {
    parse_line(line.as_bytes())
        .unwrap_or_else(|e| panic!("{line}: {e}"))
        .unwrap_or_else(|| panic!("{line}: not an auth event"))
}

/// The golden representation: fields that are set, in a fixed order, plus `message`.
fn golden_json(r: &AuthRecord) -> String {
    use serde_json::Value;
    let mut fields: Vec<(&str, Value)> = vec![
        ("action", r.action().into()),
        ("program", r.program.as_str().into()),
    ];
    if r.pid != 0 {
        fields.push(("pid", r.pid.into()));
    }
    for (k, v) in [
        ("timestamp", &r.timestamp),
        ("host", &r.host),
        ("user", &r.user),
        ("target_user", &r.target_user),
        ("source_address", &r.source_address),
    ] {
        if !v.is_empty() {
            fields.push((k, v.as_str().into()));
        }
    }
    if r.source_port != 0 {
        fields.push(("source_port", r.source_port.into()));
    }
    for (k, v) in [
        ("method", &r.method),
        ("tty", &r.tty),
        ("cwd", &r.cwd),
        ("command", &r.command),
        ("group", &r.group),
        ("detail", &r.detail),
    ] {
        if !v.is_empty() {
            fields.push((k, v.as_str().into()));
        }
    }
    fields.push(("success", r.success.into()));
    if r.invalid_user {
        fields.push(("invalid_user", true.into()));
    }
    if r.occurrences != 1 {
        fields.push(("occurrences", r.occurrences.into()));
    }
    if r.ambiguous {
        fields.push(("ambiguous", true.into()));
    }
    fields.push(("message", r.describe().into()));
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{}", Value::from(*k), v))
        .collect();
    format!("{{{}}}", body.join(","))
}

fn golden_result(line: &[u8]) -> String {
    match parse_line(line) {
        Ok(Some(r)) => golden_json(&r),
        Ok(None) => "null".to_owned(),
        Err(e) => format!("\"error: {e}\""),
    }
}

/// Every case: (its `.log` path, the line).
fn golden_cases() -> &'static Vec<(std::path::PathBuf, Vec<u8>)> {
    static CASES: OnceLock<Vec<(std::path::PathBuf, Vec<u8>)>> = OnceLock::new();
    CASES.get_or_init(|| {
        let mut cases = Vec::new();
        for dir in std::fs::read_dir(GOLDEN_DIR).expect("read testdata") {
            let dir = dir.expect("testdata entry").path();
            if !dir.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dir).expect("read a program's cases") {
                let path = f.expect("case").path();
                if path.extension().is_some_and(|e| e == "log") {
                    let raw = std::fs::read(&path).expect("read case");
                    let line = raw.strip_suffix(b"\n").unwrap_or(&raw).to_vec();
                    cases.push((path, line));
                }
            }
        }
        cases.sort();
        cases
    })
}

#[test]
fn golden() {
    let cases = golden_cases();
    assert!(cases.len() > 100, "only {} golden cases found", cases.len());
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut bad = Vec::new();
    for (path, line) in cases {
        let got = golden_result(line);
        let expected_path = path.with_extension("json");
        if update {
            std::fs::write(&expected_path, format!("{got}\n")).expect("write expected file");
            continue;
        }
        let want = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        if want.trim_end() != got {
            bad.push(format!(
                "{}: {}\n  want {}\n  got  {got}",
                path.display(),
                String::from_utf8_lossy(line),
                want.trim_end()
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} golden mismatches (UPDATE_GOLDEN=1 rewrites the expected files):\n{}",
        bad.len(),
        bad.join("\n")
    );
    // The golden cases cover every kind.
    let kinds: std::collections::HashSet<AuthKind> = cases
        .iter()
        .filter_map(|(_, l)| parse_line(l).ok().flatten())
        .map(|r| r.kind)
        .collect();
    for k in AuthKind::ALL {
        assert!(kinds.contains(&k), "golden cases have no {k:?} line");
    }
}

#[test]
fn headers() {
    let h =
        split_syslog("Nov  6 04:09:18 web-1 sshd[812]: Server listening on :: port 22.").unwrap();
    assert_eq!(
        h,
        SyslogLine {
            timestamp: "Nov  6 04:09:18",
            host: "web-1",
            program: "sshd",
            pid: Some(812),
            message: "Server listening on :: port 22."
        }
    );
    let h =
        split_syslog("2026-11-26T14:09:18.123456+00:00 db sudo:    alice : TTY=pts/0\n").unwrap();
    assert_eq!(h.timestamp, "2026-11-26T14:09:18.123456+00:00");
    assert_eq!(h.program, "sudo");
    assert_eq!(h.pid, None);
    assert_eq!(h.message, "   alice : TTY=pts/0");
    let h = split_syslog("2024-05-01T10:00:00Z h gdm-password][2265]: x").unwrap();
    assert_eq!((h.program, h.pid), ("gdm-password]", Some(2265)));
    assert_eq!(split_syslog(""), Err(ParseError::Empty));
    assert_eq!(split_syslog(" \r\n"), Err(ParseError::Empty));
    for bad in [
        "hello world",
        "Nov 26 14:09:18",
        "Nov 26 14:09:18 host",
        "Nov 26 14:09:18 host no tag here",
        "Foo 26 14:09:18 host sshd[1]: x",
        "2026-11-26 14:09:18 host sshd[1]: x",
        "Nov 26 14:09:18 host : empty tag",
        "Nov 26 14:09:18 host [12]: empty program",
    ] {
        assert_eq!(split_syslog(bad), Err(ParseError::NotSyslog), "{bad}");
    }
}

#[test]
fn ssh_user_names_with_spaces_and_spoofing() {
    let r = one("Nov 26 14:09:18 h sshd[1]: Failed password for invalid user a from 10.0.0.1 port 1 ssh2 from 198.51.100.7 port 40022 ssh2");
    assert_eq!(r.user, "a from 10.0.0.1 port 1 ssh2");
    assert_eq!(r.source_address, "198.51.100.7");
    assert_eq!(r.source_port, 40022);
    let r = one("Nov 26 14:09:18 h sshd[1]: Invalid user  from 198.51.100.7 port 22");
    assert_eq!((r.user.as_str(), r.source_port), ("", 22));
    let r = one(
        "Nov 26 14:09:18 h sshd[1]: Failed none for invalid user  from 198.51.100.7 port 22 ssh2",
    );
    assert_eq!((r.user.as_str(), r.invalid_user), ("", true));
}

#[test]
fn journald_messages() {
    let r = parse_message(
        "sshd-session",
        Some(4242),
        "Accepted publickey for alice from 2001:db8::5 port 52144 ssh2: ED25519 SHA256:abc",
    )
    .unwrap();
    assert_eq!(r.kind, AuthKind::SshAccepted);
    assert_eq!((r.pid, r.timestamp.as_str()), (4242, ""));
    assert_eq!(r.detail, "ED25519 SHA256:abc");
    assert_eq!(
        r.describe(),
        "SSH login accepted: alice from 2001:db8::5 port 52144 (publickey)"
    );
    let r = parse_message(
        "/usr/bin/sudo",
        None,
        "alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
    )
    .unwrap();
    assert_eq!(r.program, "sudo");
    assert_eq!(r.describe(), "sudo: alice ran /usr/bin/id as root on pts/0");
    assert!(parse_message("systemd-logind", Some(1), "New session 4 of user alice.").is_none());
    assert!(parse_message("sshd", None, "").is_none());
}

#[test]
fn describe_examples() {
    let r = one("Nov 26 14:09:18 h sudo:      bob : user NOT in sudoers ; TTY=pts/0 ; PWD=/home/bob ; USER=root ; COMMAND=/usr/bin/id");
    assert_eq!(
        r.describe(),
        "sudo: bob is not in sudoers (tried /usr/bin/id as root)"
    );
    let r = one("Nov 26 14:09:18 h sshd[9]: Failed password for invalid user admin from 198.51.100.7 port 40022 ssh2");
    assert_eq!(
        r.describe(),
        "Failed SSH password for invalid user admin from 198.51.100.7 port 40022"
    );
    for k in AuthKind::ALL {
        let r = AuthRecord::new(k);
        assert!(!r.describe().is_empty());
        assert!(r
            .action()
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_'));
    }
}

/// A working directory named ` ; USER=nobody ; COMMAND=/usr/bin/id` cannot make a root command
/// look like one run as nobody; a command whose arguments repeat the fields cannot either.
#[test]
fn sudo_fields_repeated_in_pwd_or_command_cannot_change_the_target() {
    let r = one("Nov 26 14:09:18 h sudo: alice : TTY=pts/0 ; PWD=/tmp/x ; USER=nobody ; COMMAND=/usr/bin/id ; USER=root ; COMMAND=/bin/bash");
    assert_eq!(r.target_user, "root");
    assert_eq!(r.command, "/bin/bash");
    assert_eq!(r.cwd, "/tmp/x ; USER=nobody ; COMMAND=/usr/bin/id");
    assert!(r.ambiguous && r.detail.contains("ambiguous"), "{r:?}");
    let r = one("Nov 26 14:09:18 h sudo: alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/bin/echo a ; USER=nobody ; COMMAND=/bin/x");
    assert_eq!(r.target_user, "root", "the worse reading");
    assert!(r.ambiguous);
    // An ordinary line is not ambiguous, whatever its command holds.
    let r = one("Nov 26 14:09:18 h sudo: alice : TTY=pts/1 ; PWD=/srv ; USER=www-data ; COMMAND=/bin/sh -c a ; b");
    assert_eq!(
        (r.target_user.as_str(), r.command.as_str()),
        ("www-data", "/bin/sh -c a ; b")
    );
    assert!(!r.ambiguous);
}

#[test]
fn sudo_command_containing_separators() {
    let r = one("Nov 26 14:09:18 h sudo: alice : TTY=pts/1 ; PWD=/srv ; USER=root ; ENV=A=1 B=2 ; COMMAND=/bin/sh -c echo a ; echo b");
    assert_eq!(r.command, "/bin/sh -c echo a ; echo b");
    assert_eq!(r.detail, "ENV=A=1 B=2");
    assert_eq!((r.tty.as_str(), r.cwd.as_str()), ("pts/1", "/srv"));
}

#[test]
fn huge_line() {
    let mut line = b"Nov 26 14:09:18 host sshd[1]: Failed password for invalid user ".to_vec();
    line.extend(std::iter::repeat_n(b'a', 1 << 20));
    line.extend_from_slice(b" from 198.51.100.7 port 22 ssh2");
    let r = parse_line(&line).unwrap().unwrap();
    assert_eq!(r.user.len(), 1 << 20);
    assert_eq!(r.source_port, 22);
    // 1 MiB of " from " and of garbage, one line each.
    let mut line = b"Nov 26 14:09:18 host sshd[1]: Failed password for".to_vec();
    line.extend(std::iter::repeat_n(&b" from "[..], (1 << 20) / 6).flatten());
    assert_eq!(parse_line(&line), Ok(None));
    let garbage: Vec<u8> = (0..(1u64 << 20)).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = parse_line(&garbage);
    let mut sudo = b"Nov 26 14:09:18 host sudo: alice : ".to_vec();
    sudo.extend(std::iter::repeat_n(&b"TTY= ; "[..], (1 << 20) / 7).flatten());
    assert!(parse_line(&sudo).unwrap().is_some());
}

fn check_no_panic(line: &[u8]) {
    if let Ok(Some(r)) = parse_line(line) {
        assert!(!r.action().is_empty());
        let _ = r.describe();
        assert!(r.occurrences >= 1);
    }
    let text = String::from_utf8_lossy(line);
    let _ = parse_message("sshd", Some(1), &text);
    let _ = parse_message("sudo", None, &text);
}

const TOKENS: &[&str] = &[
    "Accepted",
    "Failed",
    "password",
    "publickey",
    "for",
    "invalid",
    "user",
    "from",
    "port",
    "ssh2",
    "ssh2:",
    "ssh2: RSA SHA256:x",
    "203.0.113.5",
    "::1",
    "22",
    "99999999999",
    "root",
    "alice",
    "Invalid",
    "User",
    "not allowed because",
    "Disconnected",
    "(to",
    "root)",
    "on",
    "pts/0",
    "/dev/tty1",
    "'/dev/tty1'",
    ":",
    " : ",
    " ; ",
    ";",
    "TTY=",
    "PWD=/",
    "USER=",
    "COMMAND=",
    "COMMAND=/usr/bin/id",
    "user NOT in sudoers",
    "3 incorrect password attempts",
    "pam_unix(su:session):",
    "pam_unix(sshd:auth):",
    "pam_unix(sudo:auth):",
    "pam_unix(login:session):",
    "pam_unix(passwd:chauthtok):",
    "authentication failure;",
    "session",
    "opened",
    "closed",
    "by",
    "(uid=0)",
    "alice(uid=1000)",
    "'",
    "`",
    "FAILED",
    "SU",
    "su",
    "Successful",
    "LOGIN",
    "ROOT",
    "ON",
    "BY",
    "FROM",
    "FOR",
    "(1)",
    ",",
    "=",
    "name=",
    "new",
    "group:",
    "user:",
    "group",
    "shadow",
    "added",
    "to",
    "removed",
    "delete",
    "change",
    "message repeated 3 times: [",
    "]",
    "[preauth]",
    "é",
    "\u{fffd}",
    "(",
    ")",
    "logname=",
    "ruser=alice",
    "rhost=",
    "password changed for",
    "is not in the sudoers file",
];
const PROGRAMS: &[&str] = &[
    "sshd[1]",
    "sshd-session[77]",
    "sudo",
    "su[5]",
    "login[3]",
    "useradd[9]",
    "usermod[9]",
    "userdel[9]",
    "groupadd[9]",
    "groupmod[9]",
    "groupdel[9]",
    "gpasswd[9]",
    "passwd[9]",
    "chage[9]",
    "chsh[9]",
    "chfn[9]",
    "cron[2]",
    "x",
];

fn mutate(base: &[u8], ops: &[(u8, prop::sample::Index, u8, usize)]) -> Vec<u8> {
    let mut v = base.to_vec();
    for (op, at, byte, len) in ops {
        let i = if v.is_empty() {
            0
        } else {
            at.index(v.len() + 1)
        };
        match op % 5 {
            0 => v.truncate(i),
            1 => v.insert(i.min(v.len()), *byte),
            2 => {
                if i < v.len() {
                    v[i] = *byte;
                }
            }
            3 => {
                let end = (i + len % 16).min(v.len());
                v.drain(i.min(end)..end);
            }
            _ => {
                let end = (i + len % 32).min(v.len());
                let chunk = v[i.min(end)..end].to_vec();
                let at = (i + len).min(v.len());
                v.splice(at..at, chunk);
            }
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn never_panics_on_random_bytes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        check_no_panic(&b);
        let mut with_header = b"Nov 26 14:09:18 host sshd[1]: ".to_vec();
        with_header.extend_from_slice(&b);
        check_no_panic(&with_header);
    }

    #[test]
    fn never_panics_on_mutated_golden_lines(
        which in any::<prop::sample::Index>(),
        ops in proptest::collection::vec((any::<u8>(), any::<prop::sample::Index>(), any::<u8>(), any::<usize>()), 1..8),
    ) {
        let cases = golden_cases();
        let base = &cases[which.index(cases.len())].1;
        check_no_panic(&mutate(base, &ops));
    }

    #[test]
    fn never_panics_on_token_soup(
        prog in prop::sample::select(PROGRAMS),
        iso in any::<bool>(),
        toks in proptest::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..24),
    ) {
        let mut line = String::from(if iso { "2026-11-26T14:09:18.1+00:00 h " } else { "Nov  6 14:09:18 h " });
        line.push_str(prog);
        line.push_str(": ");
        for (t, space) in toks {
            line.push_str(t);
            if space {
                line.push(' ');
            }
        }
        check_no_panic(line.as_bytes());
    }
}
