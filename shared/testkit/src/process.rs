//! Real service binaries as child processes: a `KEYS_DIR` they can load, and a guard that
//! SIGKILLs and reaps a child on every exit path, so a failing test leaves no process behind.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
};

use shared::tokens::KeyPurpose;

/// A fresh `KEYS_DIR` under the temp dir (`<label>-<uuid>`) of Ed25519 PEM files made by
/// `openssl`, for every purpose (the files `KeySet::load` reads). The caller removes it.
pub fn keys_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{label}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    for purpose in [
        KeyPurpose::Access,
        KeyPurpose::Admission,
        KeyPurpose::Ticket,
    ] {
        let stem = purpose.file_stem();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .stdout(Stdio::null())
                .status()
                .expect("openssl runs");
            assert!(status.success(), "openssl {args:?}");
        };
        openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            &format!("{stem}.key"),
        ]);
        openssl(&[
            "pkey",
            "-in",
            &format!("{stem}.key"),
            "-pubout",
            "-out",
            &format!("{stem}.pub"),
        ]);
    }
    dir
}

/// A child process SIGKILLed (what `Child::kill` sends on Unix) and reaped when dropped or
/// [`killed`](KilledOnDrop::kill).
pub struct KilledOnDrop(Option<Child>);

impl KilledOnDrop {
    /// Spawns `command`.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("{command:?} starts: {err}"));
        Self(Some(child))
    }

    /// The child, while it has not been killed.
    pub fn child(&mut self) -> Option<&mut Child> {
        self.0.as_mut()
    }

    /// SIGKILL, and reap (a no-op once done).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        self.kill();
    }
}
