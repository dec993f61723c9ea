//! One module per command of the CLI; each takes the parsed arguments of `crate::cli`.

pub mod backup;
pub mod bench;
pub mod check;
pub mod children;
pub mod eval_agents;
pub mod eval_identity;
pub mod eval_warnings;
pub mod export;
pub mod import;
pub mod keys;
pub mod replay;
pub mod report;
pub mod serve;

use crate::cli::{Cli, Command};

/// Runs the command the command line names.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Import(args) => import::run(args).await,
        Command::Export(args) => export::run(args).await,
        Command::Report(args) => report::run(args).await,
        Command::CatchUp(args) => children::run_catch_up(args).await,
        Command::ValidTime(args) => children::run_valid_time(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Replay(args) => replay::run(args).await,
        Command::EvalWarnings(args) => eval_warnings::run(args).await,
        Command::EvalIdentity(args) => eval_identity::run(args),
        Command::EvalAgents(args) => eval_agents::run(args),
        Command::Keys(args) => keys::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Backup(args) => backup::backup(args).await,
        Command::Restore(args) => backup::restore(args).await,
    }
}
