//! Prometheus text exposition on `GET /metrics`, served by a tiny bounded HTTP/1.0
//! responder (request head ≤ 8 KiB, 5 s to send it and 5 s to take the answer, 64
//! concurrent scrapes; anything else is dropped). `render` builds the body per scrape.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, info};

/// Builds one exposition: `# HELP`, `# TYPE` and the sample of each metric.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// A counter (`_total` by convention).
    pub fn counter(&mut self, name: &str, help: &str, v: u64) -> &mut Self {
        self.metric(name, "counter", help, &[("", v as f64)])
    }

    /// A gauge.
    pub fn gauge(&mut self, name: &str, help: &str, v: f64) -> &mut Self {
        self.metric(name, "gauge", help, &[("", v)])
    }

    /// A metric with several labelled samples: each `(labels, value)`, labels written
    /// as `key="value",...` (empty for none).
    pub fn metric(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        samples: &[(&str, f64)],
    ) -> &mut Self {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in samples {
            if labels.is_empty() {
                let _ = writeln!(self.out, "{name} {v}");
            } else {
                let _ = writeln!(self.out, "{name}{{{labels}}} {v}");
            }
        }
        self
    }

    /// The text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

/// Serve `/metrics` on an already bound listener until the process ends.
pub async fn serve_on(l: TcpListener, render: Arc<dyn Fn() -> String + Send + Sync>) {
    if let Ok(a) = l.local_addr() {
        info!(addr = %a, "metrics on /metrics");
    }
    let permits = Arc::new(Semaphore::new(64));
    loop {
        let (mut s, _) = match l.accept().await {
            Ok(x) => x,
            Err(e) => {
                debug!("metrics accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut buf = vec![0u8; 8192];
            let mut n = 0;
            let head = tokio::time::timeout(Duration::from_secs(5), async {
                while n < buf.len() {
                    let r = s.read(&mut buf[n..]).await.ok()?;
                    if r == 0 {
                        return None;
                    }
                    n += r;
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n")
                        || buf[..n].windows(2).any(|w| w == b"\n\n")
                    {
                        return Some(());
                    }
                }
                None
            })
            .await;
            let (status, body) = match head {
                Ok(Some(()))
                    if buf.starts_with(b"GET /metrics ") || buf.starts_with(b"GET /metrics?") =>
                {
                    ("200 OK", render())
                }
                Ok(Some(())) => ("404 Not Found", "try GET /metrics\n".to_string()),
                _ => return,
            };
            let resp = format!(
                "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ =
                tokio::time::timeout(Duration::from_secs(5), s.write_all(resp.as_bytes())).await;
        });
    }
}

/// Bind `addr` and serve `/metrics` until the process ends.
pub async fn serve(
    addr: SocketAddr,
    render: Arc<dyn Fn() -> String + Send + Sync>,
) -> std::io::Result<()> {
    let l = TcpListener::bind(addr).await?;
    serve_on(l, render).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format() {
        let text = Exposition::new()
            .counter("a_total", "A.", 3)
            .metric(
                "b",
                "gauge",
                "B.",
                &[("q=\"0.5\"", 1.5), ("q=\"0.99\"", 2.0)],
            )
            .finish();
        assert_eq!(
            text,
            "# HELP a_total A.\n# TYPE a_total counter\na_total 3\n# HELP b B.\n# TYPE b gauge\nb{q=\"0.5\"} 1.5\nb{q=\"0.99\"} 2\n"
        );
    }

    #[tokio::test]
    async fn serves_metrics_and_404() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(serve_on(l, Arc::new(|| "x 1\n".to_string())));
        for (path, want) in [("/metrics", "200 OK"), ("/", "404")] {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            assert!(out.contains(want), "{out}");
        }
    }
}
