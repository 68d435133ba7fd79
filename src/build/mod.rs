//! The build pipeline: base layer (mmdebstrap, cached), app layer (overlay + sandboxed build
//! script), OCI image, components manifest, atomic publish.

pub mod oci;
