//! `datdot reports`, `datdot select`, `datdot status`: what the chain knows, as tables
//! (units on every figure) or JSON.

use anyhow::Context;
use datdot_chain_client::{
    AccountId32, ChainClient, MetricSummary, Status, UNIT, Verdict, VerdictRecord, account, keys,
};
use datdot_protocol::metrics::Sla;
use serde_json::json;

use crate::table::Table;
use crate::units;

/// An account given as `dev:<name>`, a key file, or an SS58 address.
pub fn parse_account(s: &str) -> anyhow::Result<AccountId32> {
    if let Ok(a) = s.parse::<AccountId32>() {
        return Ok(a);
    }
    let k = keys::resolve(s).with_context(|| {
        format!("{s:?} is neither an SS58 address nor a key (dev:<name> or a key file)")
    })?;
    Ok(account(&k))
}

/// A short name for well-known dev accounts, else the SS58 address.
pub fn name(a: &AccountId32) -> String {
    static DEV: std::sync::OnceLock<std::collections::HashMap<[u8; 32], String>> =
        std::sync::OnceLock::new();
    let dev = DEV.get_or_init(|| {
        let mut m = std::collections::HashMap::new();
        for (prefix, n) in [("hoster", 16), ("attestor", 32), ("publisher", 4)] {
            for i in 1..=n {
                let d = format!("{prefix}-{i}");
                if let Ok(k) = keys::dev(&d) {
                    m.insert(account(&k).0, d);
                }
            }
        }
        m
    });
    dev.get(&a.0).cloned().unwrap_or_else(|| a.to_string())
}

fn verdict(v: &Verdict) -> String {
    match v {
        Verdict::Pass => "pass".into(),
        Verdict::Fail { failed } => {
            let mut why = Vec::new();
            if failed & 1 != 0 {
                why.push("throughput");
            }
            if failed & 2 != 0 {
                why.push("latency");
            }
            if failed & 4 != 0 {
                why.push("availability");
            }
            format!("FAIL ({})", why.join(", "))
        }
        Verdict::Inconclusive => "inconclusive".into(),
    }
}

fn metrics_json(s: &MetricSummary) -> serde_json::Value {
    json!({
        "availability_ppm": s.availability_ppm(),
        "latency_p50_us": s.latency_p50_us,
        "latency_p99_us": s.latency_p99_us,
        "ttfb_p50_us": s.ttfb_p50_us,
        "throughput_bps": s.throughput_bps,
        "connect_time_us": s.connect_time_us,
        "requests": s.requests,
        "ok_blocks": s.ok_blocks,
        "lacks_data": s.lacks_data,
        "misbehaved": s.misbehaved,
        "timeouts": s.timeouts,
    })
}

