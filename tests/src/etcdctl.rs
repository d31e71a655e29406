//! The real `etcdctl` (v3 API) as a child process: run a command, get its stdout, stderr and exit code.

use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// What one etcdctl invocation printed and how it exited.
#[derive(Debug, Clone)]
pub struct Output {
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// Exit code (`None` if killed by a signal).
    pub code: Option<i32>,
}

impl Output {
    /// True when etcdctl exited 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// How to reach a cluster with etcdctl: endpoints and the TLS files to present.
#[derive(Debug, Clone)]
pub struct Etcdctl {
    /// Comma-separated client URLs.
    pub endpoints: String,
    /// `--cacert`.
    pub cacert: Option<PathBuf>,
    /// `--cert` and `--key` (client certificate).
    pub cert: Option<(PathBuf, PathBuf)>,
}

impl Etcdctl {
    /// The etcdctl binary: `$ETCDCTL_BIN` or `etcdctl` on PATH.
    fn program() -> String {
        std::env::var("ETCDCTL_BIN").unwrap_or_else(|_| "etcdctl".into())
    }

    /// Same TLS settings, other endpoints.
    pub fn with_endpoints(&self, endpoints: impl Into<String>) -> Etcdctl {
        Etcdctl {
            endpoints: endpoints.into(),
            ..self.clone()
        }
    }

    /// The full argument list (global flags first) for `args`.
    pub fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut v = vec![
            format!("--endpoints={}", self.endpoints),
            "--dial-timeout=3s".into(),
        ];
        if let Some(ca) = &self.cacert {
            v.push(format!("--cacert={}", ca.display()));
        }
        if let Some((crt, key)) = &self.cert {
            v.push(format!("--cert={}", crt.display()));
            v.push(format!("--key={}", key.display()));
        }
        v.extend(args.iter().map(|s| s.to_string()));
        v
    }

    /// The command line a person would type, for messages and the quick-start.
    pub fn command_line(&self, args: &[&str]) -> String {
        let mut s = String::from("ETCDCTL_API=3 etcdctl");
        for a in self.argv(args) {
            s.push(' ');
            s.push_str(&a);
        }
        s
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(Self::program());
        c.env("ETCDCTL_API", "3").args(self.argv(args));
        c
    }

    /// Runs etcdctl with `args`, whatever its exit code.
    pub fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_with_stdin(args, None)
    }

    /// Runs etcdctl with `args`, feeding `stdin` if given.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<Output> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().with_context(|| {
            format!(
                "starting {} (is etcd-client installed? scripts/deps.sh)",
                Self::program()
            )
        })?;
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().context("etcdctl stdin pipe")?;
            pipe.write_all(input.as_bytes())
                .context("writing etcdctl stdin")?;
        }
        let out = child.wait_with_output().context("waiting for etcdctl")?;
        Ok(Output {
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            code: out.status.code(),
        })
    }

    /// Runs etcdctl and returns stdout, failing with the command line and both outputs on a non-zero exit.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        self.ok_with_stdin(args, None)
    }

    /// Runs etcdctl every 300 ms until it exits 0 (e.g. a write while a new leader is elected), failing
    /// after `timeout` with `what` and the last stderr.
    pub fn ok_within(
        &self,
        what: &str,
        timeout: std::time::Duration,
        args: &[&str],
    ) -> Result<Output> {
        crate::wait::wait_for(what, timeout, std::time::Duration::from_millis(300), || {
            let o = self.run(args).map_err(|e| format!("{e:#}"))?;
            if o.success() {
                Ok(o)
            } else {
                Err(o.stderr)
            }
        })
    }

    /// Like [`Etcdctl::ok`] with `stdin`.
    pub fn ok_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let out = self.run_with_stdin(args, stdin)?;
        if !out.success() {
            bail!(
                "`{}` exited {:?}\nstdout: {}\nstderr: {}",
                self.command_line(args),
                out.code,
                out.stdout,
                out.stderr
            );
        }
        Ok(out.stdout)
    }

    /// Runs etcdctl and parses its stdout as JSON (for `-w json`).
    pub fn json(&self, args: &[&str]) -> Result<serde_json::Value> {
        let out = self.ok(args)?;
        serde_json::from_str(&out)
            .with_context(|| format!("parsing JSON from `{}`: {out}", self.command_line(args)))
    }

    /// Starts a long-running etcdctl (e.g. `watch`) whose stdout is collected in the background.
    pub fn spawn(&self, args: &[&str]) -> Result<Running> {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", Self::program()))?;
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        collect(child.stdout.take(), stdout.clone());
        collect(child.stderr.take(), stderr.clone());
        Ok(Running {
            child,
            stdout,
            stderr,
        })
    }
}

fn collect(pipe: Option<impl Read + Send + 'static>, into: Arc<Mutex<String>>) {
    let Some(mut pipe) = pipe else { return };
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut s) = into.lock() {
                s.push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        }
    });
}

/// A running etcdctl child; killed (by PID) on drop.
pub struct Running {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    /// Everything it has printed to stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Everything it has printed to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Its exit code if it has exited.
    pub fn exited(&mut self) -> Option<Option<i32>> {
        self.child.try_wait().ok().flatten().map(|s| s.code())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
