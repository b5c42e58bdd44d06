//! Client connections: the `connections` table (bounds and timeouts, enforced by Stride's
//! patch of Rocket's accept loop, `vendor/rocket/STRIDE-PATCH.md`), checked before the start,
//! and the process's open-file limit made to fit the connection bound.

use rocket::connections::Connections;
use rocket::figment::Figment;

/// Open files Stride keeps for everything that is not a client connection: the database pool
/// (a SQLite connection holds up to three files), templates, logs, the runtime's own.
pub const RESERVED_FILES: u64 = 256;

/// What the start settled on, for the launch line.
#[derive(Debug, Clone)]
pub struct Settled {
    pub connections: Connections,
    /// The soft `RLIMIT_NOFILE` after raising it.
    pub open_files: u64,
    /// Why the limit could not be raised, when it could not.
    pub warning: Option<String>,
}

/// Checks Rocket's own keys and the `connections` table, raises the soft open-file limit as
/// far as the connection bound needs (up to the hard limit), and returns the figment with the
/// defaults that depend on the machine and the deployment filled in:
/// - `connections.max` unset: 1024, or fewer when the open-file limit cannot hold that many
///   plus [`RESERVED_FILES`]; set higher than the limit allows, the start stops;
/// - `connections.per_client` unset: 32, or 0 (no bound) when `ip_header` is set, since
///   behind a reverse proxy every connection comes from the proxy's address.
///
/// An error names the key and the value at fault.
pub fn settle(figment: Figment) -> Result<(Figment, Settled), String> {
    // Rocket's own keys (`keep_alive`, `workers`, `limits`, …): Rocket would otherwise panic.
    rocket::Config::try_from(&figment).map_err(|e| e.to_string())?;
    let mut figment = figment;
    let mut connections = Connections::from_figment(&figment)?;
    if figment.find_value("connections.per_client").is_err() && behind_proxy(&figment) {
        connections.per_client = 0;
        figment = figment.merge(("connections.per_client", 0));
    }
    let wanted = (connections.max as u64).saturating_add(RESERVED_FILES);
    let (open_files, warning) = open_file_limit(wanted);
    let room = open_files.saturating_sub(RESERVED_FILES);
    if (connections.max as u64) > room {
        if figment.find_value("connections.max").is_ok() || room == 0 {
            return Err(format!(
                "connections.max = {}: this process may open {open_files} files (RLIMIT_NOFILE, \
                 its hard limit included), {RESERVED_FILES} of which Stride keeps for the \
                 database and its own files; lower connections.max to at most {room}, or raise \
                 the limit (ulimit -n, systemd's LimitNOFILE=)",
                connections.max
            ));
        }
        connections.max = usize::try_from(room).unwrap_or(usize::MAX);
        figment = figment.merge(("connections.max", connections.max));
    }
    Ok((
        figment,
        Settled {
            connections,
            open_files,
            warning,
        },
    ))
}

/// `ip_header` names a header (Stride's default turns it off with `false`).
fn behind_proxy(figment: &Figment) -> bool {
    figment
        .find_value("ip_header")
        .ok()
        .is_some_and(|v| v.as_str().is_some_and(|s| !s.is_empty()))
}

/// The soft open-file limit, raised towards `wanted` (never past the hard limit). When the
/// limit cannot be read, `wanted`: nothing is known to refuse.
fn open_file_limit(wanted: u64) -> (u64, Option<String>) {
    match rlimit::increase_nofile_limit(wanted) {
        Ok(limit) => (limit, None),
        Err(e) => {
            let soft = rlimit::Resource::NOFILE.get_soft().unwrap_or(wanted);
            (
                soft,
                Some(format!("could not raise the open-file limit: {e}")),
            )
        }
    }
}
