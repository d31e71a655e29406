//! System tests of `provision render` output, checked by the real validators.
