//! Compiles RocketMQ's 5.x gRPC API (`proto/apache/rocketmq/v2`) with protox
//! (a pure-Rust protobuf compiler: no system `protoc`) and generates the
//! prost messages and the tonic server and client for `src/proxy`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/apache/rocketmq/v2/definition.proto",
        "proto/apache/rocketmq/v2/service.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Methods the proxy leaves out answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        .bytes(".apache.rocketmq.v2.Message.body")
        .compile_fds(fds)?;
    Ok(())
}
