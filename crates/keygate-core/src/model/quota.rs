//! Quota windows: calendar months in UTC.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};

/// One calendar month (UTC), from its first instant up to the next month's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuotaWindow {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl QuotaWindow {
    /// The month `now` falls in.
    pub fn containing(now: DateTime<Utc>) -> Self {
        let start = first_of_month(now.year(), now.month());
        let end = if now.month() == 12 {
            first_of_month(now.year() + 1, 1)
        } else {
            first_of_month(now.year(), now.month() + 1)
        };
        Self { start, end }
    }

    /// A short name for counters and database rows, e.g. `2026-11`.
    pub fn label(&self) -> String {
        format!("{:04}-{:02}", self.start.year(), self.start.month())
    }
}

fn first_of_month(year: i32, month: u32) -> DateTime<Utc> {
    // Day 1 of a month from 1 to 12 always exists; the fallback only guards chrono's bounds.
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|day| day.and_hms_opt(0, 0, 0))
        .map_or(DateTime::<Utc>::MAX_UTC, |midnight| Utc.from_utc_datetime(&midnight))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).unwrap()
    }

    #[test]
    fn months_are_utc_calendar_months() {
        let window = QuotaWindow::containing(at("2026-11-30T23:59:59.999Z"));
        assert_eq!(window.start, at("2026-11-01T00:00:00Z"));
        assert_eq!(window.end, at("2026-12-01T00:00:00Z"));
        assert_eq!(window.label(), "2026-11");
        let next = QuotaWindow::containing(at("2026-12-01T00:00:00Z"));
        assert_eq!(next.start, window.end);
        let december = QuotaWindow::containing(at("2026-12-31T12:00:00+05:00"));
        assert_eq!(december.end, at("2027-01-01T00:00:00Z"));
        // 2027-01-01T00:30+02:00 is still December in UTC.
        assert_eq!(QuotaWindow::containing(at("2027-01-01T00:30:00+02:00")).label(), "2026-12");
    }
}
