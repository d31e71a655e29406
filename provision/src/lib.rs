//! provision: one cluster.yaml → certificates, env files, systemd units, logging, firewall, DNS,
//! monitoring and inventory for a Cairn cluster.

pub mod deploy;
pub mod files;
pub mod manifest;
pub mod pki;
pub mod render;
pub mod spec;
pub mod templates;
pub mod x509;
