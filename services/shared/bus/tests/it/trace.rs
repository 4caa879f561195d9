//! A trace started at the producer continues in the consumer.

use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use sb_bus::{Delivery, Handler, Outcome};
use sb_kernel::TenantId;
use sb_testkit::TestRedis;
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

use crate::helpers::{Ping, bus, fast, step_until};

#[derive(Default)]
struct Accept(AtomicUsize);

impl Handler for Accept {
    async fn handle(&self, batch: &[Delivery]) -> Vec<Outcome> {
        self.0.fetch_add(batch.len(), Ordering::SeqCst);
        vec![Outcome::Done; batch.len()]
    }
}

#[tokio::test]
async fn the_consumer_span_is_a_child_of_the_producer_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    // The services' own layer: installing it is what switches trace context on.
    let subscriber = tracing_subscriber::registry().with(sb_telemetry::trace::layer(&provider));
    // This test's runtime is single-threaded, so the subscriber covers all of its work.
    let _default = tracing::subscriber::set_default(subscriber);

    let redis = TestRedis::new();
    let bus = bus(&redis);
    let sent = bus
        .publish_event(TenantId::new(), &Ping { n: 1 })
        .instrument(tracing::info_span!("produce"))
        .await
        .unwrap();
    assert!(
        sent.traceparent.is_some(),
        "the envelope carries the producer's trace context"
    );

    let mut consumer = bus.consumer(fast("g")).unwrap();
    let handler = Accept::default();
    // The delivery's span ends when the step that handled it drops the batch.
    step_until(&mut consumer, &handler, async || {
        handler.0.load(Ordering::SeqCst) == 1
    })
    .await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let produce = spans
        .iter()
        .find(|s| s.name == "produce")
        .expect("the producer span");
    let deliver = spans
        .iter()
        .find(|s| s.name == "bus.deliver")
        .expect("the consumer span");
    assert_eq!(
        deliver.span_context.trace_id(),
        produce.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(
        deliver.parent_span_id,
        produce.span_context.span_id(),
        "the consumer's parent is the producer"
    );
}
