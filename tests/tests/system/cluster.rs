//! System tests of a running cairn cluster driven by the real etcdctl 3.4.
