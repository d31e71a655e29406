//! One test binary for every system test: real processes, real sockets, real TLS, real tools.

mod ansible;
mod apply;
mod apply_auth;
mod apply_ssh;
mod apps;
mod auth;
mod auth_jwt;
mod auth_services;
mod chaos;
mod cluster;
mod compat;
mod container;
mod discovery;
mod dr;
mod dualstack;
mod edges;
mod gateway;
mod hosts;
mod k8s;
mod membership;
mod packaging;
mod render;
mod render_fuzz;
mod safety;
mod vm;
