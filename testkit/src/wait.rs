//! Bounded waiting for what real processes and a real chain do in their own time, and
//! reading a daemon's `/metrics`.

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Result;

/// Call `check` every `every` until it returns `Some`, for at most `limit`; the error
/// names `what` was awaited.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut check: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    let t = Instant::now();
    while t.elapsed() < limit {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        tokio::time::sleep(every).await;
    }
    anyhow::bail!("timed out after {limit:?} waiting for {what}")
}

/// The Prometheus text a daemon serves on `addr` (`GET /metrics`, at most 10 s).
pub async fn scrape(addr: SocketAddr) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut out)).await??;
    Ok(out)
}

/// The value of the unlabelled sample `name` in Prometheus text (0 when absent).
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_reads_the_named_sample_only() {
        let text = "# HELP x_total x\nx_total 7\nx_total_more 9\ny 2\n";
        assert_eq!(metric(text, "x_total"), 7);
        assert_eq!(metric(text, "y"), 2);
        assert_eq!(metric(text, "z"), 0);
    }

    #[tokio::test]
    async fn wait_for_returns_the_value_or_names_what_timed_out() {
        let mut n = 0;
        let v = wait_for(
            "three tries",
            Duration::from_secs(5),
            Duration::from_millis(1),
            || {
                n += 1;
                let k = n;
                async move { Ok((k == 3).then_some(k)) }
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 3);
        let e = wait_for::<(), _, _>(
            "never",
            Duration::from_millis(20),
            Duration::from_millis(5),
            || async { Ok(None) },
        )
        .await
        .unwrap_err();
        assert!(e.to_string().contains("waiting for never"), "{e}");
    }
}
