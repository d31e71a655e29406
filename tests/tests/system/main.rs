//! One test binary for every system test: real processes, real sockets, real TLS, real tools.

mod cluster;
mod packaging;
mod render;
