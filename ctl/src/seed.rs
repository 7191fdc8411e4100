//! The seed's command line: operators of the agent this one replaces type `sec-tracker -local
//! -json`, `-oneshot`, `-config FILE`, `-config-check`, `-test-connection`, `-version`, `-help`.
//! Those single-dash forms are taken as they are and rewritten into today's subcommands before
//! clap sees them; `--help` keeps describing the modern form.

use std::ffi::{OsStr, OsString};

/// What the seed's flags ask for, once read.
#[derive(Debug, Default, PartialEq, Eq)]
struct Seed {
    local: bool,
    oneshot: bool,
    json: bool,
    config: Option<OsString>,
    config_check: bool,
    test_connection: bool,
    version: bool,
    help: bool,
}

/// Today's arguments for `args` (the program name first), or `args` unchanged when they are not
/// the seed's form (none of its flags, or anything else beside them). An error names what the
/// seed's form cannot mean today.
pub(crate) fn modern_args(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let Some((program, rest)) = args.split_first() else {
        return Ok(args);
    };
    let Some(seed) = parse(rest) else {
        return Ok(args);
    };
    let mut out = vec![program.clone()];
    if let Some(c) = &seed.config {
        out.push("--config".into());
        out.push(c.clone());
    }
    let command: &[&str] = if seed.help {
        &["--help"]
    } else if seed.version {
        &["version"]
    } else if seed.config_check {
        &["config-check"]
    } else if seed.test_connection {
        &["test-connection"]
    } else if seed.oneshot {
        &["snapshot"]
    } else if seed.local {
        &["watch"]
    } else {
        // The seed without -local ran its own server mode: here that is shipperd's job.
        return Err(
            "without -local, the seed's sec-tracker shipped events to the server: that is \
            shipperd's job now (systemctl start sec-tracker-collectord sec-tracker-shipperd); \
            for local output use -local or `sec-trackerctl watch`"
                .into(),
        );
    };
    out.extend(command.iter().map(OsString::from));
    if seed.json && (seed.oneshot || seed.local) {
        out.push("--json".into());
    }
    Ok(out)
}

/// The seed's flags in `args`, or None when something else is there (today's form).
fn parse(args: &[OsString]) -> Option<Seed> {
    let mut seed = Seed::default();
    let mut it = args.iter();
    let mut any = false;
    while let Some(a) = it.next() {
        let a = a.to_str()?;
        // The seed's flag package took `-flag` and `--flag`, and `-config=FILE`; only the
        // single-dash forms are the seed's alone (`--config` and `--json` are today's too).
        let flag = a.strip_prefix('-').filter(|f| !f.starts_with('-'))?;
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(OsStr::new(v).to_owned())),
            None => (flag, None),
        };
        match name {
            "local" => seed.local = true,
            "oneshot" => seed.oneshot = true,
            "json" => seed.json = true,
            "config-check" => seed.config_check = true,
            "test-connection" => seed.test_connection = true,
            "version" => seed.version = true,
            "help" => seed.help = true,
            "config" => seed.config = Some(value.or_else(|| it.next().cloned())?),
            _ => return None,
        }
        any = true;
    }
    any.then_some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn modern(args: &str) -> Result<String, String> {
        let argv: Vec<OsString> = std::iter::once("sec-tracker")
            .chain(args.split_whitespace())
            .map(OsString::from)
            .collect();
        modern_args(argv).map(|v| {
            v[1..]
                .iter()
                .map(|a| a.to_str().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    #[test]
    fn each_seed_form_maps_to_todays_command() {
        for (seed, now) in [
            ("-local", "watch"),
            ("-local -json", "watch --json"),
            ("-json -local", "watch --json"),
            ("-local -oneshot", "snapshot"),
            ("-local -oneshot -json", "snapshot --json"),
            ("-oneshot", "snapshot"),
            ("-local -config /etc/x.json", "--config /etc/x.json watch"),
            ("-config=/etc/x.json -local", "--config /etc/x.json watch"),
            (
                "-config-check -config /etc/x.json",
                "--config /etc/x.json config-check",
            ),
            ("-config-check", "config-check"),
            (
                "-test-connection -config c.json",
                "--config c.json test-connection",
            ),
            ("-version", "version"),
            ("-help", "--help"),
        ] {
            assert_eq!(modern(seed).as_deref(), Ok(now), "{seed}");
        }
    }

    #[test]
    fn todays_form_is_left_alone() {
        for args in [
            "watch --json",
            "--config c.json snapshot",
            "--version",
            "-h",
            "rules list",
            "",
            // A seed flag beside anything else is not the seed's form: clap says what is wrong.
            "-local --type process",
            "-local watch",
            "-config",
        ] {
            assert_eq!(modern(args).as_deref(), Ok(args), "{args}");
        }
    }

    #[test]
    fn the_seeds_server_mode_is_explained() {
        let e = modern("-json").unwrap_err();
        assert!(e.contains("shipperd"), "{e}");
        assert!(modern("-config c.json").is_err());
    }
}
