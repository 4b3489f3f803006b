//! `moontide token new NAME --role ROLE`: a new API token, printed once,
//! and the config lines that declare it by hash.

use crate::server::auth::{Role, hash, new_token};
use clap::{Subcommand, ValueEnum};
use std::process::ExitCode;

/// A token's role, on the command line.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Read policies, decisions, the event stream and metrics.
    Viewer,
    /// Also pause, resume, override, toggle dry-run and reload.
    Operator,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Viewer => Role::Viewer,
            RoleArg::Operator => Role::Operator,
        }
    }
}

/// `moontide token ...`.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a new API token: prints the token once (keep it secret) and the config lines with its hash.
    New {
        /// Who will hold it; the audit log names them by this.
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: RoleArg,
    },
}

/// Runs `token`.
pub fn run(cmd: TokenCommand) -> ExitCode {
    let TokenCommand::New { name, role } = cmd;
    let role: Role = role.into();
    if name.trim().is_empty() || name.len() > 64 || name.contains(['"', '\\', '\n']) {
        eprintln!("error: NAME must be 1 to 64 characters, without quotes or backslashes");
        return ExitCode::from(super::EXIT_BAD_INPUT);
    }
    let token = match new_token() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{token}");
    let (role, sha) = (role.name(), hash(&token));
    eprintln!("\nThe token above is shown once; Moontide keeps only its hash. Add it to the config's");
    eprintln!("[server] tokens list, tokens = [ ... ]:\n");
    eprintln!("  {{ name = \"{name}\", role = \"{role}\", sha256 = \"{sha}\" }},");
    eprintln!("\nor, where the config writes its tokens as tables:\n");
    eprintln!("[[server.tokens]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{sha}\"");
    ExitCode::SUCCESS
}
