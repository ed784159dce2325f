//! Two build steps of the `ametist` binary:
//!
//! * Generates Qdrant's client-facing gRPC services (`Qdrant`, `Collections`, `Points`)
//!   from the vendored `.proto` files in `proto/`. They are parsed by `protox`, a protobuf
//!   compiler written in Rust, so building needs no `protoc` on the machine.
//! * Bakes the git commit the binary is built from into `AMETIST_GIT_COMMIT` (shown as
//!   `commit` on `GET /`, as Qdrant shows its own). A build outside a git checkout (a
//!   source archive) takes `AMETIST_GIT_COMMIT` from the environment, or says `unknown`.

use std::process::Command;

fn main() {
    grpc_services();
    git_commit();
}

fn grpc_services() {
    let files = ["proto/qdrant.proto"];
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(files, ["proto"]).expect("the vendored Qdrant .proto files parse");
    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        // Prost's codec, with undecodable messages as INVALID_ARGUMENT (see src/grpc/codec.rs).
        .codec_path("crate::grpc::codec::QdrantCodec")
        .compile_fds(fds)
        .expect("generating the gRPC services");
}

fn git_commit() {
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

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}
