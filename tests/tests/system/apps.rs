//! What applications use beyond etcdctl's everyday commands: the Lock and Election gRPC services
//! (driven by the `etcd-client` crate, whose lock and election clients call them), interleaved with
//! etcdctl's `lock` and `elect`, which run the same recipes client-side on the same keys. Run against
//! cairn and, with `CAIRN_TEST_FLAVOR=etcd`, against etcd 3.4 with the same assertions.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use cairn_tests::cluster::Cluster;
use cairn_tests::fixture::{must, three_members as cluster};
use cairn_tests::grpc;
use cairn_tests::wait::wait_for;
use etcd_client::{Client, LeaderKey, LockOptions, ProclaimOptions, ResignOptions};
use tokio::time::timeout;

/// Long enough for a lease of `ttl` seconds to expire and the leader to revoke it.
fn expiry(ttl: i64) -> Duration {
    Duration::from_secs(ttl as u64 + 10)
}

/// True while `task` has not finished within a short grace period (it is waiting, as it should).
async fn still_waiting<T>(task: &mut tokio::task::JoinHandle<T>) -> bool {
    timeout(Duration::from_millis(1500), task).await.is_err()
}

async fn lease(client: &mut Client, ttl: i64) -> Result<i64> {
    Ok(client.lease_grant(ttl, None).await?.id())
}

