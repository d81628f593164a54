//! Embeds every playground/ operation into the binary, so GraphiQL opens with them as tabs.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "graphql") {
            files.push(path);
        }
    }
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let playground = root.join("playground");
    println!("cargo:rerun-if-changed=playground");
    // `embed_migrations!` reads migrations/ at compile time but cannot tell cargo so: without
    // this, a new migration was left out of the binary until some source file changed.
    println!("cargo:rerun-if-changed=migrations");
    let mut files = Vec::new();
    collect(&playground, &mut files);
    files.sort();
    let mut code = String::from("pub const PLAYGROUND_FILES: &[(&str, &str)] = &[\n");
    for file in &files {
        let name = file.strip_prefix(&playground).unwrap_or(file).to_string_lossy().replace('\\', "/");
        let _ = writeln!(code, "    ({name:?}, include_str!({:?})),", file.to_string_lossy());
    }
    code.push_str("];\n");
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("playground_files.rs");
    if let Err(err) = std::fs::write(&out, code) {
        panic!("writing {}: {err}", out.display());
    }
}
