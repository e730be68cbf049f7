//! Serves the training system's metrics at `http://127.0.0.1:9464/metrics`
//! for Prometheus to scrape, while the scout learns the news stream (one
//! article every 20 ms, a prediction before each).
//!
//! `cargo run --release --example metrics_server` (`--port N` for another
//! port), then `curl http://127.0.0.1:9464/metrics`.

#[path = "../tests/common/news.rs"]
#[allow(dead_code)]
mod news;

use std::sync::Arc;
use std::time::Duration;

use onthefly::{Config, Coordinator, NewExample, Target};

fn main() {
    let port: u16 = std::env::args()
        .skip_while(|a| a != "--port")
        .nth(1)
        .map(|p| p.parse().expect("--port takes a port number"))
        .unwrap_or(9464);
    let config = Config {
        data_dir: "target/metrics-server-data".into(),
        ..Config::from_env().expect("a configuration from the environment")
    };
    let coordinator = Arc::new(Coordinator::new(config).expect("the coordinator starts"));
    let learner = Arc::clone(&coordinator);
    std::thread::spawn(move || {
        for a in news::load_articles().iter().cycle() {
            // No model before the first accepted update: nothing to predict with yet.
            let _ = learner.predict("scout", "news", &a.text);
            let example = NewExample::new("scout", "news", a.text.clone(), Target::Label(a.outlet.clone()));
            learner.add_training_example(example).expect("an article is accepted");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let server = tiny_http::Server::http(("127.0.0.1", port)).expect("the port is free");
    println!("metrics at http://127.0.0.1:{port}/metrics");
    let content_type = tiny_http::Header::from_bytes("Content-Type", "text/plain; version=0.0.4").unwrap();
    for request in server.incoming_requests() {
        let response = match request.url() {
            "/metrics" => {
                tiny_http::Response::from_string(coordinator.metrics_text()).with_header(content_type.clone())
            }
            _ => tiny_http::Response::from_string("see /metrics").with_status_code(404),
        };
        let _ = request.respond(response);
    }
}
