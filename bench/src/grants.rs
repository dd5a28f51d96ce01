//! Token grants at `/oauth/token` for a returning client, closed loop: what a fleet of services
//! refreshing their tokens costs. The client's secret is verified by argon2 once and then comes
//! from the verdict cache.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::load::{Stats, gather};

/// `concurrency` workers post client-credentials grants as fast as they are answered.
pub async fn closed_loop(url: &str, client_id: &str, secret: &str, concurrency: usize, duration: Duration) -> Stats {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let deadline = start + duration;
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (http, url) = (http.clone(), url.to_owned());
        let form = [("grant_type", "client_credentials".to_owned()), ("client_id", client_id.to_owned())];
        let secret = secret.to_owned();
        workers.spawn(async move {
            let mut stats = Stats::new();
            while Instant::now() < deadline {
                let sent = Instant::now();
                let answer = http.post(&url).form(&form).basic_auth(&form[1].1, Some(&secret)).send().await;
                match answer {
                    Ok(response) if response.status().is_success() => {
                        let _ = response.bytes().await;
                        stats.ok += 1;
                        let _ = stats.latency_us.record(sent.elapsed().as_micros().max(1) as u64);
                    }
                    Ok(response) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| format!("HTTP {}", response.status()));
                    }
                    Err(err) => {
                        stats.errors += 1;
                        stats.first_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
            stats
        });
    }
    gather(workers, start).await
}
