//! The bus metrics of DESIGN.md, recorded by every consumer.

pub fn handled(stream: &str, group: &str, count: usize) {
    metrics::counter!("event_bus_throughput_total", "stream" => stream.to_owned(), "group" => group.to_owned()).increment(count as u64);
}

pub fn group_state(stream: &str, group: &str, lag: Option<usize>, pending: usize) {
    let labels = [("stream", stream.to_owned()), ("group", group.to_owned())];
    if let Some(lag) = lag {
        metrics::gauge!("event_bus_consumer_lag", &labels).set(lag as f64);
    }
    metrics::gauge!("event_bus_pending", &labels).set(pending as f64);
}

pub fn dlq_size(stream: &str, size: usize) {
    metrics::gauge!("event_bus_dlq_size", "stream" => stream.to_owned()).set(size as f64);
}
