//! The bus metrics of DESIGN.md, read back from the Prometheus registry.

use std::time::Duration;

use sb_bus::{Delivery, Envelope, Handler, Outcome};
use sb_kernel::TenantId;
use sb_testkit::TestRedis;

use crate::helpers::{Ping, bus, fast};

/// Accepts even numbers, dead-letters odd ones.
struct EvenOnly;

impl Handler for EvenOnly {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        batch
            .iter()
            .map(|d| {
                if d.envelope.decode::<Ping>().unwrap().n % 2 == 0 {
                    Outcome::Done
                } else {
                    Outcome::DeadLetter("odd".into())
                }
            })
            .collect()
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test]
async fn consumers_export_throughput_lag_pending_and_dlq_size() {
    sb_telemetry::prometheus();
    let redis = TestRedis::new();
    let bus = bus(&redis);
    // A stream of its own: the registry is shared by every test in this binary.
    for n in 0..5 {
        bus.publish(
            "metered",
            &Envelope::new(TenantId::new(), &Ping { n }).unwrap(),
        )
        .await
        .unwrap();
    }
    let mut options = fast("meters");
    options.stream = "metered".into();
    let mut consumer = bus.consumer(options).unwrap();
    consumer.ensure_group().await.unwrap();
    while bus.dlq_len("metered").await.unwrap() < 2 {
        consumer.step(&EvenOnly).await.unwrap();
    }
    // One more maintenance tick refreshes the gauges.
    tokio::time::sleep(Duration::from_millis(30)).await;
    consumer.step(&EvenOnly).await.unwrap();

    let text = sb_telemetry::render_metrics();
    let labels = r#"{stream="metered",group="meters"}"#;
    assert_eq!(
        sample(&text, &format!("event_bus_throughput_total{labels}")),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("event_bus_pending{labels}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, &format!("event_bus_consumer_lag{labels}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, r#"event_bus_dlq_size{stream="metered"}"#),
        Some(2.0)
    );
}
