//! One module per subcommand.

pub(crate) mod config_check;
pub(crate) mod docs;
pub(crate) mod metrics;
pub(crate) mod rules;
pub(crate) mod snapshot;
pub(crate) mod status;
pub(crate) mod test_connection;
pub(crate) mod watch;

use std::io::IsTerminal;
use std::path::PathBuf;

use sec_tracker_proto::Config;

use crate::cli::OutputArgs;
use crate::render::Style;

/// What every command gets: the loaded config and where to find collectord.
pub(crate) struct Context {
    pub config: Config,
    pub config_path: Option<PathBuf>,
    pub socket: PathBuf,
    pub shipper_socket: PathBuf,
}

impl Context {
    /// Flags win over the config's `local_output`; colour also needs a terminal and no NO_COLOR.
    pub(crate) fn style(&self, o: &OutputArgs) -> Style {
        let lo = &self.config.local_output;
        let no_color_env = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let force = std::env::var_os("CLICOLOR_FORCE").is_some_and(|v| !v.is_empty() && v != "0");
        Style {
            json: o.json || lo.json_format,
            compact: o.compact || lo.compact_output,
            color: !o.no_color
                && lo.show_colors
                && !no_color_env
                && (force || std::io::stdout().is_terminal()),
            show_timestamp: lo.show_timestamp,
        }
    }
}
