// Generates helium.market.v1 with the vendored protoc (no system package needed).
fn main() -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY of intent: build scripts are single-threaded; PROTOC tells prost-build which protoc to run.
    unsafe { std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?) };
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        // Each Lambda implements only its own method; the others answer UNIMPLEMENTED.
        .generate_default_stubs(true)
        // Malformed request messages are the client's fault: INVALID_ARGUMENT, not INTERNAL.
        .codec_path("crate::codec::StrictCodec")
        // The descriptors, for tools and tests that enumerate every method (the
        // authorization matrix).
        .file_descriptor_set_path(std::path::PathBuf::from(std::env::var("OUT_DIR")?).join("helium_market_descriptor.bin"))
        .compile_protos(&["proto/helium/market/v1/market.proto", "proto/helium/market/v1/admin.proto"], &["proto"])?;
    Ok(())
}
