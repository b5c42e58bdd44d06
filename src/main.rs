use std::process::ExitCode;

use clap::{Parser, Subcommand};
use rocket_db_pools::Database as _;

/// Stride: an account server that speaks FitTrackee's API.
///
/// Configuration comes from Rocket.toml and ROCKET_* environment variables (see README.md).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply the database migrations, then serve (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Check the configuration (the kernel's keys and every module's section) and exit: 0 when
    /// it would start, 2 with the key at fault when it would not.
    CheckConfig,
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// List every account (username, email, admin, registration date), oldest first.
    List,
    /// Make an account, whatever the registration settings. Without --password-stdin the
    /// account gets a password no one knows and an email with a link to set one.
    Create {
        /// 3 to 12 letters, digits or underscores.
        username: String,
        email: String,
        /// Read the password from standard input (one line, or all of it).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete an account with everything of it (sessions, picture, reset links, queued
    /// emails). The only admin cannot be deleted.
    #[cfg(feature = "users")]
    Delete {
        /// The user's username (case-insensitive).
        username: String,
    },
    /// Grant instance admin rights to a user.
    SetAdmin {
        /// The user's username (case-insensitive).
        username: String,
    },
    /// Remove every second factor of a user (a lost phone): TOTP and recovery codes. Ends all
    /// the user's sessions and tells them by email.
    #[cfg(feature = "two_factor")]
    RemoveFactors {
        /// The user's username (case-insensitive).
        username: String,
    },
    /// Remove a user's admin rights. The only admin keeps theirs.
    #[cfg(feature = "users")]
    UnsetAdmin {
        /// The user's username (case-insensitive).
        username: String,
    },
}

#[rocket::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let figment = stride::figment();
    // Refuse a bad configuration up front, with the key at fault, before anything starts.
    if let Err(e) = stride::check_config(&figment) {
        eprintln!("stride: {e}");
        return ExitCode::from(2);
    }
    if let Err(e) = stride::logging::settings(&figment) {
        eprintln!("stride: invalid configuration: {e}");
        return ExitCode::from(2);
    }
    // Connection bounds and timeouts (and Rocket's own keys), with the open-file limit raised
    // to fit the connection bound.
    let (figment, settled) = match stride::connections::settle(figment) {
        Ok(settled) => settled,
        Err(e) => {
            eprintln!("stride: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(warning) = &settled.warning {
        eprintln!("stride: {warning}");
    }
    if matches!(cli.command, Some(Command::CheckConfig)) {
        eprintln!("stride: the configuration is valid");
        return ExitCode::SUCCESS;
    }
    match run(cli.command.unwrap_or(Command::Serve), figment, settled).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("stride: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(
    command: Command,
    figment: rocket::figment::Figment,
    settled: stride::connections::Settled,
) -> Result<(), String> {
    let figment = match command {
        Command::Serve => figment,
        // A one-shot command prints its own outcome, not the server's launch banner.
        _ => figment.merge(("log_level", "critical")),
    };
    let ids = kernel::RequestIds::default();
    stride::logging::init(&figment, ids.clone())?;
    let rocket = stride::build(figment).manage(ids);
    match command {
        Command::Serve => {
            // Whatever the log level, say where Stride listens.
            let (limits, open_files) = (settled.connections, settled.open_files);
            let announce = rocket::fairing::AdHoc::on_liftoff("announce", move |rocket| {
                Box::pin(async move {
                    let c = rocket.config();
                    let per_client = match limits.per_client {
                        0 => "no bound per client".to_owned(),
                        n => format!("{n} per client"),
                    };
                    eprintln!(
                        "stride {}: listening on http://{}:{} (at most {} connections, {per_client}; \
                         {} open files)",
                        env!("CARGO_PKG_VERSION"),
                        c.address,
                        c.port,
                        limits.max,
                        open_files
                    );
                })
            });
            // Rocket drains in-flight requests, then the kernel's shutdown fairings stop the
            // courier between two messages and wait for background work; the pool closes last.
            let stopped = rocket
                .attach(announce)
                .launch()
                .await
                .map_err(|e| e.to_string())?;
            if let Some(db) = kernel::Db::fetch(&stopped) {
                db.close_when_stopped().await;
            }
            eprintln!("stride: stopped");
        }
        Command::CheckConfig => {}
        Command::Migrate => {
            // Igniting attaches the pool and runs the migrations, without binding a port.
            rocket.ignite().await.map_err(|e| e.to_string())?;
            eprintln!("stride: database is up to date");
        }
        Command::Users { command } => {
            let rocket = rocket.ignite().await.map_err(|e| e.to_string())?;
            let accounts = stride::operator::Accounts::of(&rocket)?;
            let outcome = match command {
                UsersCommand::List => {
                    print!("{}", accounts.list().await?);
                    return Ok(());
                }
                UsersCommand::Create {
                    username,
                    email,
                    password_stdin,
                } => accounts.create(&username, &email, password_stdin).await?,
                #[cfg(feature = "users")]
                UsersCommand::Delete { username } => accounts.delete(&username).await?,
                UsersCommand::SetAdmin { username } => accounts.grant_admin(&username).await?,
                #[cfg(feature = "two_factor")]
                UsersCommand::RemoveFactors { username } => {
                    accounts.remove_factors(&username).await?
                }
                #[cfg(feature = "users")]
                UsersCommand::UnsetAdmin { username } => accounts.remove_admin(&username).await?,
            };
            eprintln!("stride: {outcome}");
        }
    }
    Ok(())
}
