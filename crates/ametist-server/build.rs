//! Bakes the git commit the binary is built from into `AMETIST_GIT_COMMIT` (shown as
//! `commit` on `GET /`, as Qdrant shows its own). A build outside a git checkout (a source
//! archive) takes `AMETIST_GIT_COMMIT` from the environment, or says `unknown`.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=AMETIST_GIT_COMMIT");
    let commit = std::env::var("AMETIST_GIT_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "HEAD"]).filter(|c| c.len() == 40 && c.chars().all(|c| c.is_ascii_hexdigit())))
        .unwrap_or_else(|| "unknown".to_string());
    // Build again when HEAD moves (a commit, a checkout); a worktree keeps its own HEAD.
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rustc-env=AMETIST_GIT_COMMIT={commit}");
}
