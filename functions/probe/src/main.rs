use ecs_control::aws::{cloudwatch::CloudWatchMetrics, elbv2::Elbv2Adapter, load_sdk_config};
use ecs_control::invocation::fail_init;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use probe::handler::Prober;
use probe::http::HttpAdapter;
use serde_json::Value;

// One thread: Lambda gives a function a share of one vCPU until 1,769 MB, and
// every wait here is I/O; a single-threaded runtime starts sooner and smaller.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    ecs_control::logging::init_logging();
    // A bad configuration, or a secret it references that cannot be read,
    // stops the cold start, with the field to fix.
    let config = match probe::cold_start::configuration().await {
        Ok(config) => config,
        Err(e) => fail_init(&e).await,
    };
    let sdk = match load_sdk_config() {
        Ok(sdk) => sdk,
        Err(e) => fail_init(&e).await,
    };
    // ELBv2 is read only for target groups; without any, the probe starts
    // without building a client for it.
    let target_groups = (!config.target_groups.is_empty())
        .then(|| Elbv2Adapter::new(aws_sdk_elasticloadbalancingv2::Client::new(&sdk)));
    let prober = Prober::new(
        config,
        HttpAdapter::new(),
        target_groups,
        CloudWatchMetrics::new(aws_sdk_cloudwatch::Client::new(&sdk)),
    );
    let prober = &prober;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let _invocation = ecs_control::logging::InvocationLog::begin(&event.context);
        // Every AWS call of this invocation ends in time to answer.
        let _deadline = ecs_control::aws::deadline::InvocationDeadline::set(event.context.deadline);
        let deadline = i64::try_from(event.context.deadline)
            .ok()
            .and_then(chrono::DateTime::from_timestamp_millis);
        prober
            .handle(event.payload, chrono::Utc::now(), deadline)
            .await
    }))
    .await
}
