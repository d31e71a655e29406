//! Watch fan-out at scale: many watches on one prefix, multiplexed over a few watch streams as etcd's Go
//! client does (one stream per connection, every watch of it sent on that stream).

use crate::workload::{deliveries, fanout_writer, Outcome};
use anyhow::{bail, Result};
use etcd_client::{Client, WatchOptions};
use std::time::Duration;

const PREFIX: &str = "scale-watch/";
/// `watchers` watches on one prefix spread over one stream per pool channel; one writer puts the send
/// time under the prefix at `rate`/s for `duration`. Latency: put sent → event received, per event.
pub async fn prefix_fanout(
    pool: &[Client],
    watchers: usize,
    duration: Duration,
    rate: u32,
) -> Result<Outcome> {
    let streams = pool.len().min(watchers).max(1);
    let mut tasks = Vec::with_capacity(streams);
    for (s, client) in pool.iter().enumerate().take(streams) {
        let mine = watchers / streams + usize::from(s < watchers % streams);
        let opts = || Some(WatchOptions::new().with_prefix());
        let mut stream = client.clone().watch(PREFIX, opts()).await?;
        for _ in 1..mine {
            stream.watch(PREFIX, opts()).await?;
        }
        // Every watch is confirmed by a `created` response before the writer starts.
        let mut created = 0;
        while created < mine {
            match stream.message().await? {
                Some(r) if r.created() => created += 1,
                Some(_) => {}
                None => bail!("watch stream {s} closed after {created} of {mine} watches"),
            }
        }
        tasks.push(tokio::spawn(deliveries(stream, mine)));
    }
    let key = |i: u64| format!("{PREFIX}{}", i % 16);
    let stop_key = format!("{PREFIX}stop");
    let mut out = fanout_writer(
        pool[0].clone(),
        key,
        &stop_key,
        duration,
        rate,
        tasks,
        watchers,
    )
    .await?;
    out.latencies.sort_unstable();
    Ok(out)
}