/// A lease kept alive by a background task for as long as the test runs.
async fn kept_lease(client: &mut Client, ttl: i64) -> Result<i64> {
    let id = lease(client, ttl).await?;
    let (mut keeper, mut stream) = client.lease_keep_alive(id).await?;
    tokio::spawn(async move {
        loop {
            if keeper.keep_alive().await.is_err() || stream.message().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    });
    Ok(id)
}

async fn locks_exclude_each_other(c: &Cluster) -> Result<()> {
    // Holder: a real `etcdctl lock` (client-side recipe) whose session lease lives 3 s unrenewed.
    let holder = c.etcdctl_for(0).spawn(&["lock", "--ttl=3", "app/lock"])?;
    let held = wait_for(
        "etcdctl lock to acquire app/lock",
        Duration::from_secs(15),
        Duration::from_millis(100),
        || {
            let out = holder.stdout();
            out.lines()
                .next()
                .map(str::to_string)
                .ok_or(format!("stdout {out:?}, stderr {:?}", holder.stderr()))
        },
    )?;
    if !held.starts_with("app/lock/") {
        bail!("etcdctl lock printed {held:?}");
    }

    // A waiter through the Lock service on another member, with a lease kept alive.
    let mut b = c.client(1).await?;
    let lease_b = kept_lease(&mut b, 5).await?;
    let mut lb = b.lock_client();
    let mut waiter = tokio::spawn(async move {
        lb.lock("app/lock", Some(LockOptions::new().with_lease(lease_b)))
            .await
    });
    if !still_waiting(&mut waiter).await {
        bail!(
            "Lock returned while etcdctl held app/lock: {:?}",
            waiter.await
        );
    }
    // The holder dies without unlocking: its lease expires and the lock passes on.
    drop(holder);
    let got = timeout(expiry(3), &mut waiter)
        .await
        .context("Lock still waiting after the dead holder's lease expired")???;
    let key_b = String::from_utf8(got.key().to_vec())?;
    if key_b != format!("app/lock/{lease_b:x}") {
        bail!("Lock answered key {key_b:?} for lease {lease_b:x}");
    }
    let owners = c
        .etcdctl_for(2)
        .ok(&["get", "--prefix", "app/lock/", "--keys-only"])?;
    if owners.trim() != key_b {
        bail!("keys under app/lock/ while B holds it: {owners:?}");
    }

    // A waiter without a lease (the service grants its session lease) through a third member.
    let mut lc = c.client(2).await?.lock_client();
    let mut waiter_c = tokio::spawn(async move { lc.lock("app/lock", None).await });
    if !still_waiting(&mut waiter_c).await {
        bail!(
            "a second Lock returned while B held app/lock: {:?}",
            waiter_c.await
        );
    }
    b.lock_client().unlock(key_b.clone()).await?;
    let got_c = timeout(Duration::from_secs(10), waiter_c)
        .await
        .context("Lock still waiting after Unlock")???;
    let key_c = String::from_utf8(got_c.key().to_vec())?;
    if !key_c.starts_with("app/lock/") || key_c == key_b {
        bail!("the third locker got key {key_c:?}");
    }

    // A lease that does not exist: the put inside Lock is refused as etcd refuses it.
    match b
        .lock_client()
        .lock("app/other", Some(LockOptions::new().with_lease(0x7eadbeef)))
        .await
    {
        Ok(r) => bail!("Lock with a missing lease answered {:?}", r.key()),
        Err(e) => {
            let got = grpc::status_of(&e);
            // etcd's in-process client turns the NotFound into a plain error: Unknown.
            let want = ("Unknown", "etcdserver: requested lease not found");
            if (got.0.as_str(), got.1.as_str()) != want {
                bail!("Lock with a missing lease: {got:?}, want {want:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn lock_service_and_etcdctl_lock_exclude_each_other_and_a_dead_holders_lease_frees_the_lock() {
    let c = cluster();
    let rt = must(grpc::runtime());
    must(rt.block_on(locks_exclude_each_other(&c)));
}

/// The next value an Observe stream reports.
async fn observed(stream: &mut etcd_client::ObserveStream) -> Result<String> {
    let resp = timeout(Duration::from_secs(10), stream.message())
        .await
        .context("no leader change observed within 10 s")??
        .context("Observe stream ended")?;
    let kv = resp.kv().context("LeaderResponse without kv")?;
    Ok(String::from_utf8(kv.value().to_vec())?)
}

async fn election_changes_are_observed(c: &Cluster) -> Result<()> {
    let mut a = c.client(0).await?;
    let mut b = c.client(1).await?;
    // etcd answers Observe's headers only with its first leader, so the call waits in a task.
    let mut watcher = c.client(2).await?.election_client();
    let observer = tokio::spawn(async move { watcher.observe("app/elect").await });

    match a.election_client().leader("app/elect").await {
        Ok(r) => bail!("Leader of an empty election answered {:?}", r.kv()),
        Err(e) => {
            let got = grpc::status_of(&e);
            if got.1 != "election: no leader" {
                bail!("Leader of an empty election: {got:?}");
            }
        }
    }

    let lease_a = kept_lease(&mut a, 5).await?;
    let won = a
        .election_client()
        .campaign("app/elect", "a1", lease_a)
        .await?;
    let leader_a: LeaderKey = won.leader().context("Campaign without leader")?.clone();
    if leader_a.key() != format!("app/elect/{lease_a:x}").as_bytes() {
        bail!("leader key {:?} for lease {lease_a:x}", leader_a.key_str());
    }
    let mut stream = timeout(Duration::from_secs(10), observer)
        .await
        .context("Observe not answered after a leader was elected")???;
    assert_eq!(observed(&mut stream).await?, "a1");

    // A second candidate waits while A leads.
    let lease_b = kept_lease(&mut b, 5).await?;
    let mut eb = b.election_client();
    let mut candidate = tokio::spawn(async move { eb.campaign("app/elect", "b1", lease_b).await });
    if !still_waiting(&mut candidate).await {
        bail!(
            "Campaign of B returned while A leads: {:?}",
            candidate.await
        );
    }

    a.election_client()
        .proclaim(
            "a2",
            Some(ProclaimOptions::new().with_leader(leader_a.clone())),
        )
        .await?;
    assert_eq!(observed(&mut stream).await?, "a2");
    let now = a.election_client().leader("app/elect").await?;
    assert_eq!(now.kv().map(|kv| kv.value()), Some(&b"a2"[..]));

    // A leader key of another creation revision no longer leads.
    let stale = leader_a.clone().with_rev(leader_a.rev() - 1);
    match a
        .election_client()
        .proclaim("x", Some(ProclaimOptions::new().with_leader(stale)))
        .await
    {
        Ok(_) => bail!("Proclaim with a stale leader key succeeded"),
        Err(e) => {
            let got = grpc::status_of(&e);
            if got.1 != "election: not leader" {
                bail!("Proclaim with a stale leader key: {got:?}");
            }
        }
    }

    // A resigns: B is elected and observed.
    a.election_client()
        .resign(Some(ResignOptions::new().with_leader(leader_a)))
        .await?;
    let won_b = timeout(Duration::from_secs(10), &mut candidate)
        .await
        .context("B not elected after A resigned")???;
    let leader_b = won_b.leader().context("Campaign without leader")?.clone();
    assert_eq!(observed(&mut stream).await?, "b1");

    // etcdctl's client-side recipe on the same keys: it observes B, and campaigns after B.
    let listener = c.etcdctl_for(0).spawn(&["elect", "-l", "app/elect"])?;
    let elector = c.etcdctl_for(1).spawn(&["elect", "app/elect", "c1"])?;
    wait_for(
        "etcdctl elect -l to print B",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match listener.stdout().contains("\nb1\n") {
            true => Ok(()),
            false => Err(format!("{:?} {:?}", listener.stdout(), listener.stderr())),
        },
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    if !elector.stdout().is_empty() {
        bail!("etcdctl elect won while B leads: {:?}", elector.stdout());
    }
    b.election_client()
        .resign(Some(ResignOptions::new().with_leader(leader_b)))
        .await?;
    assert_eq!(observed(&mut stream).await?, "c1");
    wait_for(
        "etcdctl elect to win after B resigned",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match elector.stdout().ends_with("\nc1\n") {
            true => Ok(()),
            false => Err(format!("{:?} {:?}", elector.stdout(), elector.stderr())),
        },
    )?;
    wait_for(
        "etcdctl elect -l to print c1",
        Duration::from_secs(10),
        Duration::from_millis(100),
        || match listener.stdout().ends_with("\nc1\n") {
            true => Ok(()),
            false => Err(format!("{:?}", listener.stdout())),
        },
    )?;

    // Proclaim and Resign need a leader key.
    match a.election_client().resign(None).await {
        Ok(_) => bail!("Resign without a leader key succeeded"),
        Err(e) => {
            let got = grpc::status_of(&e);
            if got.1 != "\"leader\" field must be provided" {
                bail!("Resign without a leader key: {got:?}");
            }
        }
    }
    Ok(())
}

#[test]
fn election_service_campaign_proclaim_resign_and_observe_match_etcdctl_elect() {
    let c = cluster();
    let rt = must(grpc::runtime());
    must(rt.block_on(election_changes_are_observed(&c)));
}

/// The gRPC code and message of a put of `size` bytes through member `i` (None: it succeeded).
async fn put_refusal(
    c: &Cluster,
    i: usize,
    key: &str,
    size: usize,
) -> Result<Option<(String, String)>> {
    let mut client = c.client(i).await?;
    match client.put(key, vec![b'x'; size], None).await {
        Ok(_) => Ok(None),
        Err(e) => Ok(Some(grpc::status_of(&e))),
    }
}

async fn quota_raises_nospace_until_disarmed(c: &Cluster) -> Result<()> {
    let full = (
        "ResourceExhausted".to_string(),
        "etcdserver: mvcc: database space exceeded".to_string(),
    );
    // 64 KiB values until the 1 MiB quota refuses one.
    let mut written = 0;
    loop {
        match put_refusal(c, 0, &format!("big/{written:03}"), 64 * 1024).await? {
            None => written += 1,
            Some(e) if e == full => break,
            Some(e) => bail!("put {written} failed with {e:?}"),
        }
        if written > 100 {
            bail!("100 puts of 64 KiB passed a 1 MiB quota");
        }
    }
    // Raised through Raft: every member lists it and refuses even small writes that add data.
    // The alarm is a Raft entry: the other members list it once they applied it.
    for m in [1, 2] {
        let ctl = c.etcdctl_for(m);
        cairn_tests::wait::wait_for(
            "NOSPACE listed by another member",
            std::time::Duration::from_secs(10),
            std::time::Duration::from_millis(100),
            || {
                let list = ctl.ok(&["alarm", "list"]).map_err(|e| e.to_string())?;
                if list.contains("alarm:NOSPACE") {
                    Ok(())
                } else {
                    Err(format!("alarm list after the quota was passed: {list:?}"))
                }
            },
        )?;
    }
    let ctl = c.etcdctl_for(2);
    if put_refusal(c, 1, "small", 1).await? != Some(full.clone()) {
        bail!("a small put through another member was not refused while NOSPACE is raised");
    }
    let mut client = c.client(2).await?;
    match client.lease_grant(30, None).await {
        Ok(_) => bail!("LeaseGrant passed while NOSPACE is raised"),
        Err(e) if grpc::status_of(&e) == full => {}
        Err(e) => bail!(
            "LeaseGrant while NOSPACE is raised: {:?}",
            grpc::status_of(&e)
        ),
    }
    let status = ctl.json(&["endpoint", "status", "-w", "json"])?;
    let errors = status[0]["Status"]["errors"].to_string();
    if !errors.contains("alarm:NOSPACE") {
        bail!("endpoint status errors: {errors}");
    }
    // Reads, deletes and compaction still work; after them, defragment and disarm, writes resume.
    let got = ctl.ok(&["get", "--prefix", "big/", "--keys-only"])?;
    if got.lines().filter(|l| l.starts_with("big/")).count() != written {
        bail!("{written} big/ keys written, a read finds {got:?}");
    }
    ctl.ok(&["del", "--prefix", "big/"])?;
    let rev = ctl.json(&["get", "big/", "-w", "json"])?["header"]["revision"]
        .as_i64()
        .context("no revision")?;
    ctl.ok(&["compaction", "--physical", &rev.to_string()])?;
    ctl.with_endpoints(c.endpoints()).ok(&["defrag"])?;
    let disarmed = ctl.ok(&["alarm", "disarm"])?;
    if !disarmed.contains("alarm:NOSPACE") {
        bail!("alarm disarm printed {disarmed:?}");
    }
    if !ctl.ok(&["alarm", "list"])?.is_empty() {
        bail!("alarms left after disarm");
    }
    if let Some(e) = put_refusal(c, 1, "small", 1).await? {
        bail!("a put after compaction, defrag and disarm failed: {e:?}");
    }
    Ok(())
}

#[test]
fn quota_raises_nospace_cluster_wide_and_disarm_after_compaction_brings_writes_back() {
    let flavor = must(cairn_tests::cluster::Flavor::from_env());
    let mut c = must(Cluster::create(flavor, 3));
    c.extra_args = vec!["--quota-backend-bytes".into(), (1024 * 1024).to_string()];
    must(c.start_all());
    must(c.wait_healthy(cairn_tests::cluster::START_TIMEOUT));
    let rt = must(grpc::runtime());
    must(rt.block_on(quota_raises_nospace_until_disarmed(&c)));
}

async fn hashes_after_writes(c: &Cluster) -> Result<Vec<u32>> {
    let mut writer = c.client(0).await?;
    for i in 0..20 {
        writer
            .put(format!("hash/{i}"), format!("v{i}"), None)
            .await?;
    }
    writer.delete("hash/3", None).await?;
    let rev = writer
        .get("hash/0", None)
        .await?
        .header()
        .context("no header")?
        .revision();
    let mut hashes = Vec::new();
    for i in 0..c.members.len() {
        let mut client = c.client(i).await?;
        // A linearizable read makes the member apply everything up to `rev` first.
        client.get("hash/0", None).await?;
        let h = client.hash().await?;
        if h.header().map(|h| h.revision()) != Some(rev) {
            bail!(
                "member {i} answered Hash at {:?}, want revision {rev}",
                h.header()
            );
        }
        hashes.push(h.hash());
    }
    Ok(hashes)
}

#[test]
fn hash_is_equal_on_every_member_at_the_same_revision() {
    let c = cluster();
    let rt = must(grpc::runtime());
    let hashes = must(rt.block_on(hashes_after_writes(&c)));
    // etcd hashes its bbolt file, whose page layout may differ between members; cairn's hash is of
    // the replicated state only, so it must agree.
    if c.flavor == cairn_tests::cluster::Flavor::Cairn {
        assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
    }
    let mut writer = must(rt.block_on(c.client(0)));
    must(rt.block_on(async { Ok(writer.put("hash/more", "x", None).await?) }));
    let again = must(rt.block_on(hashes_after_writes(&c)));
    if c.flavor == cairn_tests::cluster::Flavor::Cairn {
        assert_ne!(again[0], hashes[0], "a write changes the hash");
        assert!(again.windows(2).all(|w| w[0] == w[1]), "{again:?}");
    }
}
