//! One test binary for every system test: real processes, real sockets, real TLS, real tools.

mod apply;
mod cluster;
mod hosts;
mod packaging;
mod render;
