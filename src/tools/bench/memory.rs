//! `rapport bench --serve-memory`: the resident memory of a real `rapport serve` process
//! holding a synthetic log, once its read model has caught up. A child process, so nothing
//! of the benchmark itself (the generated text, the import's buffers) is counted.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use http_body_util::{BodyExt, Empty};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};

use super::{proc_status_kib, run_import, synthetic_ndjson, BenchOptions};
use crate::{
    crypto::{Keyring, MasterKey},
    import::Input,
    log::Log,
    store::{
        sqlite::{SqliteOptions, SqliteStore},
        EventStore,
    },
};

/// Longest wait for the child's read model to fold the log.
const SERVE_CATCH_UP_SECONDS: u64 = 1_800;
/// After catching up, resident memory is read this often until it stops changing (the
/// allocator returns freed pages after a second).
const RSS_SETTLE_POLL_MS: u64 = 2_000;
const RSS_SETTLE_POLLS_MAX: usize = 45;
/// Polls in a row with resident memory unchanged (within 1 MiB) before it counts as
/// settled: 10 s. A single unchanged poll was not enough: freed memory went back to the
/// OS 5 to 20 s after the compaction, and the bench read 180 MiB too much.
const RSS_SETTLED_POLLS: usize = 5;

/// A child killed when dropped, so a failed benchmark leaves no server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn serve_memory(opts: &BenchOptions) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data = tmp.path().join("data");
    let key_file = tmp.path().join("master.key");
    let (master, _) = MasterKey::load_or_create(&key_file, true)?;
    let last = {
        let store = Arc::new(SqliteStore::open(&data, SqliteOptions::default())?);
        let log = Log::new(
            store.clone() as Arc<dyn EventStore>,
            Arc::new(Keyring::load(master, vec![])?),
        );
        let input = [Input::text(
            "synthetic",
            synthetic_ndjson(opts.events, opts.customers, opts.seed, opts.times),
        )];
        let report = run_import(&store, &log, &input)?;
        println!(
            "imported {} events over {} customers in {:.1} s",
            report.events_written, opts.customers, report.seconds
        );
        store.close();
        store.last_position()
    };
    // A catch-up of a million events or more runs in a child process (`rapport catch-up`):
    // the server loads the snapshot it leaves, and is caught up once it has. Its peak
    // memory is the child's, not counted here.
    let first = Serving::start(&data, &key_file, last).await?;
    let (rss, anon, file) = first.settled_rss().await;
    let peak = proc_status_kib(&first.pid, "VmHWM:").unwrap_or(0);
    println!(
        "rapport serve on {} events, {} customers: ready and caught up in {:.1} s; resident {} MiB ({} MiB anonymous, {} MiB mapped files; {:.0} bytes/customer), peak {} MiB (target: 1 M customers under 1 GiB)",
        last,
        opts.customers,
        first.caught_up,
        rss / 1024,
        anon / 1024,
        file / 1024,
        rss as f64 * 1024.0 / opts.customers as f64,
        peak / 1024
    );
    // The same state loaded from the snapshot the first server wrote, with no catch-up
    // behind it: what is left over from folding (allocator fragmentation) is the difference.
    drop(first);
    let second = Serving::start(&data, &key_file, last).await?;
    let (rss, anon, file) = second.settled_rss().await;
    println!(
        "  restarted from its snapshot: ready in {:.1} s; resident {} MiB ({} MiB anonymous, {} MiB mapped files)",
        second.caught_up,
        rss / 1024,
        anon / 1024,
        file / 1024,
    );
    Ok(())
}

/// A `rapport serve` child whose read model has reached the log's last position.
struct Serving {
    _child: Server,
    pid: String,
    /// Seconds from spawning to caught up.
    caught_up: f64,
}

impl Serving {
    async fn start(data: &Path, key_file: &Path, last: u64) -> anyhow::Result<Serving> {
        let mut child = Server(
            Command::new(std::env::current_exe()?)
                .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
                .arg(data)
                .env("RAPPORT_MASTER_KEY_FILE", key_file)
                .env("RAPPORT_LOG", "warn")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let pid = child.0.id().to_string();
        let started = Instant::now();
        let stdout = child.0.stdout.take().expect("piped");
        let addr = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            for line in BufReader::new(stdout).lines() {
                if let Some(a) = line?.strip_prefix("rapport listening on ") {
                    return Ok(a.trim().to_owned());
                }
            }
            anyhow::bail!("the server exited before listening")
        })
        .await??;
        let token = read_admin_key(data)?;
        let client: HttpClient = Client::builder(TokioExecutor::new()).build_http();
        loop {
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(SERVE_CATCH_UP_SECONDS),
                "the server's read model did not reach position {last} in {SERVE_CATCH_UP_SECONDS} s"
            );
            let (status, _) = get(
                &client,
                &format!("{addr}/v1/customers?limit=1&min_position={last}"),
                &token,
            )
            .await?;
            if status.is_success() {
                break;
            }
            anyhow::ensure!(status.as_u16() == 503, "unexpected answer {status}");
        }
        Ok(Serving {
            _child: child,
            pid,
            caught_up: started.elapsed().as_secs_f64(),
        })
    }

    /// Resident, anonymous and file-mapped KiB once resident memory has stopped changing
    /// for `RSS_SETTLED_POLLS` polls in a row.
    async fn settled_rss(&self) -> (u64, u64, u64) {
        let mut rss = proc_status_kib(&self.pid, "VmRSS:").unwrap_or(0);
        let mut steady = 0;
        for _ in 0..RSS_SETTLE_POLLS_MAX {
            tokio::time::sleep(Duration::from_millis(RSS_SETTLE_POLL_MS)).await;
            let now = proc_status_kib(&self.pid, "VmRSS:").unwrap_or(0);
            steady = if now.abs_diff(rss) < 1024 {
                steady + 1
            } else {
                0
            };
            rss = now;
            if steady == RSS_SETTLED_POLLS {
                break;
            }
        }
        let [anon, file] =
            ["RssAnon:", "RssFile:"].map(|f| proc_status_kib(&self.pid, f).unwrap_or(0));
        (rss, anon, file)
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>;

async fn get(
    client: &HttpClient,
    url: &str,
    token: &str,
) -> anyhow::Result<(hyper::StatusCode, String)> {
    let req = hyper::Request::get(url)
        .header("authorization", format!("Bearer {token}"))
        .body(Empty::new())?;
    let res = client.request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn read_admin_key(data: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(data.join("admin-key"))?;
    Ok(text.trim().to_owned())
}
