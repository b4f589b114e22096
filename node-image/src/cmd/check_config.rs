//! `omimage check-config`: validate `node-image.toml` and show the recipe the cache is keyed by.

use std::path::Path;

use node_image::config::ImageConfig;

/// Validate and print.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = ImageConfig::load(config_path)?;
    println!("{}: OK", config_path.display());
    println!("recipe hash {}", config.recipe.hash());
    print!("{}", config.recipe.canonical());
    println!(
        "initramfs modules: {} ({:?})",
        config.initramfs.modules.join(" "),
        config.initramfs.compression
    );
    println!(
        "initramfs NIC drivers (loaded by modalias): every module under {}",
        config.initramfs.nic_drivers.join(" ")
    );
    for f in &config.tftp_files {
        println!("tftp file: {}", f.display());
    }
    Ok(())
}
