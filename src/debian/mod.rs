//! apt repositories (Debian Repository Format, <https://wiki.debian.org/DebianRepository/Format>):
//! [`signature`] verifies `InRelease` files with OpenPGP, [`release`] parses Release files,
//! [`client`] fetches and caches repositories with conditional requests, [`packages`]
//! parses Packages indexes into a candidate index keyed by (package, architecture),
//! [`deb`] reads the changelog out of a .deb, [`changelog`] the CVEs out of it, and
//! [`sources`] the repositories (and keys) a build script configured in an image;
//! [`codename`] maps release codenames to numbers.

pub mod ar;
pub mod changelog;
pub mod client;
pub mod codename;
pub mod deb;
pub mod packages;
pub mod release;
pub mod signature;
pub mod sources;

pub use client::{RepoClient, SyncedRepo, TrackedRepo};
pub use packages::{Candidate, PackageIndex};
pub use release::Release;
pub use signature::{Keyring, DEBIAN_ARCHIVE_KEYRING};
