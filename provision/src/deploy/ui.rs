//! What apply prints: `==> phase` headings, `[host] …` lines, the gate every change passes through, and a
//! log file with everything (including each remote script) whose path is printed at the end.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Console + log file. Shared by the per-host threads of a phase.
pub struct Ui {
    dry_run: bool,
    changes: AtomicUsize,
    log: Mutex<Option<File>>,
    log_path: Option<PathBuf>,
}

impl Ui {
    /// Printing to stdout and, when `log` is given, to that file (its path printed at the end).
    pub fn new(dry_run: bool, log: Option<(PathBuf, File)>) -> Ui {
        let (log_path, file) = match log {
            Some((p, f)) => (Some(p), Some(f)),
            None => (None, None),
        };
        Ui {
            dry_run,
            changes: AtomicUsize::new(0),
            log_path,
            log: Mutex::new(file),
        }
    }

    /// True when nothing may change.
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The log file, if one could be created.
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Changes made (or, in a dry run, that would be made) so far.
    pub fn changes(&self) -> usize {
        self.changes.load(Ordering::SeqCst)
    }

    /// Write only to the log file (remote scripts, raw outputs).
    pub fn log(&self, line: &str) {
        if let Ok(mut g) = self.log.lock() {
            if let Some(f) = g.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    }

    fn print(&self, line: &str) {
        println!("{line}");
        self.log(line);
    }

    /// `==> title`.
    pub fn heading(&self, title: &str) {
        self.print(&format!("==> {title}"));
    }

    /// A line about one host.
    pub fn host(&self, host: &str, msg: &str) {
        self.print(&format!("[{host}] {msg}"));
    }

    /// A line about the whole cluster.
    pub fn info(&self, msg: &str) {
        self.print(&format!("    {msg}"));
    }

    /// Every mutating step asks here first. In a dry run it prints what would change and answers false;
    /// otherwise it prints what is being changed and answers true. Either way the change is counted.
    pub fn gate(&self, host: &str, what: &str) -> bool {
        self.changes.fetch_add(1, Ordering::SeqCst);
        if self.dry_run {
            self.host(host, &format!("would {what}"));
            false
        } else {
            self.host(host, what);
            true
        }
    }
}
