use std::path::PathBuf;

/// The workspace root (where `Cargo.toml`, `nginx-conf/` and `target/` are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A release build output, e.g. `tfs-sim` or `libngx_http_tfgate_module.so`.
pub fn release_binary(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| repo_root().join("target"));
    let path = target.join("release").join(name);
    assert!(path.exists(), "{} is missing: run scripts/build.sh first", path.display());
    path
}
