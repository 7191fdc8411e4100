//! `pam_unix(SERVICE:TYPE): …` lines, whatever program logged them: sessions opened and closed,
//! authentication failures, password changes.

use super::{name_uid, tty_name, AuthKind, AuthRecord};

/// After `pam_unix(`: `SERVICE:TYPE): text`.
pub(super) fn parse_pam(rest: &str) -> Option<AuthRecord> {
    let (facility, text) = rest.split_once("):")?;
    let (service, kind) = facility.split_once(':')?;
    let text = text.trim();
    match kind {
        "session" => {
            if let Some(rest) = text.strip_prefix("session opened for user ") {
                // `alice(uid=1000) by (uid=0)` (Linux-PAM 1.4+), `alice by (uid=0)` (older),
                // `root(uid=0) by alice(uid=1000)` (su, sudo).
                let (who, by) = match rest.rsplit_once(" by ") {
                    Some((who, by)) => (who, by),
                    None => (rest, ""),
                };
                let (user, _) = name_uid(who);
                let (by_name, by_uid) = name_uid(by);
                let mut r = match service {
                    "sshd" => AuthRecord::new(AuthKind::SshSessionOpened),
                    "login" => AuthRecord::new(AuthKind::ConsoleLogin),
                    "su" | "su-l" => {
                        let mut r = AuthRecord::new(AuthKind::SuSuccess);
                        user.clone_into(&mut r.target_user);
                        by_name.clone_into(&mut r.user);
                        if by_name.is_empty() {
                            if let Some(uid) = by_uid {
                                r.detail = format!("by uid {uid}");
                            }
                        }
                        return Some(r);
                    }
                    _ => return None,
                };
                user.clone_into(&mut r.user);
                return Some(r);
            }
            if let Some(user) = text.strip_prefix("session closed for user ") {
                if service == "sshd" {
                    let mut r = AuthRecord::new(AuthKind::SshSessionClosed);
                    user.trim().clone_into(&mut r.user);
                    r.detail = "session closed".to_owned();
                    return Some(r);
                }
            }
            None
        }
        "auth" => {
            // `authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root`
            let fields = text.strip_prefix("authentication failure;")?;
            let mut kv = PamFailure::default();
            for tok in fields.split_whitespace() {
                let Some((k, v)) = tok.split_once('=') else {
                    continue;
                };
                match k {
                    "logname" => kv.logname = v,
                    "tty" => kv.tty = v,
                    "ruser" => kv.ruser = v,
                    "rhost" => kv.rhost = v,
                    "user" => kv.user = v,
                    _ => {}
                }
            }
            let requester = if kv.ruser.is_empty() {
                kv.logname
            } else {
                kv.ruser
            };
            let mut r = match service {
                "sudo" | "sudo-i" => {
                    let mut r = AuthRecord::new(AuthKind::SudoAuthFailure);
                    r.user = if kv.user.is_empty() {
                        requester
                    } else {
                        kv.user
                    }
                    .to_owned();
                    r
                }
                "su" | "su-l" => {
                    let mut r = AuthRecord::new(AuthKind::SuFailure);
                    requester.clone_into(&mut r.user);
                    kv.user.clone_into(&mut r.target_user);
                    r
                }
                "login" => {
                    let mut r = AuthRecord::new(AuthKind::ConsoleLoginFailure);
                    kv.user.clone_into(&mut r.user);
                    kv.rhost.clone_into(&mut r.source_address);
                    r
                }
                // sshd: its own `Failed …` line follows with method and port; others: not ours.
                _ => return None,
            };
            r.tty = tty_name(kv.tty);
            r.detail = "pam_unix authentication failure".to_owned();
            Some(r)
        }
        "chauthtok" => {
            let user = text.strip_prefix("password changed for ")?;
            let mut r = AuthRecord::new(AuthKind::PasswordChanged);
            user.trim().clone_into(&mut r.user);
            r.detail = format!("via {service}");
            Some(r)
        }
        _ => None,
    }
}

#[derive(Default)]
struct PamFailure<'a> {
    logname: &'a str,
    tty: &'a str,
    ruser: &'a str,
    rhost: &'a str,
    user: &'a str,
}
