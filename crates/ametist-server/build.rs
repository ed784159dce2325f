//! Generates Qdrant's client-facing gRPC services (`Qdrant`, `Collections`, `Points`) from
//! the vendored `.proto` files in `proto/`. They are parsed by `protox`, a protobuf compiler
//! written in Rust, so building needs no `protoc` on the machine.

fn main() {
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
