//! How every binary of the workspace reports the error that ends it: the error, then each cause
//! on its own line, on stderr (the way Hickory DNS's and Cloud Hypervisor's mains do).

/// Print `e` after `prefix` (`"Error"`, or the program's name), then its causes.
pub fn print_error_chain(prefix: &str, e: &anyhow::Error) {
    eprintln!("{prefix}: {e}");
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}
