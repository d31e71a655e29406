//! A real BIND `named` serving one zone file inside a network namespace, on port 53 of the addresses
//! given; killed by PID on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::netns::Host;
use crate::tools::require;
use crate::wait::wait_for;

/// A running `named -g` and its log file.
#[derive(Debug)]
pub struct Named {
    child: Child,
    /// Where named's output goes (printed when it fails to start).
    pub log: PathBuf,
}

impl Named {
    /// Serves `zone` as the primary for `origin` from `host`, listening on `listen` port 53, and waits
    /// until it answers the zone's SOA. `dir` holds named.conf, its pid file and the log.
    pub fn serve(
        host: &Host,
        dir: &Path,
        origin: &str,
        zone: &Path,
        listen: &[&str],
    ) -> Result<Named> {
        let named = require("named", "bind9")?;
        let dig = require("dig", "bind9-dnsutils")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let d = dir.display();
        let conf = dir.join("named.conf");
        // recursion off: it answers for this zone only and never tries the (unreachable) internet.
        let text = format!(
            "options {{\n  directory \"{d}\";\n  listen-on port 53 {{ {addrs}; }};\n  listen-on-v6 {{ none; }};\n  \
             pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  recursion no;\n  \
             dnssec-validation no;\n}};\ncontrols {{ }};\nzone \"{origin}\" {{ type primary; file \"{zone}\"; }};\n",
            addrs = listen.join("; "),
            zone = zone.display(),
        );
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let log = dir.join("named.log");
        let out =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = host
            .command(&named)
            .arg("-g")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {} in {}", named.display(), host.name))?;
        let mut server = Named { child, log };
        let first = listen.first().copied().unwrap_or("127.0.0.1");
        let ready = wait_for(
            "named to answer",
            Duration::from_secs(10),
            Duration::from_millis(50),
            || {
                if let Ok(Some(status)) = server.child.try_wait() {
                    return Err(format!("named exited ({status})"));
                }
                let o = host
                    .command(&dig)
                    .args([
                        "+short",
                        "+time=1",
                        "+tries=1",
                        &format!("@{first}"),
                        "SOA",
                        origin,
                    ])
                    .output()
                    .map_err(|e| e.to_string())?;
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                if o.status.success() && !text.trim().is_empty() {
                    Ok(())
                } else {
                    Err(format!("dig: {text}{}", String::from_utf8_lossy(&o.stderr)))
                }
            },
        );
        if let Err(e) = ready {
            let log = std::fs::read_to_string(&server.log).unwrap_or_default();
            bail!("{e:#}\nnamed log:\n{log}");
        }
        Ok(server)
    }
}

impl Drop for Named {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
