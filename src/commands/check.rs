//! `rapport check`: is what the store holds what was written? SQLite's own check of the
//! file, then every event against the digest it was appended with (see `Log::verify`).
//! Read-only: it runs beside a server.

use crate::{
    app,
    cli::CheckArgs,
    log::{Log, Verified},
    store::READ_EVENTS_MAX,
};

/// Damaged events listed by position, at most.
const DAMAGED_SHOWN_MAX: usize = 20;

/// What a check of the log found.
#[derive(Debug, Default)]
pub struct LogCheck {
    pub intact: u64,
    /// Events whose personal data was erased: their keyed digest cannot be recomputed.
    pub erased: u64,
    pub damaged: Vec<(u64, String)>,
    /// Data keys that do not unwrap under the master key: (customer, generation).
    pub damaged_keys: Vec<(String, u32)>,
}

/// Checks every event of `log` against its digest.
pub async fn check_log(log: &Log) -> anyhow::Result<LogCheck> {
    let mut out = LogCheck {
        damaged_keys: log.keys.damaged(),
        ..LogCheck::default()
    };
    let mut after = 0;
    loop {
        let page = log.read_all(after, READ_EVENTS_MAX).await?;
        let Some(last) = page.last().map(|e| e.position) else {
            break;
        };
        for stored in &page {
            match log.verify(stored) {
                Verified::Intact => out.intact += 1,
                Verified::Erased => out.erased += 1,
                Verified::Damaged(why) => out.damaged.push((stored.position, why)),
            }
        }
        after = last;
    }
    Ok(out)
}

impl LogCheck {
    /// The report's lines.
    pub fn print(&self) {
        println!(
            "events: {} intact, {} erased (personal data shredded: not checkable), {} damaged",
            self.intact,
            self.erased,
            self.damaged.len()
        );
        for (p, why) in self.damaged.iter().take(DAMAGED_SHOWN_MAX) {
            println!("  position {p}: {why}");
        }
        if self.damaged.len() > DAMAGED_SHOWN_MAX {
            println!("  … and {} more", self.damaged.len() - DAMAGED_SHOWN_MAX);
        }
        println!("data keys: {} damaged", self.damaged_keys.len());
        for (customer, generation) in self.damaged_keys.iter().take(DAMAGED_SHOWN_MAX) {
            println!("  customer {customer}, generation {generation}: does not unwrap under the master key");
        }
    }

    /// Nothing damaged.
    pub fn is_intact(&self) -> bool {
        self.damaged.is_empty() && self.damaged_keys.is_empty()
    }
}

pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let master = args.master.resolve(false)?;
    let (store, log) = app::open_log_read_only(&args.data.data_dir, master).await?;
    let file = store.quick_check()?;
    let file_ok = file == ["ok"];
    println!(
        "store file (SQLite quick_check): {}",
        if file_ok {
            "ok".to_owned()
        } else {
            file.join("; ")
        }
    );
    let report = check_log(&log).await?;
    report.print();
    anyhow::ensure!(
        file_ok && report.is_intact(),
        "the store is damaged (see above): restore it from a backup"
    );
    Ok(())
}
