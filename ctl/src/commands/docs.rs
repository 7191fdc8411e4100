//! `completions` and `manpages`: the shell completion scripts and the man pages, generated from
//! the very clap definitions the three programs parse, so they cannot drift from `--help`.
//! install.sh and the .deb put them in place.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::CommandFactory;

use crate::cli::Cli;

/// The completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sec-trackerctl", &mut script);
    if shell == clap_complete::Shell::Bash {
        script = mend_bash(&script).into_bytes();
    }
    match std::io::stdout().write_all(&script) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sec-trackerctl: {e}");
            ExitCode::FAILURE
        }
    }
}

/// clap_complete's bash script names a subcommand's state one way where it walks the words
/// (`sec__trackerctl__subcmd__watch`) and another where it offers the options
/// (`sec__subcmd__trackerctl__subcmd__watch`) when the program's name has a hyphen
/// (clap-rs/clap#6421), so nothing after a subcommand completed. One spelling, the walk's.
fn mend_bash(script: &[u8]) -> String {
    String::from_utf8_lossy(script).replace("sec__subcmd__trackerctl", "sec__trackerctl")
}

/// sec-trackerctl(1) and a page per subcommand into `dir/man1`, collectord(8) and shipperd(8)
/// into `dir/man8`; the names of the written files on stdout.
pub(crate) fn manpages(dir: &Path) -> ExitCode {
    match write_manpages(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sec-trackerctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn write_manpages(dir: &Path) -> anyhow::Result<()> {
    let man1 = dir.join("man1");
    let man8 = dir.join("man8");
    for d in [&man1, &man8] {
        std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
    }
    clap_mangen::generate_to(Cli::command(), &man1)
        .with_context(|| format!("cannot write the pages into {}", man1.display()))?;
    for cmd in [
        collectord::cli::Args::command(),
        shipperd::cli::Args::command(),
    ] {
        let path = man8.join(format!("{}.8", cmd.get_name()));
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).section("8").render(&mut page)?;
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    for d in [&man1, &man8] {
        let mut names: Vec<_> = std::fs::read_dir(d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for n in names {
            println!("{}", n.display());
        }
    }
    Ok(())
}
