//! Helpers shared by the system tests: ports, processes, certificates, etcdctl.
