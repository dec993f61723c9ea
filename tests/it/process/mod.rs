//! Tests that run the real `rapport` binary as a child process: crash safety and the CLI.

mod backup;
mod cli;
mod crash;
mod damage;
mod tls;

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

pub(crate) fn rapport() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rapport"));
    c.env("RAPPORT_LOG", "warn")
        .env_remove("RAPPORT_MASTER_KEY")
        .env_remove("RAPPORT_DATA_DIR");
    c
}

/// A `rapport serve` child on a free port. Killed (SIGKILL) when dropped.
pub(crate) struct Server {
    pub child: Child,
    pub base: String,
    pub admin: String,
}

impl Server {
    pub(crate) fn start(dir: &Path, master: &Path) -> Server {
        Server::start_with(dir, master, rapport(), Stdio::inherit())
    }

    /// Like [`Server::start`], from `command` (a [`rapport`] with more arguments or
    /// environment), its log going to `stderr`.
    pub(crate) fn start_with(
        dir: &Path,
        master: &Path,
        mut command: Command,
        stderr: Stdio,
    ) -> Server {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .arg("--master-key-file")
            .arg(master)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn rapport serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let base = line
            .trim()
            .strip_prefix("rapport listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        let admin = std::fs::read_to_string(dir.join("admin-key"))
            .unwrap()
            .trim()
            .to_owned();
        Server { child, base, admin }
    }

    /// `GET path` as admin, its body as JSON.
    pub(crate) fn get_json(&self, path: &str) -> serde_json::Value {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    /// `GET path` as admin, its body as text (`/metrics`).
    pub(crate) fn get_text(&self, path: &str) -> String {
        reqwest::blocking::Client::new()
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin)
            .send()
            .unwrap()
            .text()
            .unwrap()
    }

    pub(crate) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub(crate) fn paths() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let master = tmp.path().join("master.key");
    (tmp, data, master)
}
