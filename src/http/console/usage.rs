//! A credential's usage at a glance: requests per day as a small bar chart (inline SVG, drawn
//! on the server, so that it needs no script) and its quota used this month as a meter.

use maud::{Markup, html};

use super::page::when;
use super::{Console, Signed};
use keygate_core::admin::usage::{CredentialUsage, USAGE_DAYS};
use keygate_core::error::CoreError;

const WIDTH: u64 = 280;
const HEIGHT: u64 = 64;

/// A key's usage section.
pub async fn of_key(console: &Console, signed: &Signed, key_id: &str) -> Markup {
    section(console.admin.key_usage(&signed.ctx, key_id).await)
}

/// A client's usage section.
pub async fn of_client(console: &Console, signed: &Signed, client_id: &str) -> Markup {
    section(console.admin.client_usage(&signed.ctx, client_id).await)
}

fn section(usage: Result<CredentialUsage, CoreError>) -> Markup {
    html! {
        section.usage aria-labelledby="usage-title" {
            h2 id="usage-title" { "Usage" }
            @match usage {
                Ok(usage) => { (chart(&usage)) (quota(&usage)) }
                Err(err) => { p.notice.bad { "Usage could not be read: " (err) } }
            }
        }
    }
}

fn chart(usage: &CredentialUsage) -> Markup {
    let total: u64 = usage.days.iter().map(|(_, uses)| uses).sum();
    let most = usage.days.iter().map(|(_, uses)| *uses).max().unwrap_or(0).max(1);
    let count = u64::try_from(usage.days.len()).unwrap_or(1).max(1);
    let slot = WIDTH / count;
    let summary = format!("{total} requests in the last {USAGE_DAYS} days");
    html! {
        figure.chart {
            svg viewBox={"0 0 " (WIDTH) " " (HEIGHT + 2)} role="img" aria-labelledby="chart-title" width=(WIDTH) height=(HEIGHT + 2) {
                title id="chart-title" { (summary) }
                @for (i, (day, uses)) in usage.days.iter().enumerate() {
                    @let i = u64::try_from(i).unwrap_or(0);
                    @let height = (uses * HEIGHT).div_ceil(most);
                    rect x=(i * slot + 1) y=(HEIGHT - height) width=(slot.saturating_sub(2)) height=(height.max(1)) class=(if *uses == 0 { "empty" } else { "bar" }) {
                        title { (day) ": " (uses) }
                    }
                }
                line x1="0" y1=(HEIGHT + 1) x2=(WIDTH) y2=(HEIGHT + 1) class="axis" {}
            }
            figcaption { (summary) ", busiest day " (most_day(usage)) "." }
        }
        details {
            summary { "Requests per day" }
            table.small {
                thead { tr { th scope="col" { "Day" } th scope="col" { "Requests" } } }
                tbody { @for (day, uses) in usage.days.iter().rev() { tr { td { (day) } td { (uses) } } } }
            }
        }
    }
}

fn most_day(usage: &CredentialUsage) -> String {
    match usage.days.iter().filter(|(_, uses)| *uses > 0).max_by_key(|(_, uses)| *uses) {
        Some((day, uses)) => format!("{day} with {uses}"),
        None => "none".to_owned(),
    }
}

fn quota(usage: &CredentialUsage) -> Markup {
    html! {
        @match &usage.quota {
            Some(quota) => {
                @let used = quota.max_quota.saturating_sub(quota.remaining);
                div.field {
                    label for="quota" { "Quota this month" }
                    meter id="quota" min="0" max=(quota.max_quota) value=(used) { (used) " of " (quota.max_quota) }
                    p.hint { (used) " of " (quota.max_quota) " used; " (quota.remaining) " left until " (when(quota.refresh_at)) "." }
                }
            }
            None => { p.hint { "No monthly quota." } }
        }
    }
}
