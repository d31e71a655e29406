//! systemd readiness (`Type=notify`): send `READY=1` to `$NOTIFY_SOCKET` once the member serves.

use std::os::unix::net::UnixDatagram;

/// Tell systemd we are ready, if it asked (no-op without `NOTIFY_SOCKET`).
pub fn ready() {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sock = match UnixDatagram::unbound() {
        Ok(s) => s,
        Err(e) => return tracing::warn!("NOTIFY_SOCKET: {e}"),
    };
    let bytes = path.as_encoded_bytes();
    // A leading '@' names a Linux abstract socket.
    let res = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(b"READY=1", &a))
    } else {
        sock.send_to(b"READY=1", &path)
    };
    match res {
        Ok(_) => tracing::info!("notified systemd: READY=1"),
        Err(e) => tracing::warn!("NOTIFY_SOCKET {}: {e}", path.to_string_lossy()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ready_is_sent_to_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // Tests share the environment; this is the only test touching NOTIFY_SOCKET.
        std::env::set_var("NOTIFY_SOCKET", &path);
        super::ready();
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 32];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