/// `datdot reports`.
pub async fn reports(
    chain: &ChainClient,
    hoster: Option<AccountId32>,
    feed: Option<u64>,
    last: usize,
    as_json: bool,
) -> anyhow::Result<String> {
    let mut records: Vec<VerdictRecord<AccountId32, u32>> = match (hoster, feed) {
        (_, Some(f)) => chain.feed_history(f).await?,
        (Some(h), None) => chain.hoster_history(&h).await?,
        (None, None) => {
            let mut all = Vec::new();
            for h in chain.hosters().await? {
                all.extend(chain.hoster_history(&h).await?);
            }
            all
        }
    };
    if let (Some(h), Some(_)) = (hoster, feed) {
        records.retain(|r| r.hoster == h);
    }
    records.sort_by_key(|r| (r.at, r.challenge));
    let skip = records.len().saturating_sub(last);
    let records = &records[skip..];
    if as_json {
        let v: Vec<_> = records
            .iter()
            .map(|r| {
                json!({
                    "challenge": r.challenge,
                    "block": r.at,
                    "feed": r.feed,
                    "hoster": r.hoster.to_string(),
                    "verdict": verdict(&r.verdict),
                    "reports": r.reports,
                    "outliers": r.outliers,
                    "median": r.median.as_ref().map(metrics_json),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v)?);
    }
    if records.is_empty() {
        return Ok("no settled challenges yet (a challenge settles after its report window; see `datdot status`)\n".into());
    }
    let mut t = Table::new(&[
        "challenge",
        "block",
        "feed",
        "hoster",
        "verdict",
        "reports",
        "outliers",
        "availability",
        "p50",
        "p99",
        "throughput",
    ]);
    for r in records {
        let (avail, p50, p99, tput) = match &r.median {
            Some(s) => (
                units::percent(s.availability_ppm()),
                units::micros(s.latency_p50_us),
                units::micros(s.latency_p99_us),
                units::rate(s.throughput_bps),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        t.row(vec![
            r.challenge.to_string(),
            r.at.to_string(),
            r.feed.to_string(),
            name(&r.hoster),
            verdict(&r.verdict),
            r.reports.to_string(),
            r.outliers.to_string(),
            avail,
            p50,
            p99,
            tput,
        ]);
    }
    Ok(t.render())
}

/// `datdot select`.
pub async fn select(chain: &ChainClient, sla: &Sla, as_json: bool) -> anyhow::Result<String> {
    let picked = chain.select(sla).await?;
    if as_json {
        let v: Vec<_> = picked
            .iter()
            .map(|s| {
                json!({
                    "hoster": s.hoster.to_string(),
                    "score": s.score,
                    "challenges": s.challenges,
                    "throughput_bps": s.typical.throughput_bps,
                    "latency_p99_us": s.typical.latency_p99_us,
                    "availability_ppm": s.typical.availability_ppm(),
                })
            })
            .collect();
        return Ok(serde_json::to_string_pretty(&v)?);
    }
    if picked.is_empty() {
        return Ok(format!(
            "no active hoster meets min throughput {}, max p99 {}, min availability {} over its recent challenges\n",
            units::rate(sla.min_throughput_bps),
            units::micros(sla.max_p99_latency_us),
            units::percent(sla.min_availability_ppm)
        ));
    }
    let mut t = Table::new(&[
        "rank",
        "hoster",
        "score",
        "challenges",
        "throughput",
        "p99",
        "availability",
    ]);
    for (i, s) in picked.iter().enumerate() {
        t.row(vec![
            (i + 1).to_string(),
            name(&s.hoster),
            s.score.to_string(),
            s.challenges.to_string(),
            units::rate(s.typical.throughput_bps),
            units::micros(s.typical.latency_p99_us),
            units::percent(s.typical.availability_ppm()),
        ]);
    }
    Ok(t.render())
}

/// `datdot status`.
pub async fn status(
    chain: &ChainClient,
    me: Option<AccountId32>,
    as_json: bool,
) -> anyhow::Result<String> {
    let head = chain.head().await?;
    let challenges = chain.challenges().await?;
    let open: Vec<_> = challenges
        .iter()
        .filter(|(_, c)| c.verdict.is_none())
        .filter(|(_, c)| me.is_none_or(|m| c.hoster == m || c.attestors.0.contains(&m)))
        .collect();
    let mine = match me {
        Some(m) => Some((
            m,
            chain.free_balance(&m).await?,
            chain.participant(&m).await?,
        )),
        None => None,
    };
    if as_json {
        return Ok(serde_json::to_string_pretty(&json!({
            "head": head,
            "account": mine.as_ref().map(|(m, free, p)| json!({
                "address": m.to_string(),
                "free": *free as f64 / UNIT as f64,
                "stake": p.as_ref().map(|p| p.stake as f64 / UNIT as f64),
                "score": p.as_ref().map(|p| p.score),
                "status": p.as_ref().map(|p| status_name(&p.status)),
            })),
            "open_challenges": open.iter().map(|(id, c)| json!({
                "challenge": id, "hoster": c.hoster.to_string(), "feed": c.feed,
                "start": c.start, "end": c.end, "report_deadline": c.report_deadline,
                "reports": c.reports.0.len(), "committee": c.attestors.0.len(),
            })).collect::<Vec<_>>(),
        }))?);
    }
    let mut out = format!("chain head: block {head}\n");
    if let Some((m, free, p)) = &mine {
        out.push_str(&format!(
            "account {} ({})\n  free balance {} tokens\n",
            name(m),
            m,
            units::tokens(*free as i128)
        ));
        match p {
            Some(p) => out.push_str(&format!(
                "  registered: stake {} tokens, score {}/1000, {}\n",
                units::tokens(p.stake as i128),
                p.score,
                status_name(&p.status)
            )),
            None => out.push_str("  not registered as a hoster or attestor\n"),
        }
    }
    if open.is_empty() {
        out.push_str("open challenges: none\n");
    } else {
        let mut t = Table::new(&[
            "challenge",
            "hoster",
            "feed",
            "window (blocks)",
            "report by",
            "reports",
        ]);
        for (id, c) in &open {
            t.row(vec![
                id.to_string(),
                name(&c.hoster),
                c.feed.to_string(),
                format!("{}..{}", c.start, c.end),
                c.report_deadline.to_string(),
                format!("{}/{}", c.reports.0.len(), c.attestors.0.len()),
            ]);
        }
        out.push_str("open challenges:\n");
        out.push_str(&t.render());
    }
    Ok(out)
}

fn status_name(s: &Status<u32>) -> String {
    match s {
        Status::Active => "active".into(),
        Status::Suspended => "suspended".into(),
        Status::Unbonding { until } => format!("unbonding until block {until}"),
    }
}
