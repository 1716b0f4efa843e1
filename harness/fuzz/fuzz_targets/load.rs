//! The loader on arbitrary bytes: a case file and an expectation file split
//! from one input. It must return (a suite or located errors), never panic.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

/// One directory per fuzzing process, on tmpfs when there is one.
fn tree() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            std::path::PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("sockspec-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("t")).unwrap();
        std::fs::create_dir_all(dir.join("expected")).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (case, rest) = data.split_at(split);
    let expect = rest.get(1..).unwrap_or_default();
    let dir = tree();
    std::fs::write(dir.join("t/c.toml"), case).unwrap();
    std::fs::write(dir.join("expected/linux.toml"), expect).unwrap();
    if let Err(errors) = sockspec::Suite::load(dir) {
        for e in &errors.0 {
            assert!(e.pos.is_some(), "an error without a location: {e}");
        }
    }
});
