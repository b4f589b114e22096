//! The node side of ombootd: discovery, membership, load gossip and process migration.
//!
//! Empty for now: the node daemon `omd` arrives with the migrator issues; the crate exists so the
//! workspace already follows the boot sequence (bootserver → node-image → migrator).
