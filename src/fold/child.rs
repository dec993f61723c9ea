//! A fold run in a child process of `serve` (`rapport catch-up`, `rapport valid-time`).

use std::path::PathBuf;

/// A catch-up at start of at least `min_events` runs in a child process (`rapport
/// catch-up`), which folds the log from the snapshot, writes the snapshots a catch-up here
/// would have written, and exits; the read model then loads the last one as at a restart
/// and folds what is left. What folding leaves behind in the heap (pages kept resident by
/// a few live blocks each, which no compaction in place gets rid of) goes with the child.
/// Meanwhile the read model answers from the state it started with, as during any
/// catch-up. If the child fails, the catch-up runs here after all.
///
/// The same runs the business-time builds of `valid_at` (`rapport valid-time`, see
/// `read_model::builds`), with `min_events` the growth of the log that
/// starts one.
#[derive(Clone)]
pub struct FoldChild {
    /// The `rapport` executable.
    pub program: PathBuf,
    /// Its arguments (`catch-up --data-dir …` or `valid-time --data-dir …`).
    pub args: Vec<std::ffi::OsString>,
    /// Written to its standard input: the master key (so it is in no argument and no
    /// environment variable), then the configuration as JSON.
    pub stdin: zeroize::Zeroizing<String>,
    pub min_events: u64,
}

impl FoldChild {
    /// Runs the child to its end. It is started and waited for on a thread of its own,
    /// which lives as long as the child: the child dies with the thread that started it
    /// (`PR_SET_PDEATHSIG`), and a runtime worker can end while the child still runs
    /// (after `block_in_place`, a worker finishes as a blocking thread).
    pub async fn run(&self) -> anyhow::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let me = self.clone();
        std::thread::Builder::new()
            .name("rapport-child".into())
            .spawn(move || {
                let _ = tx.send(me.run_blocking());
            })?;
        rx.await
            .map_err(|_| anyhow::anyhow!("the child's thread ended without an answer"))?
    }

    fn run_blocking(&self) -> anyhow::Result<()> {
        use std::io::Write;
        let mut child = std::process::Command::new(&self.program)
            .args(&self.args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()?;
        let mut stdin = child.stdin.take().expect("piped");
        let written = stdin.write_all(self.stdin.as_bytes());
        drop(stdin);
        if let Err(e) = written {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e.into());
        }
        let status = child.wait()?;
        anyhow::ensure!(
            status.success(),
            "the child process `{}` ended with {status}",
            self.args
                .first()
                .map(|a| a.to_string_lossy())
                .unwrap_or_default()
        );
        Ok(())
    }
}
