//! The deployment's switches (template parameters, as environment variables)
//! win over the documents. One test: it owns this process's environment.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly

use ecs_control::config::{ProbeConfig, RegistrarConfig};

const PROBE: &str = r#"{"checks": [{"name": "a", "url": "http://x"}],
    "adhoc": {"enabled": false, "allowed_hosts": ["doc.example.com"]}}"#;
const REGISTRAR: &str = r#"{"max_deregister_share": 0.5, "services": [{"cluster": "c", "service": "s",
    "target_groups": [{"target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web/0123456789abcdef", "port": 80}]}]}"#;

#[test]
fn environment_switches_override_the_documents_and_are_checked() {
    std::env::set_var("PROBE_CONFIG", PROBE);
    std::env::set_var("PROBE_ADHOC_ENABLED", "true");
    std::env::set_var(
        "PROBE_ADHOC_ALLOWED_HOSTS",
        " api.example.com, *.internal.example.com ,",
    );
    std::env::set_var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256");
    let probe = ProbeConfig::from_env().expect("probe config");
    assert!(probe.adhoc.enabled);
    assert_eq!(
        probe.adhoc.allowed_hosts,
        ["api.example.com", "*.internal.example.com"]
    );
    assert!(probe.adhoc.allows("orders.internal.example.com"));
    assert!(!probe.adhoc.allows("doc.example.com"));

    // A function too small for the document's bodies fails its cold start.
    std::env::set_var(
        "PROBE_CONFIG",
        r#"{"concurrency": 200, "max_body_bytes": 1048576, "checks": [{"name": "a", "url": "http://x"}]}"#,
    );
    let err = ProbeConfig::from_env().expect_err("200 MiB of bodies in 256 MB");
    assert_eq!(err.field, "max_body_bytes");
    // Without a concurrency of its own, the default is lowered to what fits.
    std::env::set_var(
        "PROBE_CONFIG",
        r#"{"max_body_bytes": 4194304, "checks": [{"name": "a", "url": "http://x"}]}"#,
    );
    let fitted = ProbeConfig::from_env().expect("the default concurrency fits");
    assert_eq!(
        fitted.concurrency, 31,
        "128 MiB / (4 MiB of body + 64 KiB of head and connection) each"
    );

    std::env::set_var("PROBE_ADHOC_ENABLED", "yes please");
    let err = ProbeConfig::from_env().expect_err("not a boolean");
    assert_eq!(err.field, "PROBE_ADHOC_ENABLED");

    std::env::set_var("REGISTRAR_CONFIG", REGISTRAR);
    std::env::set_var("REGISTRAR_MAX_DEREGISTER_SHARE", "0.25");
    assert_eq!(
        RegistrarConfig::from_env()
            .expect("registrar")
            .max_deregister_share,
        0.25
    );
    std::env::set_var("REGISTRAR_MAX_DEREGISTER_SHARE", "2");
    let err = RegistrarConfig::from_env().expect_err("above 1");
    assert_eq!(err.field, "REGISTRAR_MAX_DEREGISTER_SHARE");
}
