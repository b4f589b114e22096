//! Every example configuration in `configs/` that ombootd reads must validate.

use std::path::Path;

use bootserver::config::Config;

#[test]
fn example_ombootd_configs_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("configs/ exists") {
        let path = entry.expect("readable entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("ombootd") && name.ends_with(".toml") {
            if let Err(e) = Config::load(&path) {
                panic!("{e}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 1, "no ombootd*.toml in {}", dir.display());
}
