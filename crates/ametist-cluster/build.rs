//! Generates the gRPC service and client of the node-to-node protocol from a Rust
//! description (`tonic_build::manual`): the messages are `prost` structs in `wire.rs`, so
//! no `.proto` file and no protobuf compiler are needed to build.

fn main() {
    let method = |name: &str, route: &str| {
        tonic_build::manual::Method::builder()
            .name(name)
            .route_name(route)
            .input_type("crate::wire::Envelope")
            .output_type("crate::wire::Envelope")
            .codec_path("tonic_prost::ProstCodec")
            .build()
    };
    let service = tonic_build::manual::Service::builder()
        .name("Node")
        .package("ametist.cluster")
        .method(method("call", "Call"))
        .build();
    tonic_build::manual::Builder::new().compile(&[service]);
}
