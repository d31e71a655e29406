//! Switching auth on for the auth-cost comparison, the same way on cairn and etcd: `root` with the root
//! role, the certificate user `admin` (the pool's CN) allowed every key, and a password user `bench`
//! allowed the workload's prefix.

use anyhow::{Context, Result};
use cairn_tests::cluster::Cluster;
use cairn_tests::grpc::connect_as;
use etcd_client::{Client, Permission, UserAddOptions};

const ROOT_PASSWORD: &str = "bench-root-password";
/// The password user's name and password.
const USER: (&str, &str) = ("bench", "bench-user-password");

/// Enables auth through `client` (the admin certificate, auth off), first creating the users and
/// roles if `create`.
pub async fn enable(client: &mut Client, create: bool) -> Result<()> {
    if create {
        create_users(client).await?;
    }
    client.auth_enable().await.context("auth enable")?;
    Ok(())
}

/// Switches auth off as `root` (only root may).
pub async fn disable(cluster: &Cluster, url: &str) -> Result<()> {
    let mut root = connect_as(&cluster.pki, url, "root", ROOT_PASSWORD).await?;
    root.auth_disable().await.context("auth disable")?;
    Ok(())
}

async fn create_users(client: &mut Client) -> Result<()> {
    client
        .user_add("root", ROOT_PASSWORD, None)
        .await
        .context("user add root")?;
    client.user_grant_role("root", "root").await?;
    // etcd's "every key": key and range end both "\0".
    let every_key = Permission::read_write(vec![0u8]).with_range_end(vec![0u8]);
    client.role_add("bench-all").await?;
    client.role_grant_permission("bench-all", every_key).await?;
    client
        .user_add("admin", "", Some(UserAddOptions::new().with_no_pwd()))
        .await
        .context("user add admin --no-password")?;
    client.user_grant_role("admin", "bench-all").await?;
    let prefix = Permission::read_write(crate::ledger::PREFIX).with_prefix();
    client.role_add("bench-rw").await?;
    client.role_grant_permission("bench-rw", prefix).await?;
    client.user_add(USER.0, USER.1, None).await?;
    client.user_grant_role(USER.0, "bench-rw").await?;
    Ok(())
}

/// `conns` channels over `urls` authenticated as the password user (each Authenticates once; every
/// request then carries its token).
pub async fn password_pool(
    cluster: &Cluster,
    urls: &[String],
    conns: usize,
) -> Result<Vec<Client>> {
    let mut pool = Vec::with_capacity(conns);
    for i in 0..conns {
        let url = &urls[i % urls.len()];
        pool.push(connect_as(&cluster.pki, url, USER.0, USER.1).await?);
    }
    Ok(pool)
}
