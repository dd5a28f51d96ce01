//! Token grants at `/oauth/token`: a returning client, closed loop (what a fleet of services
//! refreshing their tokens costs; the client's secret is verified by argon2 once and then comes
//! from the verdict cache), and made-up secrets for a real client id, open loop (a flood that
//! must not become argon2 work).

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

/// Sends `rate` grants a second for `duration` on schedule, each with a new made-up (well-formed)
/// secret for `client_id`; latency counts from the scheduled send time. The expected answer is
/// 401 `invalid_client`; any other answer counts as unexpected, a failure to answer as an error.
pub async fn forged_open_loop(url: &str, client_id: &str, rate: f64, duration: Duration) -> Stats {
    let http = reqwest::Client::new();
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let total = (rate * duration.as_secs_f64()) as u64;
    let mut inflight = JoinSet::new();
    for n in 0..total {
        let scheduled = start + interval.mul_f64(n as f64);
        tokio::time::sleep_until(scheduled.into()).await;
        let (http, url, client_id) = (http.clone(), url.to_owned(), client_id.to_owned());
        inflight.spawn(async move {
            // 43 base62 characters, made from n: no system call per character on the client.
            let secret = format!("kgcs_{n:043}");
            let form = [("grant_type", "client_credentials")];
            let answer = http.post(&url).form(&form).basic_auth(&client_id, Some(&secret)).send().await;
            let latency_us = scheduled.elapsed().as_micros().max(1) as u64;
            match answer {
                Ok(response) => Ok((response.status().as_u16(), latency_us)),
                Err(err) => Err(err.to_string()),
            }
        });
    }
    let mut stats = Stats::new();
    while let Some(Ok(answer)) = inflight.join_next().await {
        match answer {
            Ok((status, latency_us)) => {
                stats.ok += 1;
                if status != 401 {
                    stats.unexpected += 1;
                    stats.first_error.get_or_insert_with(|| format!("HTTP {status}"));
                }
                let _ = stats.latency_us.record(latency_us);
            }
            Err(err) => {
                stats.errors += 1;
                stats.first_error.get_or_insert(err);
            }
        }
    }
    stats.elapsed = start.elapsed();
    stats
}
