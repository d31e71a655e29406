//! Members talking over mutual TLS; a peer with a certificate from another CA is refused at the
//! handshake, and a member of another cluster (valid certificate, other cluster ID) is refused by the
//! cluster-ID check.

use std::path::Path;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

use crate::{frame_vote, listeners, put, start, until};
use cairn_node::raft::channels::FrameError;
use cairn_node::raft::network::PeerChannels;
use cairn_node::raft::types::PeerNode;
use cairn_node::tls::TlsFiles;

/// Write `<dir>/ca.pem` and a member certificate for 127.0.0.1 (`cert.pem`, `key.pem`).
fn make_pki(dir: &Path) {
    std::fs::create_dir_all(dir).expect("pki dir");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("ca key")).expect("ca");
    let mut leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("leaf params");
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("leaf key");
    let cert = leaf.signed_by(&key, &ca).expect("leaf");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write key");
}

fn tls_flags(pki: &Path) -> Vec<String> {
    vec![
        format!("--peer-cert-file={}", pki.join("cert.pem").display()),
        format!("--peer-key-file={}", pki.join("key.pem").display()),
        format!("--peer-trusted-ca-file={}", pki.join("ca.pem").display()),
        "--peer-client-cert-auth".to_string(),
    ]
}

fn client_of(pki_cert: &Path, pki_ca: &Path) -> Option<std::sync::Arc<rustls::ClientConfig>> {
    TlsFiles {
        prefix: "peer-",
        cert: Some(pki_cert.join("cert.pem")),
        key: Some(pki_cert.join("key.pem")),
        ca: Some(pki_ca.join("ca.pem")),
        client_cert_auth: true,
    }
    .client_config()
    .expect("client config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn tls_members_refuse_other_cas_and_other_clusters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pki, other_pki) = (dir.path().join("pki"), dir.path().join("other-pki"));
    make_pki(&pki);
    make_pki(&other_pki);
    let (listeners, urls, cluster) = listeners("https", "t", 3).await;
    let mut members = Vec::new();
    for (i, l) in listeners.into_iter().enumerate() {
        let name = format!("t{i}");
        members.push(start(&name, &cluster, &urls[i], dir.path(), l, &tls_flags(&pki)).await);
    }
    let leader = until("a leader over TLS", Duration::from_secs(5), || {
        members[0].app.status().leader
    })
    .await;
    let follower = members
        .iter()
        .find(|m| m.app.member_id() != leader)
        .expect("follower");
    follower
        .app
        .propose(put("over-tls"))
        .await
        .expect("forwarded write over mTLS");

    let target = members[0].app.member_id();
    let node = PeerNode {
        name: "t0".into(),
        peer_urls: vec![urls[0].clone()],
    };

    // Right CA and certificate, wrong cluster ID: the member answers its gRPC calls, and refuses.
    let foreign = PeerChannels::new(0x0bad, client_of(&pki, &pki));
    let mut c = foreign.client(target, &node).expect("client");
    let err = c
        .members(foreign.request(&()).expect("encode"))
        .await
        .expect_err("refused");
    assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err}");
    assert!(
        err.message().contains("request cluster ID mismatch"),
        "{err}"
    );

    // A certificate from another CA never gets past the handshake.
    let ours = members[0].app.status().cluster_id;
    let stranger = PeerChannels::new(ours, client_of(&other_pki, &pki));
    let mut c = stranger.client(target, &node).expect("client");
    let err = c
        .members(stranger.request(&()).expect("encode"))
        .await
        .expect_err("handshake refused");
    // With TLS 1.3 the server rejects the client certificate after the client has sent its
    // Finished, so the client sees either the alert or the connection closing; never a reply.
    let refused = matches!(
        err.code(),
        tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Cancelled
    );
    assert!(refused, "{err:?}");

    // The same two callers on the frame protocol (raft/frames.rs), which carries Raft's hot calls.
    let refusal = frame_vote(&foreign, target, &urls[0])
        .await
        .expect("the member answers")
        .expect_err("and refuses");
    assert!(refusal.contains("request cluster ID mismatch"), "{refusal}");
    let err = frame_vote(&stranger, target, &urls[0])
        .await
        .expect_err("handshake refused");
    assert!(matches!(err, FrameError::Io(_)), "{err:?}");
    // With our own certificate and cluster ID the vote is answered, and not granted to a stale term.
    let ours_frames = PeerChannels::new(ours, client_of(&pki, &pki));
    let granted = frame_vote(&ours_frames, target, &urls[0]).await;
    assert!(!granted.expect("answered").expect("accepted for processing"));

    for m in &members {
        let _ = m.stop.send(true);
        m.app.shutdown().await;
    }
}
