//! Credentials from the container endpoint, where Lambda serves them when they
//! are not in the environment; the environment's win when both are there. One
//! test: it owns this process's environment.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use aws_credential_types::provider::ProvideCredentials;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

/// Answers one credentials request on loopback, returning the request's head.
fn serve_credentials_once(listener: TcpListener) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut head = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            head.push_str(&line);
        }
        let body = r#"{"AccessKeyId":"ASIACONTAINER","SecretAccessKey":"secret","Token":"token","Expiration":"2099-01-01T00:00:00Z"}"#;
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        head
    })
}

/// The credentials the functions' SDK settings resolve from this process's environment.
async fn credentials_from_environment() -> aws_credential_types::Credentials {
    ecs_control::aws::load_sdk_config()
        .expect("settings")
        .credentials_provider()
        .expect("provider")
        .provide_credentials()
        .await
        .expect("credentials")
}

#[tokio::test(flavor = "current_thread")]
async fn the_container_endpoint_serves_credentials_the_environment_lacks() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_credentials_once(listener);
    std::env::set_var("AWS_REGION", "eu-west-1");
    std::env::set_var(
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        format!("http://127.0.0.1:{port}/2021-04-23/credentials"),
    );
    std::env::set_var("AWS_CONTAINER_AUTHORIZATION_TOKEN", "sandbox-token");

    // Both there: the environment's, and the endpoint is not asked.
    std::env::set_var("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "secret");
    let credentials = credentials_from_environment().await;
    assert_eq!(credentials.access_key_id(), "AKIAENVIRONMENT");

    std::env::remove_var("AWS_ACCESS_KEY_ID");
    std::env::remove_var("AWS_SECRET_ACCESS_KEY");
    std::env::remove_var("AWS_SESSION_TOKEN");
    let credentials = credentials_from_environment().await;
    assert_eq!(credentials.access_key_id(), "ASIACONTAINER");
    assert_eq!(credentials.session_token(), Some("token"));
    let head = server.join().expect("server").to_ascii_lowercase();
    assert!(head.starts_with("get /2021-04-23/credentials "), "{head}");
    assert!(head.contains("authorization: sandbox-token"), "{head}");
}
