//! `rapport keys`: API keys and the master key.

use anyhow::Context;

use crate::{
    app,
    auth::ApiKeys,
    cli::{DataDir, KeysArgs, KeysCommand},
    crypto::MasterKey,
    store::{sqlite::SqliteOptions, EventStore},
};

pub async fn run(args: KeysArgs) -> anyhow::Result<()> {
    let KeysArgs { data, command } = args;
    run_command(data, command).await
}

async fn run_command(data: DataDir, command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { role, label } => {
            let keys = ApiKeys::open(&data.data_dir)?;
            let (info, token) = keys.create(role, label.as_deref())?;
            eprintln!(
                "created key {} with role {}; the token below is shown once:",
                info.id,
                role.as_str()
            );
            println!("{token}");
        }
        KeysCommand::List => {
            let keys = ApiKeys::open(&data.data_dir)?;
            for k in keys.list()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.role.as_str(),
                    k.created_at,
                    k.revoked_at.as_deref().unwrap_or("active"),
                    k.label.unwrap_or_default()
                );
            }
        }
        KeysCommand::Revoke { id } => {
            let keys = ApiKeys::open(&data.data_dir)?;
            anyhow::ensure!(keys.revoke(&id)?, "no active key `{id}`");
            eprintln!("revoked {id}");
        }
        KeysCommand::RotateMaster {
            master,
            new_master_key_file,
        } => {
            let old = master.resolve(false)?;
            let (store, log) = app::open_log(&data.data_dir, old, SqliteOptions::default()).await?;
            let damaged = log.keys.damaged();
            if let Some((customer, generation)) = damaged.first() {
                anyhow::bail!(
                    "{} data key(s) are damaged in the store (the first: customer {customer}, generation {generation}) and cannot be re-wrapped; restore the store from a backup (rapport restore) before rotating the master key",
                    damaged.len()
                );
            }
            let new = MasterKey::generate();
            crate::crypto::write_secret_file(&new_master_key_file, new.to_text().as_bytes())
                .with_context(|| format!("failed to write {}", new_master_key_file.display()))?;
            let rewrapped = log.keys.rewrap_all(&new);
            let n = rewrapped.len();
            store.rewrap_keys(rewrapped, &new.id()).await?;
            store.purge().await.ok();
            store.close();
            eprintln!(
                "re-wrapped {n} data keys under the new master key {} (written to {}); start Rapport with --master-key-file {} and then destroy the old key",
                new.id(),
                new_master_key_file.display(),
                new_master_key_file.display()
            );
        }
    }
    Ok(())
}
